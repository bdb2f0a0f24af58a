package etcdstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// openBackend is the plugin's etcd backend: a store on a [Replica], so
// reads answer from the local copy and go on, marked stale, while etcd is
// unreachable.
func openBackend(ctx context.Context, set backend.Settings) (backend.Backend, error) {
	r, err := OpenReplica(ctx, set)
	if err != nil {
		return nil, err
	}
	s, err := store.Open(ctx, r, r.src)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("etcd backend: %w", err)
	}
	maxStale, _ := ParseSettings(set)
	return &replicaBackend{Backend: store.NewBackend(s, BackendType), r: r, maxStale: maxStale.MaxStale}, nil
}

// OpenReplica connects and opens the replica the settings describe.
func OpenReplica(ctx context.Context, set backend.Settings) (*Replica, error) {
	c, err := ParseSettings(set)
	if err != nil {
		return nil, fmt.Errorf("etcd backend: %w", err)
	}
	m, k, err := openMedium(ctx, set, true)
	if err != nil {
		return nil, err
	}
	id := c.ReplicaID
	if id == "" {
		id = defaultReplicaID()
	}
	r, err := NewReplica(ctx, m, k, ReplicaOptions{Dir: c.ReplicaDir, ID: id})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("etcd backend: %w", err)
	}
	return r, nil
}

// defaultReplicaID is the host name, which tells the operator which
// manager lags, and a random suffix, so a restarted plugin is not taken
// for its predecessor while that one's lease runs out.
func defaultReplicaID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "plugin"
	}
	b := make([]byte, 4)
	rand.Read(b)
	return h + "-" + hex.EncodeToString(b)
}

// replicaBackend marks answers from a copy etcd has not confirmed as stale,
// with their age, and refuses a copy older than max_stale, as a cache's
// last-known-good copies are.
type replicaBackend struct {
	backend.Backend
	r        *Replica
	maxStale time.Duration
}

func (b *replicaBackend) Get(ctx context.Context, ref backend.Ref) (backend.Secret, error) {
	sec, err := b.Backend.Get(ctx, ref)
	if err != nil {
		return sec, err
	}
	stale, age, why := b.r.Staleness()
	if !stale {
		return sec, nil
	}
	// max_stale=0 refuses every stale copy, whatever its age (which a
	// coarse clock may give as 0).
	if b.maxStale == 0 || age > b.maxStale {
		clear(sec.Value)
		// Worded as the cache's too-old error, so the log and the
		// operator see one story whatever keeps the copies.
		err := fmt.Errorf("%w and the last-known-good copy (the local replica) is %s old (max stale %s)",
			backend.ErrUnavailable, age.Round(time.Second), b.maxStale)
		if why != nil {
			// %w, so a caller can tell an outage from a refusal
			// (errors.Is on the etcd error) as with any other read.
			err = fmt.Errorf("%w: %w", err, why)
		}
		return backend.Secret{}, err
	}
	sec.Stale, sec.Age = true, age
	return sec, nil
}

// The store's optional interfaces are not promoted through the embedded
// backend.Backend, so each one the plugin looks for is forwarded here.
var (
	_ backend.Counter      = (*replicaBackend)(nil)
	_ backend.Digester     = (*replicaBackend)(nil)
	_ backend.MemoryGetter = (*replicaBackend)(nil)
)

// GetFromMemory is backend.MemoryGetter: the store's cached record, only
// while etcd confirms the copy. The driver hands a memory answer on as it
// is, so a stale copy's answers take Get, which marks them and applies
// max_stale.
func (b *replicaBackend) GetFromMemory(ref backend.Ref) (backend.Secret, bool) {
	if !b.r.isLive() {
		return backend.Secret{}, false
	}
	return b.Backend.(backend.MemoryGetter).GetFromMemory(ref)
}

// Digest is backend.Digester, from the copy, so /health and swarmkeep
// status compare what each manager's replica serves.
func (b *replicaBackend) Digest(ctx context.Context) (backend.StoreDigest, error) {
	return b.Backend.(backend.Digester).Digest(ctx)
}

// Count is backend.Counter, from the copy.
func (b *replicaBackend) Count(ctx context.Context) (int, error) {
	return b.Backend.(backend.Counter).Count(ctx)
}

// Refresh lists the store again now.
func (b *replicaBackend) Refresh(string) { b.r.Refresh() }

// Replica returns the copy, for tests and metrics.
func (b *replicaBackend) Replica() *Replica { return b.r }

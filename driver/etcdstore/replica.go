package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// Replica timings, copied into each Replica when made; variables, so tests
// can shorten them.
var (
	// progressEvery is how often a quiet watch asks etcd to confirm it is
	// current (a progress notification: one small message, no read).
	progressEvery = time.Second
	// staleAfter: a watch unconfirmed for this long is presumed cut off
	// (the client retries a broken stream silently), so the copy is
	// marked stale and the plugin lists again, with backoff.
	staleAfter = 3 * time.Second
	// minBackoff and maxBackoff bound the pause between failed lists.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// missTimeout bounds the direct read of a name the copy lacks while
	// the copy is stale, so an unknown name costs no full request
	// deadline when etcd is down.
	missTimeout = time.Second
	// persistDelay coalesces the disk writes of a burst of changes.
	persistDelay = 50 * time.Millisecond
)

// listPage is how many records one list request fetches; records are up to
// a megabyte, so fewer than the keys-only pages of [Medium.List].
const listPage = 64

// item is one key of the copy: the sealed blob as etcd holds it, and its
// ModRevision.
type item struct {
	blob []byte
	rev  int64
}

// Replica is a [store.Medium] that answers reads from a local copy of the
// whole store under the prefix (the keyring and every sealed record,
// never opened), loaded with one range read at a revision R and kept
// current by a watch from R+1. The store on top of it opens records as it
// would from etcd, so a warm read costs no round trip. The copy is
// persisted (see FORMAT in replicafile.go) and, when etcd cannot be
// reached, is the last-known-good copy: reads go on, marked stale.
//
// A key the copy lacks is read from etcd directly before it is reported
// absent: a name written a moment ago may not have arrived yet. Writes go
// to etcd; the watch brings them back. The applied revision is published
// under <prefix>.plugins/ (see publish.go) so a writer can wait for it.
type Replica struct {
	m   *Medium
	dir string // "" keeps the copy in memory only
	src store.KeySource
	now func() time.Time
	pub *publisher

	mu        sync.RWMutex
	kv        map[string]item
	rev       int64     // the copy holds every change up to this revision
	live      bool      // a list or watch confirmed the copy within staleAfter
	confirmed time.Time // when it last was; zero before the first list
	loadedAt  time.Time // the saved time of the copy read from disk
	lastErr   error     // why the copy is stale, for messages
	changes   changeLog // for the store's watch (replicawatch.go)

	refresh chan struct{}
	dirty   chan struct{}
	saved   chan struct{} // test hook: a save finished
	mac     macCache
	t       timing
	gate    chan struct{} // test hook: each watch waits for it
	lists   atomic.Int64  // lists done, for tests
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Once
}

var _ store.Medium = (*Replica)(nil)

// ReplicaOptions configure [NewReplica].
type ReplicaOptions struct {
	// Dir keeps the copy on disk (0700, the file 0600); empty: memory only.
	Dir string
	// ID names this copy under <prefix>.plugins/; empty publishes nothing.
	ID string

	gate chan struct{} // see Replica.gate
}

type timing struct {
	progressEvery, staleAfter, minBackoff, maxBackoff, missTimeout, persistDelay time.Duration
}

func currentTiming() timing {
	return timing{progressEvery, staleAfter, minBackoff, maxBackoff, missTimeout, persistDelay}
}

// NewReplica loads the copy in o.Dir if there is one (it must pass its
// MAC under the key src opens), then lists the store. If etcd does not
// answer within ctx and a copy was loaded, it starts stale and keeps
// trying; with no copy at all it fails. On success the Replica owns m.
func NewReplica(ctx context.Context, m *Medium, src store.KeySource, o ReplicaOptions) (*Replica, error) {
	r := &Replica{
		m: m, dir: o.Dir, src: src, now: time.Now, kv: map[string]item{},
		refresh: make(chan struct{}, 1), dirty: make(chan struct{}, 1), saved: make(chan struct{}, 1),
		t: currentTiming(), gate: o.gate,
	}
	var loadErr error
	if r.dir != "" {
		loadErr = r.load()
	}
	lctx, cancel := context.WithTimeout(ctx, m.dialTimeout)
	err := r.relist(lctx)
	cancel()
	if err != nil {
		if r.loadedAt.IsZero() {
			return nil, errors.Join(err, loadErr)
		}
		r.setStale(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	r.cancel = stop
	if o.ID != "" {
		r.pub = newPublisher(m, o.ID)
		r.wg.Go(func() { r.pub.run(rctx, r.appliedIfLive) })
		r.pub.kick()
	}
	r.wg.Go(func() { r.run(rctx, err == nil) })
	if r.dir != "" {
		r.wg.Go(func() { r.persist(rctx) })
	}
	r.markDirty()
	return r, nil
}

// String names the cluster and prefix, for messages.
func (r *Replica) String() string { return r.m.String() }

// Staleness says whether the copy is stale (etcd has not confirmed it
// within staleAfter), how old its last confirmation is, and why.
func (r *Replica) Staleness() (stale bool, age time.Duration, why error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.live {
		return false, 0, nil
	}
	at := r.confirmed
	if at.IsZero() {
		at = r.loadedAt
	}
	return true, r.now().Sub(at), r.lastErr
}

// isLive reports whether etcd confirmed the copy within staleAfter.
func (r *Replica) isLive() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.live
}

// Applied is the revision the copy holds every change up to.
func (r *Replica) Applied() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.rev
}

func (r *Replica) appliedIfLive() (int64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.rev, r.live
}

// Refresh makes the copy list the store again now (swarmkeep refresh).
func (r *Replica) Refresh() {
	select {
	case r.refresh <- struct{}{}:
	default:
	}
}

func (r *Replica) get(key string) (item, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	it, ok := r.kv[key]
	return it, ok
}

// missCtx bounds the direct read of a key the copy lacks.
func (r *Replica) missCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if stale, _, _ := r.Staleness(); stale {
		return context.WithTimeout(ctx, r.t.missTimeout)
	}
	return ctx, func() {}
}

// Read answers from the copy; a key it lacks is read from etcd.
func (r *Replica) Read(ctx context.Context, key string) ([]byte, store.Revision, error) {
	if it, ok := r.get(key); ok {
		return it.blob, revision(it.rev), nil
	}
	ctx, cancel := r.missCtx(ctx)
	defer cancel()
	return r.m.Read(ctx, key)
}

// Stat answers from the copy; a key it lacks is asked of etcd.
func (r *Replica) Stat(ctx context.Context, key string) (store.Revision, error) {
	if it, ok := r.get(key); ok {
		return revision(it.rev), nil
	}
	ctx, cancel := r.missCtx(ctx)
	defer cancel()
	return r.m.Stat(ctx, key)
}

// Write goes to etcd; the watch brings the change into the copy.
func (r *Replica) Write(ctx context.Context, key string, blob []byte, prev store.Revision) (store.Revision, error) {
	return r.m.Write(ctx, key, blob, prev)
}

// Delete goes to etcd; the watch brings the change into the copy.
func (r *Replica) Delete(ctx context.Context, key string, prev store.Revision) error {
	return r.m.Delete(ctx, key, prev)
}

// List walks the copy's keys (for Count and the operator listing).
func (r *Replica) List(ctx context.Context, prefix string, fn func(key string) error) error {
	r.mu.RLock()
	keys := make([]string, 0, len(r.kv))
	for k := range r.kv {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	r.mu.RUnlock()
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list: %w: %w", backend.ErrUnavailable, err)
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the watch, saves the copy, withdraws the published revision
// and closes the connection.
func (r *Replica) Close() error {
	var err error
	r.closeMu.Do(func() {
		r.cancel()
		r.wg.Wait()
		if r.dir != "" {
			err = r.save()
		}
		if r.pub != nil {
			r.pub.withdraw(r.m.dialTimeout)
		}
		err = errors.Join(err, r.m.Close())
	})
	return err
}

// storeRange is the part of the prefix the store owns: the keyring and the
// records. The writer lock and the published revisions sort before it
// ('.' < 'k'), so neither is copied nor wakes the watch.
func (r *Replica) storeRange() (lo, hi string) {
	return r.m.prefix + keyringKey, clientv3.GetPrefixRangeEnd(r.m.prefix + recordPrefix)
}

// The store's keys (package store, FORMAT.md).
const (
	keyringKey   = "keyring"
	recordPrefix = "r/"
)

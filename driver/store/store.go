package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// defaultMaxVersions is how many versions of a name are kept when
// InitOptions does not say.
const defaultMaxVersions = 10

// keyReloads bounds how often one read reloads the keyring because it met
// a record sealed with a key it does not know (a rekey in progress
// elsewhere). One reload is enough unless rekeys run back to back.
const keyReloads = 3

// Store is an encrypted, versioned record store on a [Medium]. It is safe
// for concurrent use, and several Stores (in several processes) may share
// one medium: writers serialise on the medium, readers never wait.
type Store struct {
	m     Medium
	lk    Locker // nil if the medium has no store-wide lock
	id    []byte
	cache *recordCache
	watch watchState
	// listRead counts the records the last listing read (the others came
	// from the listing cache), for tests.
	listRead atomic.Int64

	// reloadMu serialises keyring reads and writes in this process, so
	// the installed keyring only ever moves forward.
	reloadMu sync.Mutex
	mu       sync.RWMutex // guards ring, kek and src
	ring     *keyring
	kek      []byte
	src      KeySource

	closed atomic.Bool
}

// InitOptions are the settings of a new store.
type InitOptions struct {
	// MaxVersions is how many versions of each name are kept (1 to
	// 1000); 0 means 10. It is stored in the keyring; see SetMaxVersions.
	MaxVersions int
}

func newStore(m Medium, k KeySource, ring *keyring, kek []byte) *Store {
	s := &Store{m: m, id: ring.id[:], cache: newRecordCache(cacheBytes), ring: ring, kek: kek, src: k}
	s.lk, _ = m.(Locker)
	return s
}

func checkMaxVersions(n int) error {
	if n < 1 || n > maxVersionsLimit {
		return fmt.Errorf("%w: max versions must be 1 to %d, not %d", backend.ErrInvalidRef, maxVersionsLimit, n)
	}
	return nil
}

// Init creates a new store on m, sealed with the key from k. It fails
// with ErrExists if m already holds a store (or stray records). On
// success the Store owns m; Close closes it.
func Init(ctx context.Context, m Medium, k KeySource, o InitOptions) (*Store, error) {
	if o.MaxVersions == 0 {
		o.MaxVersions = defaultMaxVersions
	}
	if err := checkMaxVersions(o.MaxVersions); err != nil {
		return nil, err
	}
	params, err := k.fresh()
	if err != nil {
		return nil, err
	}
	kek, err := k.kek(params)
	if err != nil {
		return nil, err
	}
	s := newStore(m, k, newKeyring(o.MaxVersions, params), kek)
	errStop := errors.New("stop")
	err = s.withLock(ctx, func(ctx context.Context) error {
		if _, err := m.Stat(ctx, keyringKey); err == nil {
			return fmt.Errorf("%w at %s", ErrExists, where(m))
		} else if !errors.Is(err, backend.ErrNotFound) {
			return err
		}
		// Records without a keyring mean a lost keyring; a new one would
		// make them unreadable for good.
		err := m.List(ctx, recordPrefix, func(string) error { return errStop })
		if errors.Is(err, errStop) {
			return fmt.Errorf("%w at %s: it holds records but no keyring", ErrExists, where(m))
		}
		return s.writeRing(ctx, s.ring, kek, "")
	})
	if errors.Is(err, ErrConflict) {
		err = fmt.Errorf("%w at %s", ErrExists, where(m))
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Open opens the store on m with the key from k. A medium without a
// store gives an error wrapping backend.ErrNotFound; a key that does not
// open the keyring gives ErrWrongKey. On success the Store owns m.
func Open(ctx context.Context, m Medium, k KeySource) (*Store, error) {
	blob, rev, err := m.Read(ctx, keyringKey)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("no store at %s (run swarmkeep init): %w", where(m), backend.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	sealed, err := parseKeyring(blob)
	if err != nil {
		return nil, err
	}
	kek, err := k.kek(sealed.r.kdf)
	if err != nil {
		return nil, err
	}
	ring, err := sealed.open(kek)
	if errors.Is(err, ErrWrongKey) {
		return nil, wrongKeyError{src: k.String()}
	}
	if err != nil {
		return nil, err
	}
	ring.rev = rev
	return newStore(m, k, ring, kek), nil
}

// ID returns the store's random ID in hex. Every record is bound to it.
func (s *Store) ID() string { return hex.EncodeToString(s.id) }

// Close forgets the keys (best effort) and closes the medium.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.closeWatch()
	s.cache.close()
	s.mu.Lock()
	clear(s.kek)
	s.ring.wipe()
	s.mu.Unlock()
	return s.m.Close()
}

func (s *Store) ringNow() *keyring {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ring
}

// refreshRing returns the keyring as it is on the medium now, reading it
// again only if its revision changed. Writers call it with the lock held,
// so what they seal with is the active key at the moment they write.
func (s *Store) refreshRing(ctx context.Context) (*keyring, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cur := s.ringNow()
	rev, err := s.m.Stat(ctx, keyringKey)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("keyring: %w: it was removed from %s", backend.ErrCorrupt, where(s.m))
	}
	if err != nil {
		return nil, err
	}
	if rev == cur.rev {
		return cur, nil
	}
	blob, rev, err := s.m.Read(ctx, keyringKey)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	sealed, err := parseKeyring(blob)
	if err != nil {
		return nil, err
	}
	if sealed.r.id != cur.id {
		return nil, corrupt("keyring: it belongs to another store")
	}
	s.mu.RLock()
	kek, src := s.kek, s.src
	s.mu.RUnlock()
	if !sameKDF(sealed.r.kdf, cur.kdf) {
		// Re-wrapped by ChangeKEK in another process: try our source with
		// the new parameters (same passphrase, new salt).
		if kek, err = src.kek(sealed.r.kdf); err != nil {
			return nil, err
		}
	}
	ring, err := sealed.open(kek)
	if errors.Is(err, ErrWrongKey) {
		return nil, wrongKeyError{src: src.String(), why: "the keyring was re-wrapped with another key; restart with the new one"}
	}
	if err != nil {
		return nil, err
	}
	ring.rev = rev
	s.mu.Lock()
	s.ring, s.kek = ring, kek
	s.mu.Unlock()
	return ring, nil
}

func sameKDF(a, b kdfParams) bool {
	return a.kind == b.kind && a.time == b.time && a.memory == b.memory &&
		a.threads == b.threads && string(a.salt) == string(b.salt)
}

// writeRing writes r sealed under kek if the keyring is still at prev,
// and installs it.
func (s *Store) writeRing(ctx context.Context, r *keyring, kek []byte, prev Revision) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	blob, err := r.marshal(kek)
	if err != nil {
		return err
	}
	rev, err := s.m.Write(ctx, keyringKey, blob, prev)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	r.rev = rev
	s.mu.Lock()
	s.ring, s.kek = r, kek
	s.mu.Unlock()
	return nil
}

// withLock runs fn holding the medium's writer lock, if it has one.
func (s *Store) withLock(ctx context.Context, fn func(context.Context) error) error {
	if s.lk == nil {
		return fn(ctx)
	}
	lctx, unlock, err := s.lk.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return fn(lctx)
}

// update runs a read-modify-write, again if a compare-and-swap lost a
// race (only possible on a medium without a lock).
func (s *Store) update(ctx context.Context, fn func(context.Context) error) error {
	if s.closed.Load() {
		return errClosed
	}
	var err error
	for range 8 {
		if err = s.withLock(ctx, fn); !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return err
}

// Medium returns the medium the store is on, for callers that need what a
// particular medium offers (etcdstore's wait for the plugins' replicas).
func (s *Store) Medium() Medium { return s.m }

package store

import (
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
)

// Watcher is implemented by media that can report changes to their keys
// (DirMedium, with inotify). It lets the store trust its record cache
// without asking the medium for a revision on every Get.
type Watcher interface {
	// Watch starts reporting changes. It fails if the medium cannot be
	// watched; the store then checks revisions with Stat.
	Watch() (Watch, error)
}

// Watch reports changes of a medium's keys, by ID.
type Watch interface {
	// ID returns the identity under which Sync reports changes of key.
	ID(key string) string
	// Sync calls changed with the ID of every key changed since the last
	// Sync, or lost if changes may have gone unreported, and returns only
	// once every change completed before Sync was called has been passed
	// on: a write that returned in another process is seen by the next
	// Get. An error means the watch no longer works (the folder was
	// replaced, say): the store drops its cache and goes back to Stat.
	Sync(changed func(id string), lost func()) error
	Close() error
}

// watchState is the store's side of a Watch, started by the first cached
// read (commands that never Get do not pay for it).
type watchState struct {
	once sync.Once
	w    atomic.Pointer[watchBox] // nil: not watching (not started, cannot, or broken)
}

// watchBox holds the watch and the cache's callbacks for its Sync, made
// once: a method value made per call would cost two allocations per read.
type watchBox struct {
	w       Watch
	changed func(id string)
	lost    func()
}

// watching returns the store's working watch, starting it on first use,
// after syncing it; nil means "check revisions with Stat".
func (s *Store) watching() Watch {
	s.watch.once.Do(func() {
		if wr, ok := s.m.(Watcher); ok {
			if w, err := wr.Watch(); err == nil {
				s.watch.w.Store(&watchBox{w: w, changed: s.cache.drop, lost: s.cache.reset})
			}
		}
	})
	b := s.watch.w.Load()
	if b == nil {
		return nil
	}
	if err := b.w.Sync(b.changed, b.lost); err != nil {
		// Back to Stat for good. The cache is keyed by watch IDs: drop
		// it after the switch, so nothing keyed by them survives.
		if s.watch.w.CompareAndSwap(b, nil) {
			b.w.Close()
		}
		s.cache.reset()
		return nil
	}
	return b.w
}

// cacheID is the cache key of name: the watch's ID for its record while a
// watch works, else the name (whose cached revision Stat checks).
func (s *Store) cacheID(name string) string {
	if b := s.watch.w.Load(); b != nil {
		return b.w.ID(recordKey(name))
	}
	return name
}

// closeWatch stops the watch, if any.
func (s *Store) closeWatch() {
	s.watch.once.Do(func() {}) // never start one after Close
	if b := s.watch.w.Swap(nil); b != nil {
		b.w.Close()
	}
}

// cachedRecord returns name's latest version from the cache if it is still
// current, else the generation and revision under which to cache what the
// caller reads next.
func (s *Store) cachedRecord(ctx context.Context, name string) (rec *record, id string, rev Revision, gen uint64, err error) {
	key := recordKey(name)
	if w := s.watching(); w != nil {
		id = w.ID(key)
	} else {
		id = name
		if rev, err = s.m.Stat(ctx, key); err != nil {
			return nil, "", "", 0, err
		}
	}
	v, ok, gen := s.cache.get(id, rev)
	if ok {
		// The cache keeps key IDs, not keys: a key a rekey has dropped
		// since makes the entry a miss.
		if key := s.ringNow().keys[v.keyID]; key != nil {
			return v.record(name, key), id, rev, gen, nil
		}
	}
	return nil, id, rev, gen, nil
}

// sha256ID is the ID of a key for media that name their objects by the
// SHA-256 of the key (DirMedium).
func sha256ID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return string(sum[:])
}

package cache

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// LKG keeps last-known-good copies on disk, so a restarted plugin can
// answer while its backend is down. Implementations must be safe for
// concurrent use and must not keep the Secret passed to Save.
type LKG interface {
	// Load returns key's copy and when it was saved. An absent copy gives
	// an error wrapping backend.ErrNotFound.
	Load(ctx context.Context, key string) (backend.Secret, time.Time, error)
	// Save replaces key's copy with s, which the backend gave at saved:
	// the copy's age is counted from then, however late it is written.
	Save(ctx context.Context, key string, s backend.Secret, saved time.Time) error
}

// Forgetter is an LKG that can remove a copy. The cache removes a key's
// copy when the backend says not found, or that the value varies, so a
// deleted or per-task secret is not served from disk later.
type Forgetter interface {
	// Forget removes key's copy; an absent copy is not an error.
	Forget(ctx context.Context, key string) error
}

// lkgState is what the cache knows of a key's disk copy, so it writes
// only when the value changed or the copy is getting old.
type lkgState struct {
	known bool // false: find out by loading the copy
	has   bool
	sum   [sha256.Size]byte // keyed digest of the copy's answer
	saved time.Time         // when the backend gave that answer
}

// sum digests an answer: value, version and creation time.
func (c *Cache) sum(s backend.Secret) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.sumKey[:])
	var hdr [16]byte
	binary.BigEndian.PutUint64(hdr[:8], s.Version)
	if !s.Created.IsZero() {
		binary.BigEndian.PutUint64(hdr[8:], uint64(s.Created.UnixNano()))
	}
	m.Write(hdr[:])
	m.Write(s.Value)
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// lkgContext bounds one LKG operation: the disk is local, but a request
// must never wait on it for long.
func (c *Cache) lkgContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.o.Timeout)
}

// loadLKG returns k's disk copy, with a value the cache owns.
func (c *Cache) loadLKG(k key) (backend.Secret, time.Time, error) {
	ctx, cancel := c.lkgContext()
	defer cancel()
	s, saved, err := c.lkg.Load(ctx, k.String())
	if err != nil {
		if !errors.Is(err, backend.ErrNotFound) {
			c.n.lkgErrors.Add(1)
		}
		return backend.Secret{}, time.Time{}, err
	}
	s.Value = bytes.Clone(s.Value)
	return s, saved, nil
}

// latestCopy returns k's newest copy not in memory: the one queued for
// the disk, else the disk's; onDisk says which. A queued removal means
// there is none.
func (c *Cache) latestCopy(k key) (s backend.Secret, saved time.Time, onDisk bool, err error) {
	s, saved, kind, found := c.w.peek(k)
	switch {
	case found && kind == opForget:
		return backend.Secret{}, time.Time{}, false, fmt.Errorf("last-known-good copy being removed: %w", backend.ErrNotFound)
	case found:
		return s, saved, false, nil
	}
	s, saved, err = c.loadLKG(k)
	return s, saved, err == nil, err
}

// saveLocked queues the write of s (whose value it clones) as k's disk
// copy, fetched at saved, unless st says the disk already holds it, fresh
// enough, and no other work for k is queued. sum is c.sum(s), computed
// before the lock. It is called with c.mu held.
func (c *Cache) saveLocked(k key, s backend.Secret, sum [sha256.Size]byte, saved time.Time, st lkgState) {
	if c.w == nil {
		return
	}
	if st.known && st.has && st.sum == sum && saved.Sub(st.saved) <= c.o.MaxStale/2 && !c.w.has(k) {
		return
	}
	s.Value = bytes.Clone(s.Value)
	s.Stale, s.Age, s.Varies = false, 0, false
	c.n.lkgErrors.Add(uint64(c.w.put(&lkgOp{k: k, kind: opSave, s: s, saved: saved})))
}

// inspectLKG learns what the disk holds for k, once per entry, so a
// restart does not rewrite every copy.
func (c *Cache) inspectLKG(ctx context.Context, k key) lkgState {
	old, saved, err := c.lkg.Load(ctx, k.String())
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return lkgState{known: true}
	case err != nil:
		c.n.lkgErrors.Add(1)
		return lkgState{}
	}
	st := lkgState{known: true, has: true, sum: c.sum(old), saved: saved}
	clear(old.Value)
	return st
}

// forgetLocked makes sure no copy of k is written, and queues the removal
// of the one on disk unless it is known to be absent. It is called with
// c.mu held.
func (c *Cache) forgetLocked(k key, st lkgState) {
	if c.w == nil {
		return
	}
	c.w.drop(k)
	_, ok := c.lkg.(Forgetter)
	if !ok || (st.known && !st.has && !c.w.has(k)) {
		return
	}
	c.n.lkgErrors.Add(uint64(c.w.put(&lkgOp{k: k, kind: opForget})))
}

// lkgStateOf returns what k's entry knows of its disk copy.
func (c *Cache) lkgStateOf(k key) lkgState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries.peek(k); e != nil {
		return e.lkg
	}
	return lkgState{}
}

// setLKGState records st on k's entry, if it is still cached.
func (c *Cache) setLKGState(k key, st lkgState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries.peek(k); e != nil {
		e.lkg = st
	}
}

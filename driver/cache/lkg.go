package cache

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
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

// saveLater returns the work of bringing k's disk copy up to s (whose
// value it clones now), fetched at fetched, given what is known of that
// copy. It writes only if the copy differs or was fetched more than
// MaxStale/2 earlier.
func (c *Cache) saveLater(k key, s backend.Secret, fetched time.Time, st lkgState) func() {
	if c.lkg == nil {
		return nil
	}
	s.Value = bytes.Clone(s.Value)
	s.Stale, s.Age, s.Varies = false, 0, false
	return func() {
		defer clear(s.Value)
		ctx, cancel := c.lkgContext()
		defer cancel()
		sum := c.sum(s)
		if !st.known {
			st = c.inspectLKG(ctx, k)
		}
		if st.known && st.has && st.sum == sum && fetched.Sub(st.saved) <= c.o.MaxStale/2 {
			c.setLKGState(k, st)
			return
		}
		if err := c.lkg.Save(ctx, k.String(), s, fetched); err != nil {
			c.n.lkgErrors.Add(1)
			return
		}
		c.n.lkgWrites.Add(1)
		c.setLKGState(k, lkgState{known: true, has: true, sum: sum, saved: fetched})
	}
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

// forgetLater returns the work of removing k's disk copy, unless it is
// known to be absent.
func (c *Cache) forgetLater(k key, st lkgState) func() {
	fg, ok := c.lkg.(Forgetter)
	if !ok || (st.known && !st.has) {
		return nil
	}
	return func() {
		ctx, cancel := c.lkgContext()
		defer cancel()
		if err := fg.Forget(ctx, k.String()); err != nil {
			c.n.lkgErrors.Add(1)
			return
		}
		c.setLKGState(k, lkgState{known: true})
	}
}

// setLKGState records st on k's entry, if it is still cached.
func (c *Cache) setLKGState(k key, st lkgState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries.peek(k); e != nil {
		e.lkg = st
	}
}

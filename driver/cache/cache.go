package cache

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// errClosed answers requests made after Close.
var errClosed = fmt.Errorf("%w: cache is closed", backend.ErrUnavailable)

// Cache is a backend.Backend that answers from memory, coalesces misses and
// serves last-known-good copies while the backend it wraps fails. It is
// safe for concurrent use.
type Cache struct {
	b   backend.Backend
	o   Options
	lkg LKG // nil when there is no LKG or stale serving is off
	// sumKey keys the digests that tell whether the LKG already holds a
	// value, so they cannot be used to guess low-entropy values.
	sumKey [32]byte
	n      counters
	// bg tracks backend calls running apart from requests, so Close waits
	// for them before closing the backend.
	bg sync.WaitGroup
	// w writes disk copies, in its own goroutine; nil without an LKG.
	w *lkgWriter

	pf *prefetcher // nil without prefetching

	mu      sync.Mutex // guards the fields below
	closed  bool
	entries *lru
	flights map[key]*flight
	circ    circuit
}

var _ backend.Backend = (*Cache)(nil)

// New returns a Cache over b. The Cache owns b: Close closes it. The LKG in
// o is not closed; close its store after the Cache.
func New(b backend.Backend, o Options) (*Cache, error) {
	if b == nil {
		return nil, errors.New("cache: no backend to wrap")
	}
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	c := &Cache{
		b: b, o: o, lkg: o.LKG,
		entries: newLRU(o.MaxEntries),
		flights: make(map[key]*flight),
		circ:    circuit{retryAfter: o.RetryAfter},
	}
	rand.Read(c.sumKey[:])
	if c.lkg != nil {
		c.w = newLKGWriter(o.MaxEntries)
		go c.writeLoop()
	}
	c.startPrefetch()
	return c, nil
}

// Stats returns the counters.
func (c *Cache) Stats() Stats { return c.n.snapshot() }

// Get answers ref from memory when fresh, otherwise from one backend call
// shared by every request for the same key, falling back to a
// last-known-good copy when the backend is unavailable.
func (c *Cache) Get(ctx context.Context, ref backend.Ref) (backend.Secret, error) {
	if !ref.Reuse {
		return c.direct(ctx, ref)
	}
	k := keyOf(ref)
	now := c.o.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return backend.Secret{}, errClosed
	}
	e := c.entries.peek(k)
	if e != nil {
		age := now.Sub(e.at)
		switch {
		case c.fresh(e, now):
			return c.hitLocked(e), nil
		case e.kind == negative && age < c.o.NegativeTTL:
			c.entries.touch(e)
			err := e.err
			c.mu.Unlock()
			c.n.negHits.Add(1)
			return backend.Secret{}, err
		case e.kind == varies && age < c.o.TTL:
			// Known to vary per task: no sharing, no caching.
			c.entries.touch(e)
			c.mu.Unlock()
			return c.direct(ctx, ref)
		}
	}
	c.n.misses.Add(1)
	return c.missLocked(ctx, k, ref, e)
}

// GetFromMemory is backend.MemoryGetter: Get's answer when it is a fresh
// entry, with no backend call and no waiting; false for anything else
// (a miss, an expired, negative or per-task entry, a copy from disk), which
// Get then handles.
func (c *Cache) GetFromMemory(ref backend.Ref) (backend.Secret, bool) {
	if !ref.Reuse {
		return backend.Secret{}, false
	}
	k := keyOf(ref)
	now := c.o.Now()
	c.mu.Lock()
	e := c.entries.peek(k)
	if c.closed || e == nil || !c.fresh(e, now) {
		c.mu.Unlock()
		return backend.Secret{}, false
	}
	return c.hitLocked(e), true
}

// hitLocked answers a fresh entry: a copy of its value, marked cached. It
// is called with c.mu held and releases it.
func (c *Cache) hitLocked(e *entry) backend.Secret {
	c.entries.touch(e)
	s := e.s
	s.Value = bytes.Clone(s.Value)
	s.Cached = true
	c.mu.Unlock()
	c.n.hits.Add(1)
	return s
}

var _ backend.MemoryGetter = (*Cache)(nil)

// fresh says whether e answers from memory: a value the backend gave less
// than a TTL ago.
func (c *Cache) fresh(e *entry, now time.Time) bool {
	return e.kind == positive && !e.fromLKG && !e.wiped && now.Sub(e.at) < c.o.TTL
}

// missLocked answers a request that no fresh entry answers: by joining or
// starting a flight, or at once from a copy while the circuit is open. It is
// called with c.mu held and releases it.
func (c *Cache) missLocked(ctx context.Context, k key, ref backend.Ref, e *entry) (backend.Secret, error) {
	now := c.o.Now()
	hasCopy := e != nil && e.kind == positive
	usable := hasCopy && !e.wiped && c.o.MaxStale > 0 && now.Sub(e.at) <= c.o.MaxStale
	if f := c.flights[k]; f != nil {
		if usable && c.circ.failing {
			// The backend is failing: do not wait on it with a copy at hand.
			return c.serveCopy(e, now)
		}
		c.n.coalesced.Add(1)
		f.refs++
		c.mu.Unlock()
		return c.wait(ctx, f, ref, false)
	}
	admitted, probe := c.circ.admit(now)
	switch {
	case !admitted && hasCopy:
		return c.serveCopy(e, now)
	case !admitted && (e != nil || c.lkg == nil):
		// A negative or varies entry is newer than any disk copy.
		err := noCopy(c.circ.cause(now, k))
		c.mu.Unlock()
		return backend.Secret{}, err
	case !admitted:
		f := c.startLocked(ctx, k, ref, modeCopies, false, c.circ.cause(now, k))
		f.refs++
		c.mu.Unlock()
		return c.wait(ctx, f, ref, true)
	case probe && usable:
		// Probe in the background; this request does not wait for it.
		c.startLocked(ctx, k, ref, modeFetch, true, nil)
		return c.serveCopy(e, now)
	}
	f := c.startLocked(ctx, k, ref, modeFetch, probe, nil)
	f.refs++
	c.mu.Unlock()
	return c.wait(ctx, f, ref, true)
}

// serveCopy answers e as a stale copy, or the error that says why it
// cannot be (the circuit's cause). It is called with c.mu held and
// releases it.
func (c *Cache) serveCopy(e *entry, now time.Time) (backend.Secret, error) {
	s, err := c.copyLocked(e, now, func() error { return c.circ.cause(now, e.k) })
	if err == nil {
		c.entries.touch(e)
	}
	c.mu.Unlock()
	if err == nil {
		c.n.stale.Add(1)
	}
	return s, err
}

// direct makes a backend call for this request alone, for values that must
// not be shared: Reuse false, or Varies. The circuit still applies, so a
// down backend costs these requests no latency either.
func (c *Cache) direct(ctx context.Context, ref backend.Ref) (backend.Secret, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return backend.Secret{}, errClosed
	}
	now := c.o.Now()
	k := keyOf(ref)
	admitted, probe := c.circ.admit(now)
	if !admitted {
		err := unavailable(c.circ.cause(now, k))
		c.mu.Unlock()
		return backend.Secret{}, err
	}
	c.mu.Unlock()
	s, err := c.call(ctx, ref)
	c.mu.Lock()
	// A caller that gave up says nothing about the backend.
	c.circ.report(c.o.Now(), k, probe, err, ctx.Err() != nil)
	c.mu.Unlock()
	return s, err
}

// Close wipes every cached value, waits for background calls (each
// bounded by Timeout) and for the pending disk copies to be written
// (bounded as a whole, a few seconds), then closes the backend. Copies not
// written in time are counted in Stats and reported in its error.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.entries.clear()
	c.mu.Unlock()
	c.stopPrefetch()
	c.bg.Wait()
	return errors.Join(c.closeWriter(), c.b.Close())
}

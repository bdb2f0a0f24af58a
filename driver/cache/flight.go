package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

type mode uint8

const (
	modeFetch  mode = iota // call the backend, then fall back to copies
	modeCopies             // circuit open: load the disk copy only
)

// flight is one answer being produced for every request waiting on a key.
// It runs in its own goroutine, apart from the request that started it, so
// that request giving up does not cancel it for the others.
type flight struct {
	k     key
	ref   backend.Ref
	mode  mode
	probe bool  // the circuit's half-open probe
	cause error // modeCopies: why the backend is not called; set before run starts

	done chan struct{}  // closed when s and err are set
	s    backend.Secret // s.Value is the flight's own copy
	err  error
	// refs counts requests that still have to copy s.Value; the last one
	// (or the flight, if none) zeroes it. Guarded by Cache.mu.
	refs     int
	finished bool
}

// startLocked registers and starts a flight for k. The backend call keeps
// ctx's values but not its cancellation: it is bounded by Timeout alone.
// cause is modeCopies' reason; like every field the flight's goroutine
// reads without the lock, it is set before that goroutine starts.
func (c *Cache) startLocked(ctx context.Context, k key, ref backend.Ref, m mode, probe bool, cause error) *flight {
	f := &flight{k: k, ref: ref, mode: m, probe: probe, cause: cause, done: make(chan struct{})}
	c.flights[k] = f
	c.bg.Add(1)
	go c.run(context.WithoutCancel(ctx), f)
	return f
}

// wait returns f's answer, or an error when ctx ends first. A request that
// did not start f does not take a Varies answer, fetched for another
// request: it makes its own call.
func (c *Cache) wait(ctx context.Context, f *flight, ref backend.Ref, starter bool) (backend.Secret, error) {
	select {
	case <-f.done:
	case <-ctx.Done():
		c.mu.Lock()
		c.releaseLocked(f)
		c.mu.Unlock()
		return backend.Secret{}, fmt.Errorf("%w: no answer in time: %w", backend.ErrUnavailable, ctx.Err())
	}
	c.mu.Lock()
	s, err := f.s, f.err
	s.Value = bytes.Clone(f.s.Value)
	c.releaseLocked(f)
	c.mu.Unlock()
	if err == nil && s.Varies && !starter {
		clear(s.Value)
		return c.direct(ctx, ref)
	}
	if err == nil && s.Stale {
		c.n.stale.Add(1)
	}
	return s, err
}

func (c *Cache) releaseLocked(f *flight) {
	f.refs--
	if f.finished && f.refs == 0 {
		clear(f.s.Value)
	}
}

// finishLocked publishes f's answer.
func (c *Cache) finishLocked(f *flight) {
	f.finished = true
	if c.flights[f.k] == f {
		delete(c.flights, f.k)
	}
	close(f.done)
	if f.refs == 0 {
		clear(f.s.Value)
	}
}

// run produces f's answer.
func (c *Cache) run(ctx context.Context, f *flight) {
	defer c.bg.Done()
	cause := f.cause
	if f.mode == modeFetch {
		s, err := c.call(ctx, f.ref)
		if !isUnavailable(err) {
			c.settle(f, s, err)
			return
		}
		cause = err
	}
	c.fallback(f, cause)
}

// call asks the backend, giving up at min(ctx's deadline, Timeout) even if
// the backend ignores its context; an abandoned call ends in the
// background and its answer is dropped.
func (c *Cache) call(ctx context.Context, ref backend.Ref) (backend.Secret, error) {
	c.n.calls.Add(1)
	limit := c.o.Timeout
	if d, ok := ctx.Deadline(); ok {
		limit = min(limit, time.Until(d))
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	type result struct {
		s   backend.Secret
		err error
	}
	ch := make(chan result)
	gone := make(chan struct{})
	go func() {
		s, err := c.b.Get(ctx, ref)
		select {
		case ch <- result{s, err}:
		case <-gone:
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil && !errors.Is(r.err, backend.ErrNotFound) {
			c.n.callErrors.Add(1)
		}
		return r.s, r.err
	case <-ctx.Done():
		close(gone)
		c.n.callErrors.Add(1)
		return backend.Secret{}, fmt.Errorf("%w: no answer within %s: %w", backend.ErrUnavailable, short(limit), ctx.Err())
	}
}

// settle records an answer the backend gave (a value or a real error),
// queues the disk work it calls for, and publishes it.
func (c *Cache) settle(f *flight, s backend.Secret, err error) {
	var sum [sha256.Size]byte
	if err == nil && !s.Varies && c.w != nil {
		sum = c.sum(s) // outside the lock: it reads the whole value
	}
	now := c.o.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.circ.report(now, f.k, f.probe, err, false)
	switch {
	case err == nil:
		f.s = s
		f.s.Value = bytes.Clone(s.Value) // never zero what the backend owns
		f.s.Stale, f.s.Age = false, 0
	case errors.Is(err, backend.ErrNotFound):
		f.err = err
	default:
		// Denied, corrupt, invalid: passed on, never cached, and the
		// entry (and its copy) left as it was.
		f.err = err
		c.finishLocked(f)
		return
	}
	if c.closed {
		c.finishLocked(f)
		return
	}
	e, evicted := c.entries.upsert(f.k)
	c.n.evictions.Add(uint64(evicted))
	e.wipe()
	e.at, e.fromLKG, e.name = now, false, f.ref.Name
	switch {
	case err != nil:
		// Kept even with NegativeTTL zero: it is newer than any copy, so
		// no copy of this key may be served.
		e.kind, e.err = negative, err
		c.forgetLocked(f.k, e.lkg)
	case s.Varies:
		e.kind = varies
		c.forgetLocked(f.k, e.lkg)
	default:
		e.kind = positive
		e.s = f.s
		e.s.Value = bytes.Clone(f.s.Value)
		c.saveLocked(f.k, e.s, sum, now, e.lkg)
	}
	c.finishLocked(f)
}

// fallback answers f from the newest copy: the memory entry, or else the
// copy queued for the disk, or else the disk copy, which it then keeps in
// memory.
func (c *Cache) fallback(f *flight, cause error) {
	now := c.o.Now()
	c.mu.Lock()
	if f.mode == modeFetch {
		c.circ.report(now, f.k, f.probe, cause, false)
	}
	if e := c.entries.peek(f.k); e != nil || c.lkg == nil || c.closed {
		f.s, f.err = c.copyLocked(e, now, func() error { return cause })
		c.finishLocked(f)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()

	s, saved, onDisk, err := c.latestCopy(f.k)
	if err != nil {
		// No copy of this very request: one of the document it reads,
		// saved by a prefetch, may answer it.
		if ps, psaved, perr := c.prefetchedCopy(f.ref); perr == nil {
			s, saved, onDisk, err = ps, psaved, false, nil
		}
	}
	now = c.o.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch age := now.Sub(saved); {
	case err != nil:
		f.err = noCopy(cause)
	case age > c.o.MaxStale:
		clear(s.Value)
		f.err = tooOld(age, c.o.MaxStale, cause)
	default:
		s.Stale, s.Age, s.Varies = true, max(age, 0), false
		f.s = s
		if c.entries.peek(f.k) == nil && !c.closed {
			e, evicted := c.entries.upsert(f.k)
			c.n.evictions.Add(uint64(evicted))
			e.kind, e.at, e.fromLKG, e.name = positive, saved, true, f.ref.Name
			e.s = s
			e.s.Value = bytes.Clone(s.Value)
			e.s.Stale, e.s.Age = false, 0
			if onDisk {
				e.lkg = lkgState{known: true, has: true, sum: c.sum(s), saved: saved}
			}
		}
	}
	c.finishLocked(f)
}

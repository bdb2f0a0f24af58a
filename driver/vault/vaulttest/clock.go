package vaulttest

import (
	"sort"
	"sync"
	"testing"
	"time"
)

// Clock is a fake clock that moves only when a test advances it. Given to
// the server with [Server.SetClock] and to the code under test, it lets a
// test step through token leases, renewals and expiry without waiting for
// them on the wall clock. Its methods are safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	added  chan struct{} // closed and replaced whenever a timer is added
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

// NewClock returns a clock that reads start until advanced.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, added: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a channel that receives the clock's time once it has
// been advanced by d or more, and a func that stops the timer (it reports
// whether the timer was still pending). A timer of d <= 0 fires at once.
func (c *Clock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		return t.c, func() bool { return false }
	}
	c.timers = append(c.timers, t)
	close(c.added)
	c.added = make(chan struct{})
	return t.c, func() bool { return c.stop(t) }
}

func (c *Clock) stop(t *fakeTimer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.timers {
		if p == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Advance moves the clock on by d and fires every timer due by then.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.c <- c.now
	}
	c.timers = kept
}

// Pending returns how long from now each pending timer is due, soonest
// first.
func (c *Clock) Pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, len(c.timers))
	for i, t := range c.timers {
		out[i] = t.at.Sub(c.now)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// WaitTimer blocks until a timer is pending (the code under test is asleep
// on the clock) and returns how long until the soonest one is due. It
// fails the test if none is set within a generous real-time bound, which
// only a hang reaches.
func (c *Clock) WaitTimer(t testing.TB) time.Duration {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		added := c.added
		n := len(c.timers)
		c.mu.Unlock()
		if n > 0 {
			return c.Pending()[0]
		}
		select {
		case <-added:
		case <-deadline.C:
			t.Fatalf("vaulttest: no timer set on the fake clock within 10s")
			return 0
		}
	}
}

// SetClock makes the server tell time by now (token issue, expiry and
// renewal, KV timestamps, JWT validity) instead of the system clock.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

package driver

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Bounds on backend calls that outlive their request. A read blocked in the
// kernel (open() on a hung disk or NFS mount) cannot be cancelled: its
// goroutine holds an OS thread until the kernel lets go. Each request that
// gives up on such a read leaves one thread behind, and after about 10,000
// the Go runtime aborts the process ("thread exhaustion"). So a route
// counts its calls still running after their request was answered, and
// past the bound refuses new ones at once, without a goroutine or a
// thread. Calls waited on by a live request are bounded by the plugin
// socket's connection cap, so threads stay under that cap plus these.
const (
	// DefaultMaxStuck bounds, per route, the calls that outlived their
	// request; well above what a healthy backend leaves behind (none) and
	// far below the runtime's 10,000 threads.
	DefaultMaxStuck = 64
	// maxStuckPerName bounds them per stored name, so one record that hangs
	// (a bad sector, a FIFO) does not use up the route's bound and take
	// the other names with it.
	maxStuckPerName = 4
)

// gate is one route's count of calls that outlived their request.
type gate struct {
	max    int
	mu     sync.Mutex
	stuck  int
	byName map[string]int
	// any mirrors stuck for full's check without the lock: on a healthy
	// backend it is always 0, and every request asks.
	any atomic.Int64
}

func newGate(max int) *gate {
	return &gate{max: max, byName: map[string]int{}}
}

// full says why a new call for name must not start, or "" when it may.
func (g *gate) full(name string) string {
	if g.any.Load() == 0 {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := g.byName[name]; n >= maxStuckPerName {
		return fmt.Sprintf("%d earlier reads of %s are still stuck in the backend (a hung disk or mount?)", n, quoteShort(name))
	}
	if g.stuck >= g.max {
		return fmt.Sprintf("%d earlier reads are still stuck in the backend (a hung disk or mount?)", g.stuck)
	}
	return ""
}

func (g *gate) add(name string, d int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stuck += d
	g.any.Store(int64(g.stuck))
	// A call's return can be counted (-1) just before its abandonment
	// (+1), so a name may dip below zero for a moment: only an exact zero
	// is forgotten, or the late +1 would be left behind for good.
	if g.byName[name] += d; g.byName[name] == 0 {
		delete(g.byName, name)
	}
}

// Stuck returns how many calls to a route's backend outlived their
// request and have not returned yet (for tests and the operator).
func (d *Driver) Stuck(route string) int {
	g, ok := d.gates[route]
	if !ok {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stuck
}

// Call states, for the race between a backend's answer and the deadline.
const (
	callRunning int32 = iota
	callDone
	callAbandoned
)

// boundedCall is one backend call and its outcome, in one allocation: it
// runs on every request.
type boundedCall struct {
	ctx   context.Context
	g     *gate
	b     backend.Backend
	ref   backend.Ref
	s     backend.Secret
	err   error
	done  chan struct{} // closed once s and err are set
	state atomic.Int32
}

func (c *boundedCall) run() {
	c.s, c.err = c.b.Get(c.ctx, c.ref)
	close(c.done)
	if !c.state.CompareAndSwap(callRunning, callDone) {
		c.g.add(c.ref.Name, -1) // abandoned: it has come back
	}
}

// getBounded returns when the backend answers or the deadline passes,
// whichever is first, so even a backend that ignores its context cannot hold
// the swarm leader. An abandoned call finishes in the background and counts
// against the route's gate until it does.
func getBounded(ctx context.Context, g *gate, b backend.Backend, ref backend.Ref) (backend.Secret, error) {
	if why := g.full(ref.Name); why != "" {
		return backend.Secret{}, fmt.Errorf("%w: %s", backend.ErrUnavailable, why)
	}
	c := &boundedCall{ctx: ctx, g: g, b: b, ref: ref, done: make(chan struct{})}
	go c.run()
	select {
	case <-c.done:
		if c.err != nil && ctx.Err() != nil {
			return backend.Secret{}, fmt.Errorf("no answer in time: %w", context.DeadlineExceeded)
		}
		return c.s, c.err
	case <-ctx.Done():
		if c.state.CompareAndSwap(callRunning, callAbandoned) {
			g.add(ref.Name, 1)
		}
		return backend.Secret{}, fmt.Errorf("no answer in time: %w", context.DeadlineExceeded)
	}
}

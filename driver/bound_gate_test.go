package driver

import "testing"

// A call that returns (-1) just before its request gives up on it (+1)
// leaves the counts at zero: the gate must not remember the name.
func TestGateCountsBalanceWhenReturnBeatsAbandon(t *testing.T) {
	g := newGate(DefaultMaxStuck)
	g.add("x", -1) // the backend's goroutine came back first
	g.add("x", +1) // then the request's abandonment was counted
	if g.stuck != 0 || g.any.Load() != 0 || len(g.byName) != 0 {
		t.Fatalf("stuck=%d any=%d byName=%v, want all zero", g.stuck, g.any.Load(), g.byName)
	}
	for range 4 {
		g.add("y", +1)
	}
	if why := g.full("x"); why != "" {
		t.Fatalf("x refused for y's stuck calls: %s", why)
	}
}

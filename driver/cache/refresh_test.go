package cache

import (
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// TestRefresh: Refresh(name) makes the next request for that name, and no
// other, ask the backend; the dropped copy still answers, marked stale, if
// the backend is then down; a remembered not-found is forgotten.
func TestRefresh(t *testing.T) {
	clk := newClock()
	f := newFake()
	f.set("a", "a1")
	f.set("b", "b1")
	c := newCache(t, f, testOptions(clk))
	wantValue(t, get(t, c, ref("a")), "a1", false)
	wantValue(t, get(t, c, ref("b")), "b1", false)
	getErr(t, c, ref("gone"), backend.ErrNotFound)
	wantCalls(t, f, 3)
	f.set("a", "a2")
	f.set("b", "b2")
	f.set("gone", "back")
	wantValue(t, get(t, c, ref("a")), "a1", false) // fresh within the TTL
	wantCalls(t, f, 3)

	if n := c.Refresh("a"); n != 1 {
		t.Fatalf("Refresh(a) dropped %d, want 1", n)
	}
	wantValue(t, get(t, c, ref("a")), "a2", false)
	wantValue(t, get(t, c, ref("b")), "b1", false) // untouched
	wantCalls(t, f, 4)

	if n := c.Refresh(""); n != 3 {
		t.Fatalf("Refresh() dropped %d, want 3 (a, b, gone)", n)
	}
	wantValue(t, get(t, c, ref("gone")), "back", false)
	f.down.Store(true)
	wantValue(t, get(t, c, ref("b")), "b1", true) // the old copy, as last-known-good
}

package cache

import (
	"fmt"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// TestOpenCircuitCauseIsSetBeforeTheFlightRuns asks, while the circuit is
// open, for keys with neither a memory nor a disk copy: each starts a
// flight that only loads the disk copy and answers with the circuit's
// cause. That cause must be in the flight before its goroutine starts; set
// after, the flight may read nil ("%!w(<nil>)"), and -race reports the
// unguarded write.
func TestOpenCircuitCauseIsSetBeforeTheFlightRuns(t *testing.T) {
	f := newFake()
	f.down.Store(true)
	clk := newClock()
	o := testOptions(clk)
	o.LKG = mustLKG(t, clk)
	c := newCache(t, f, o)

	getErr(t, c, ref("opener"), backend.ErrUnavailable) // opens the circuit
	for i := range 50 {
		name := fmt.Sprintf("cold-%d", i)
		err := getErr(t, c, ref(name), backend.ErrUnavailable)
		if msg := err.Error(); strings.Contains(msg, "%!") || !strings.Contains(msg, "no last-known-good copy") ||
			!strings.Contains(msg, "next try in") {
			t.Fatalf("%s: error %q", name, msg)
		}
	}
	wantCalls(t, f, 1)
}

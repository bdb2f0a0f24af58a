package cache

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
	o.LKG = mustLKG(t)
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

// namingBackend fails, once told to, with an error naming the secret asked
// for, as real backends do.
type namingBackend struct {
	*fakeBackend
	failing bool
}

func (b *namingBackend) Get(ctx context.Context, ref backend.Ref) (backend.Secret, error) {
	if b.failing {
		b.calls.Add(1)
		return backend.Secret{}, fmt.Errorf("read %s-secret: %w: connection refused", ref.Name, backend.ErrUnavailable)
	}
	return b.fakeBackend.Get(ctx, ref)
}

// TestCircuitErrorNamesOnlyTheRequestedSecret opens the circuit with one
// secret's failure, then asks for others: their errors must not carry the
// first secret's error, which names it, as if it were their own cause.
func TestCircuitErrorNamesOnlyTheRequestedSecret(t *testing.T) {
	for _, withLKG := range []bool{false, true} {
		t.Run(fmt.Sprintf("lkg=%v", withLKG), func(t *testing.T) {
			f := &namingBackend{fakeBackend: newFake()}
			f.set("beta", "b1")
			clk := newClock()
			o := testOptions(clk)
			o.MaxStale, o.RetryAfter = time.Minute, time.Hour
			if withLKG {
				o.LKG = mustLKG(t)
			}
			c := newCache(t, f, o)
			get(t, c, ref("beta"))
			settle(c)
			clk.Add(2 * time.Minute) // beta's copy is now past max stale

			f.failing = true
			err := getErr(t, c, ref("alpha"), backend.ErrUnavailable)
			if !strings.Contains(err.Error(), "read alpha-secret") {
				t.Fatalf("alpha's own error lost its cause: %q", err)
			}
			// Its own cause is kept while the circuit is open.
			err = getErr(t, c, ref("alpha"), backend.ErrUnavailable)
			if !strings.Contains(err.Error(), "read alpha-secret") || !strings.Contains(err.Error(), "next try in") {
				t.Fatalf("alpha again: %q", err)
			}

			// No copy: the error says the backend is failing, not why
			// alpha failed.
			err = getErr(t, c, ref("gamma"), backend.ErrUnavailable)
			if msg := err.Error(); strings.Contains(msg, "alpha") || !strings.Contains(msg, "no last-known-good copy") ||
				!strings.Contains(msg, "next try in") {
				t.Fatalf("gamma: %q", msg)
			}
			// A per-task reference goes straight to the circuit.
			_, err = c.Get(context.Background(), backend.Ref{Name: "delta"})
			if err == nil || strings.Contains(err.Error(), "alpha") {
				t.Fatalf("delta: %v", err)
			}
			// A copy past max stale: the error says how old it is, and
			// still nothing of alpha.
			err = getErr(t, c, ref("beta"), backend.ErrUnavailable)
			if msg := err.Error(); strings.Contains(msg, "alpha") || !strings.Contains(msg, "max stale") {
				t.Fatalf("beta past max stale: %q", msg)
			}
			wantCalls(t, f.fakeBackend, 2)
		})
	}
}

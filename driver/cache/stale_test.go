package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// TestStaleMemoryThenDiskThenTooOld follows a backend that stops: the
// memory copy is served, then, after a restart, the disk copy, until it is
// older than MaxStale.
func TestStaleMemoryThenDiskThenTooOld(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	f := newFake()
	f.set("db", "v1")
	lkg, s := openLKG(t, dir)
	o := testOptions(clk)
	o.LKG = lkg
	c, err := New(f, o)
	if err != nil {
		t.Fatal(err)
	}
	get(t, c, ref("db"))
	settle(c)
	if st := c.Stats(); st.LKGWrites != 1 {
		t.Fatalf("stats %+v", st)
	}

	f.down.Store(true)
	clk.Add(DefaultTTL + time.Second)
	got := get(t, c, ref("db"))
	wantValue(t, got, "v1", true)
	if got.Age != DefaultTTL+time.Second || got.Version != 1 {
		t.Fatalf("memory copy: %+v", got)
	}
	c.Close()
	s.Close()

	// Restart: a new cache over the same store directory.
	lkg, _ = openLKG(t, dir)
	o.LKG = lkg
	c = newCache(t, f, o)
	calls := f.calls.Load()
	clk.Add(time.Minute)
	for range 3 {
		got = get(t, c, ref("db"))
		wantValue(t, got, "v1", true)
		if got.Age != DefaultTTL+time.Second+time.Minute || got.Version != 1 || !got.Created.Equal(time.Unix(1700000000, 0)) {
			t.Fatalf("disk copy: %+v", got)
		}
	}
	wantCalls(t, f, calls+1) // then the circuit is open
	if st := c.Stats(); st.StaleServed != 3 || st.LKGWrites != 0 {
		t.Fatalf("stats %+v", st)
	}

	clk.Add(2*time.Hour - DefaultTTL - time.Second - time.Minute)
	err = getErr(t, c, ref("db"), backend.ErrUnavailable)
	want := "backend unavailable and the last-known-good copy is 2h0m old (max stale 1h0m)"
	if !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "v1") {
		t.Fatalf("error %q, want it to start with %q", err, want)
	}
	if e := c.entries.peek(keyOf(ref("db"))); e.s.Value != nil {
		t.Fatal("copy past max stale kept in memory")
	}

	// The same holds for a fresh cache reading the disk copy.
	c = newCache(t, f, o)
	err = getErr(t, c, ref("db"), backend.ErrUnavailable)
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q", err)
	}
}

func TestCircuitSparesTheBackend(t *testing.T) {
	f := newFake()
	f.set("db", "v1")
	clk := newClock()
	c := newCache(t, f, testOptions(clk))
	get(t, c, ref("db"))
	f.down.Store(true)
	clk.Add(DefaultTTL)

	wantValue(t, get(t, c, ref("db")), "v1", true) // the call that fails
	wantCalls(t, f, 2)
	for range 100 {
		wantValue(t, get(t, c, ref("db")), "v1", true)
	}
	// Without a copy: an error at once, still no call.
	err := getErr(t, c, ref("cold"), backend.ErrUnavailable)
	if !strings.Contains(err.Error(), "no last-known-good copy") || !strings.Contains(err.Error(), "next try in 2s") {
		t.Fatalf("error %q", err)
	}
	getErr(t, c, backend.Ref{Name: "db"}, backend.ErrUnavailable)
	wantCalls(t, f, 2)

	// After RetryAfter one request probes, in the background since it has
	// a copy to answer with; the backend is still down.
	clk.Add(DefaultRetryAfter)
	wantValue(t, get(t, c, ref("db")), "v1", true)
	settle(c)
	wantCalls(t, f, 3)
	wantValue(t, get(t, c, ref("db")), "v1", true)
	wantCalls(t, f, 3)

	// It comes back: the next probe refreshes the entry and closes the
	// circuit.
	f.down.Store(false)
	f.set("db", "v2")
	clk.Add(DefaultRetryAfter)
	wantValue(t, get(t, c, ref("db")), "v1", true)
	settle(c)
	wantValue(t, get(t, c, ref("db")), "v2", false)
	get(t, c, backend.Ref{Name: "db"})
	wantCalls(t, f, 5)
	if st := c.Stats(); st.StaleServed != 104 || st.BackendErrors != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSlowBackendTimesOutThenServesStale(t *testing.T) {
	f := newFake()
	f.set("db", "v1")
	clk := newClock()
	o := testOptions(clk)
	o.Timeout = 100 * time.Millisecond
	c := newCache(t, f, o)
	get(t, c, ref("db"))
	// It ignores its context; the cache must not.
	f.hang.Store(true)
	defer close(f.release)
	clk.Add(DefaultTTL)

	start := time.Now()
	got := get(t, c, ref("db"))
	if el := time.Since(start); el < o.Timeout || el > 2*time.Second {
		t.Fatalf("first stale answer after %s, want about %s", el, o.Timeout)
	}
	wantValue(t, got, "v1", true)
	// The circuit is open: the next answers come at once.
	start = time.Now()
	for range 100 {
		wantValue(t, get(t, c, ref("db")), "v1", true)
	}
	if el := time.Since(start); el > o.Timeout {
		t.Fatalf("100 stale answers took %s", el)
	}
	wantCalls(t, f, 2)

	// A per-task call gets min(its deadline, Timeout).
	clk.Add(DefaultRetryAfter)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := c.Get(ctx, backend.Ref{Name: "db"})
	if el := time.Since(start); !errors.Is(err, backend.ErrUnavailable) || el > o.Timeout {
		t.Fatalf("per-task call: %v after %s", err, el)
	}
}

func TestRealAnswersAreNotMasked(t *testing.T) {
	for _, sentinel := range []error{backend.ErrDenied, backend.ErrCorrupt, backend.ErrInvalidRef} {
		t.Run(sentinel.Error(), func(t *testing.T) {
			f := newFake()
			f.set("db", "v1")
			clk := newClock()
			c := newCache(t, f, testOptions(clk))
			get(t, c, ref("db"))
			clk.Add(DefaultTTL)
			f.setErr(fmt.Errorf("backend says: %w", sentinel))
			getErr(t, c, ref("db"), sentinel)
			getErr(t, c, ref("db"), sentinel) // not cached, circuit not opened
			wantCalls(t, f, 3)
			f.setErr(nil)
			wantValue(t, get(t, c, ref("db")), "v1", false)
			if st := c.Stats(); st.StaleServed != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestNotFoundRemovesCopies(t *testing.T) {
	clk := newClock()
	f := newFake()
	f.set("db", "v1")
	l := &countingLKG{LKG: mustLKG(t)}
	o := testOptions(clk)
	o.LKG = l
	c := newCache(t, f, o)
	get(t, c, ref("db"))
	settle(c)

	f.del("db")
	clk.Add(DefaultTTL)
	getErr(t, c, ref("db"), backend.ErrNotFound)
	settle(c)
	if l.forgets.Load() != 1 {
		t.Fatalf("%d forgets", l.forgets.Load())
	}
	// Deleted is newer than any copy: once down, no copy is served.
	f.down.Store(true)
	clk.Add(DefaultNegativeTTL)
	getErr(t, c, ref("db"), backend.ErrUnavailable)
	clk.Add(DefaultRetryAfter)
	getErr(t, c, ref("db"), backend.ErrUnavailable)
	c2 := newCache(t, f, o)
	getErr(t, c2, ref("db"), backend.ErrUnavailable)
	if st := c.Stats(); st.StaleServed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// plainLKG hides Forget, as a minimal LKG implementation would.
type plainLKG struct{ l LKG }

func (p plainLKG) Load(ctx context.Context, key string) (backend.Secret, time.Time, error) {
	return p.l.Load(ctx, key)
}

func (p plainLKG) Save(ctx context.Context, key string, s backend.Secret, saved time.Time) error {
	return p.l.Save(ctx, key, s, saved)
}

func TestNotFoundBlocksUnforgettableCopies(t *testing.T) {
	clk := newClock()
	f := newFake()
	f.set("db", "v1")
	o := testOptions(clk)
	o.LKG = plainLKG{mustLKG(t)}
	c := newCache(t, f, o)
	get(t, c, ref("db"))
	settle(c)
	f.del("db")
	clk.Add(DefaultTTL)
	getErr(t, c, ref("db"), backend.ErrNotFound)

	// The disk still holds v1, but the negative entry is newer.
	f.down.Store(true)
	clk.Add(DefaultNegativeTTL)
	getErr(t, c, ref("db"), backend.ErrUnavailable) // the failing call
	getErr(t, c, ref("db"), backend.ErrUnavailable) // circuit open
	wantCalls(t, f, 3)
	if st := c.Stats(); st.StaleServed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDiskCopyIsNeverFresh(t *testing.T) {
	clk := newClock()
	f := newFake()
	f.set("db", "v1")
	o := testOptions(clk)
	o.LKG = mustLKG(t)
	first := newCache(t, f, o)
	get(t, first, ref("db"))
	settle(first)

	// Restarted within TTL of the save, backend down: the copy is stale.
	f.down.Store(true)
	c := newCache(t, f, o)
	wantValue(t, get(t, c, ref("db")), "v1", true)
	// Back up: the copy is not taken for a fresh answer; the probe
	// replaces it.
	f.down.Store(false)
	f.set("db", "v2")
	clk.Add(DefaultRetryAfter)
	wantValue(t, get(t, c, ref("db")), "v1", true)
	settle(c)
	wantValue(t, get(t, c, ref("db")), "v2", false)
}

func TestOpenFailureServesStale(t *testing.T) {
	f := newFake()
	f.set("db", "v1")
	clk := newClock()
	c := newCache(t, f, testOptions(clk))
	get(t, c, ref("db"))
	clk.Add(DefaultTTL)
	// What the driver's lazy opener says when the store is missing: it
	// wraps ErrNotFound, but is no answer about the value.
	f.setErr(fmt.Errorf("%w: file backend: no store at /x (run swarmkeep init): %w", backend.ErrCannotOpen, backend.ErrNotFound))
	wantValue(t, get(t, c, ref("db")), "v1", true)
	clk.Add(DefaultRetryAfter)
	f.setErr(fmt.Errorf("%w: etcd: %w", backend.ErrCannotOpen, errors.New("dial tcp: connection refused")))
	wantValue(t, get(t, c, ref("db")), "v1", true)
}

func TestLKGWritesAreRare(t *testing.T) {
	clk := newClock()
	f := newFake()
	f.set("db", "v1")
	l := &countingLKG{LKG: mustLKG(t)}
	o := testOptions(clk)
	o.LKG = l
	c := newCache(t, f, o)
	refresh := func() {
		t.Helper()
		clk.Add(DefaultTTL)
		get(t, c, ref("db"))
		settle(c)
	}
	wantSaves := func(n int64) {
		t.Helper()
		if got := l.saves.Load(); got != n {
			t.Fatalf("%d saves, want %d", got, n)
		}
	}
	refresh()
	wantSaves(1)
	for range 10 {
		refresh()
	}
	wantSaves(1)
	f.set("db", "v2")
	refresh()
	wantSaves(2)
	clk.Add(DefaultMaxStale / 2)
	refresh()
	wantSaves(3)

	// A restart reads the copy instead of rewriting it.
	c = newCache(t, f, o)
	refresh()
	refresh()
	wantSaves(3)
	if st := c.Stats(); st.LKGWrites != 0 || st.LKGErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLKGErrorsNeverFailRequests(t *testing.T) {
	clk := newClock()
	f := newFake()
	f.set("db", "v1")
	o := testOptions(clk)
	o.LKG = &countingLKG{fail: true}
	c := newCache(t, f, o)
	get(t, c, ref("db"))
	settle(c)
	if st := c.Stats(); st.LKGErrors == 0 || st.LKGWrites != 0 {
		t.Fatalf("stats %+v", st)
	}
	f.down.Store(true)
	clk.Add(DefaultTTL)
	wantValue(t, get(t, c, ref("db")), "v1", true)

	c = newCache(t, f, o)
	err := getErr(t, c, ref("db"), backend.ErrUnavailable)
	if errors.Is(err, errDisk) || c.Stats().LKGErrors != 1 {
		t.Fatalf("error %v, stats %+v", err, c.Stats())
	}
}

func TestShort(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2 * time.Hour:               "2h0m",
		time.Hour + 29*time.Second:  "1h0m",
		90 * time.Minute:            "1h30m",
		2 * time.Minute:             "2m",
		90 * time.Second:            "1m30s",
		1500 * time.Millisecond:     "2s",
		250 * time.Millisecond:      "250ms",
		0:                           "0s",
		30*24*time.Hour + time.Hour: "721h0m",
	} {
		if got := short(d); got != want {
			t.Errorf("short(%s) = %q, want %q", d, got, want)
		}
	}
}

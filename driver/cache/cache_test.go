package cache

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// waitFor polls cond for up to 10 s: goroutines reaching a point is not
// something a test can wait on otherwise.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestColdValueThousandRequestsOneCall(t *testing.T) {
	f := newFake()
	f.set("db", "s3cret")
	c := newCache(t, f, testOptions(newClock()))
	open := f.hold()
	defer open()

	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			s, err := c.Get(context.Background(), ref("db"))
			if err == nil && string(s.Value) != "s3cret" {
				err = errors.New("wrong value " + string(s.Value))
			}
			errs <- err
		})
	}
	// Every request must be waiting on the one call before it returns.
	waitFor(t, "all requests to join", func() bool { return c.Stats().Coalesced == n-1 })
	open()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	wantCalls(t, f, 1)
	if st := c.Stats(); st.Misses != n || st.BackendCalls != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCallerDeadlineDoesNotCancelSharedCall(t *testing.T) {
	f := newFake()
	f.set("db", "v1")
	c := newCache(t, f, testOptions(newClock()))
	open := f.hold()
	defer open()

	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := c.Get(short, ref("db"))
		first <- err
	}()
	waitFor(t, "the call to start", func() bool { return f.calls.Load() == 1 })
	second := make(chan backend.Secret, 1)
	go func() { second <- get(t, c, ref("db")) }()
	waitFor(t, "the second request to join", func() bool { return c.Stats().Coalesced == 1 })

	if err := <-first; !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("first caller: %v", err)
	}
	open()
	wantValue(t, <-second, "v1", false)
	wantCalls(t, f, 1)
}

func TestFreshHit(t *testing.T) {
	f := newFake()
	f.set("db", "v1")
	c := newCache(t, f, testOptions(newClock()))

	s := get(t, c, ref("db"))
	if s.Cached {
		t.Fatal("a backend answer marked as cached")
	}
	clear(s.Value) // a caller's copy is its own
	s = get(t, c, ref("db"))
	wantValue(t, s, "v1", false)
	if s.Version != 1 || !s.Created.Equal(time.Unix(1700000000, 0)) || !s.Cached {
		t.Fatalf("metadata lost: %+v", s)
	}
	wantCalls(t, f, 1)
	if st := c.Stats(); st.Hits != 1 || st.Misses != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestExpiryRefetches(t *testing.T) {
	f := newFake()
	f.set("db", "v1")
	clk := newClock()
	c := newCache(t, f, testOptions(clk))

	get(t, c, ref("db"))
	f.set("db", "v2")
	clk.Add(DefaultTTL - time.Second)
	wantValue(t, get(t, c, ref("db")), "v1", false)
	clk.Add(time.Second)
	wantValue(t, get(t, c, ref("db")), "v2", false)
	wantCalls(t, f, 2)
}

func TestKeyCoversEveryField(t *testing.T) {
	f := newFake()
	f.set("db", "v")
	c := newCache(t, f, testOptions(newClock()))
	base := backend.Ref{Name: "db", Reuse: true, Secret: "app_db", Stack: "app", Service: "web",
		Labels: map[string]string{"swarmkeep.name": "db", "team": "a"}}
	variants := []func(*backend.Ref){
		func(r *backend.Ref) {},
		func(r *backend.Ref) { r.Version = 2 },
		func(r *backend.Ref) { r.Path = "kv/db" },
		func(r *backend.Ref) { r.Field = "password" },
		func(r *backend.Ref) { r.Stack = "other" },
		func(r *backend.Ref) { r.Service = "worker" },
		func(r *backend.Ref) { r.Secret = "app_db2" },
		func(r *backend.Ref) { r.Labels = map[string]string{"swarmkeep.name": "db", "team": "b"} },
		func(r *backend.Ref) { r.Labels = map[string]string{"swarmkeep.name": "db"} },
		// Moving a byte from a key to its value must not collide.
		func(r *backend.Ref) { r.Labels = map[string]string{"swarmkeep.name": "db", "tea": "ma"} },
	}
	for i, v := range variants {
		r := base
		v(&r)
		get(t, c, r)
		wantCalls(t, f, int64(i+1))
	}
	// The same labels in another map are the same key.
	r := base
	r.Labels = map[string]string{"team": "a", "swarmkeep.name": "db"}
	get(t, c, r)
	wantCalls(t, f, int64(len(variants)))
}

func TestKeyIsStable(t *testing.T) {
	// LKG copies are found by key after a restart: a change to the key
	// encoding orphans them, so it must be deliberate (bump keyDomain).
	r := backend.Ref{Name: "db", Version: 3, Path: "p", Field: "f", Stack: "s", Service: "svc",
		Secret: "s_db", Labels: map[string]string{"a": "1", "b": "2"}}
	const want = "d49810dc28935c4cecd731403a127749922c02d4515603d77601d43cd41c8634"
	if got := keyOf(r).String(); got != want {
		t.Fatalf("key of %+v changed: %s", r, got)
	}
}

func TestNegativeCaching(t *testing.T) {
	f := newFake()
	clk := newClock()
	c := newCache(t, f, testOptions(clk))

	getErr(t, c, ref("missing"), backend.ErrNotFound)
	getErr(t, c, ref("missing"), backend.ErrNotFound)
	wantCalls(t, f, 1)
	if st := c.Stats(); st.NegativeHits != 1 {
		t.Fatalf("stats %+v", st)
	}
	f.set("missing", "now here")
	clk.Add(DefaultNegativeTTL)
	wantValue(t, get(t, c, ref("missing")), "now here", false)
	wantCalls(t, f, 2)

	// Zero turns it off; other errors are never cached.
	o := testOptions(clk)
	o.NegativeTTL = 0
	c = newCache(t, f, o)
	getErr(t, c, ref("gone"), backend.ErrNotFound)
	getErr(t, c, ref("gone"), backend.ErrNotFound)
	wantCalls(t, f, 4)
	f.setErr(backend.ErrDenied)
	getErr(t, c, ref("x"), backend.ErrDenied)
	getErr(t, c, ref("x"), backend.ErrDenied)
	wantCalls(t, f, 6)
}

func TestNegativeEntriesAreBounded(t *testing.T) {
	f := newFake()
	f.set("real", "v")
	o := testOptions(newClock())
	o.MaxEntries = 4
	c := newCache(t, f, o)

	get(t, c, ref("real"))
	for _, name := range []string{"m1", "m2", "m3", "m4", "m5", "m6"} {
		getErr(t, c, ref(name), backend.ErrNotFound)
	}
	if n := c.entries.len(); n != 4 {
		t.Fatalf("%d entries, want 4", n)
	}
	if st := c.Stats(); st.Evictions != 3 {
		t.Fatalf("stats %+v", st)
	}
	calls := f.calls.Load()
	get(t, c, ref("real")) // evicted by negatives: fetched again
	getErr(t, c, ref("m6"), backend.ErrNotFound)
	wantCalls(t, f, calls+1)
}

func TestLRUEviction(t *testing.T) {
	f := newFake()
	for _, n := range []string{"a", "b", "c", "d"} {
		f.set(n, "value of "+n)
	}
	o := testOptions(newClock())
	o.MaxEntries = 3
	c := newCache(t, f, o)

	get(t, c, ref("a"))
	get(t, c, ref("b"))
	get(t, c, ref("c"))
	bValue := c.entries.peek(keyOf(ref("b"))).s.Value
	get(t, c, ref("a")) // b is now the least recently used
	get(t, c, ref("d"))
	wantCalls(t, f, 4)
	if !bytes.Equal(bValue, make([]byte, len(bValue))) {
		t.Fatalf("evicted value not zeroed: %q", bValue)
	}
	get(t, c, ref("a"))
	get(t, c, ref("d"))
	wantCalls(t, f, 4)
	get(t, c, ref("b"))
	wantCalls(t, f, 5)
	if st := c.Stats(); st.Evictions != 2 || c.entries.len() != 3 {
		t.Fatalf("stats %+v, %d entries", st, c.entries.len())
	}
}

func TestReuseFalseIsNeverShared(t *testing.T) {
	f := newFake()
	f.set("db", "v1")
	clk := newClock()
	l := &countingLKG{LKG: mustLKG(t)}
	o := testOptions(clk)
	o.LKG = l
	c := newCache(t, f, o)
	perTask := backend.Ref{Name: "db"}

	// Concurrent per-task requests each make their own call.
	open := f.hold()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { get(t, c, perTask) })
	}
	waitFor(t, "20 calls", func() bool { return f.calls.Load() == 20 })
	open()
	wg.Wait()
	get(t, c, perTask)
	wantCalls(t, f, 21)
	settle(c)
	if c.entries.len() != 0 || l.saves.Load() != 0 || l.loads.Load() != 0 {
		t.Fatalf("per-task value kept: %d entries, %d saves", c.entries.len(), l.saves.Load())
	}

	// A shared copy of the same name is never served to a per-task request.
	get(t, c, ref("db"))
	f.down.Store(true)
	clk.Add(DefaultTTL)
	getErr(t, c, perTask, backend.ErrUnavailable)
	wantValue(t, get(t, c, ref("db")), "v1", true)
	if st := c.Stats(); st.StaleServed != 1 || st.Coalesced != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestVariesIsNeverCached(t *testing.T) {
	f := newFake()
	f.set("db", "v")
	f.setVaries(true)
	clk := newClock()
	l := &countingLKG{LKG: mustLKG(t)}
	o := testOptions(clk)
	o.LKG = l
	c := newCache(t, f, o)

	// Requests that met in one call still get a fetch each.
	open := f.hold()
	const n = 20
	var wg sync.WaitGroup
	values := make(chan string, n)
	for range n {
		wg.Go(func() { values <- string(get(t, c, ref("db")).Value) })
	}
	waitFor(t, "requests to join", func() bool { return c.Stats().Coalesced == n-1 })
	open()
	wg.Wait()
	close(values)
	seen := map[string]bool{}
	for v := range values {
		if seen[v] {
			t.Fatalf("two requests got the same per-task value %q", v)
		}
		seen[v] = true
	}
	wantCalls(t, f, n)
	a, b := get(t, c, ref("db")), get(t, c, ref("db"))
	if bytes.Equal(a.Value, b.Value) || !a.Varies {
		t.Fatalf("varying value served from cache: %q %q", a.Value, b.Value)
	}
	settle(c)
	if l.saves.Load() != 0 {
		t.Fatalf("varying value saved to disk")
	}
	f.down.Store(true)
	getErr(t, c, ref("db"), backend.ErrUnavailable)
	if st := c.Stats(); st.StaleServed != 0 || st.Hits != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloseZeroesAndClosesBackend(t *testing.T) {
	f := newFake()
	f.set("db", "v1")
	c, err := New(f, testOptions(newClock()))
	if err != nil {
		t.Fatal(err)
	}
	get(t, c, ref("db"))
	held := c.entries.peek(keyOf(ref("db"))).s.Value
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(held, []byte{0, 0}) || !f.closed.Load() {
		t.Fatalf("after close: value %q, backend closed %v", held, f.closed.Load())
	}
	getErr(t, c, ref("db"), backend.ErrUnavailable)
	if err := c.Close(); err != nil {
		t.Fatal("second close:", err)
	}
}

func TestOptions(t *testing.T) {
	f := newFake()
	if _, err := New(f, Options{TTL: -1, MaxEntries: -1}); err == nil {
		t.Fatal("negative options accepted")
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Fatal("nil backend accepted")
	}
	c, err := New(f, Options{MaxStale: 0, LKG: &countingLKG{}})
	if err != nil {
		t.Fatal(err)
	}
	o := c.o
	if o.TTL != DefaultTTL || o.MaxEntries != DefaultMaxEntries || o.Timeout != DefaultTimeout ||
		o.RetryAfter != DefaultRetryAfter || o.NegativeTTL != 0 || o.LKG != nil || c.lkg != nil {
		t.Fatalf("defaults: %+v", o)
	}
}

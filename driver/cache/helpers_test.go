package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// fakeBackend serves values by name, counts calls, and can be slowed,
// stopped, gated or made to fail.
type fakeBackend struct {
	calls   atomic.Int64
	latency atomic.Int64 // nanoseconds each call sleeps (honouring ctx)
	down    atomic.Bool  // answer ErrUnavailable at once
	hang    atomic.Bool  // ignore ctx and block until released
	closed  atomic.Bool

	mu      sync.Mutex
	values  map[string][]byte
	version uint64
	err     error         // returned instead of a value when set
	varies  bool          // answers carry Varies
	gate    chan struct{} // when set, calls wait for it to close
	release chan struct{} // closed to free hanging calls
}

func newFake() *fakeBackend {
	return &fakeBackend{values: map[string][]byte{}, release: make(chan struct{})}
}

func (f *fakeBackend) set(name, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	f.values[name] = []byte(value)
}

func (f *fakeBackend) del(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.values, name)
}

func (f *fakeBackend) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeBackend) setVaries(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.varies = v
}

// hold makes calls wait until the returned func is called.
func (f *fakeBackend) hold() (open func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := make(chan struct{})
	f.gate = g
	return sync.OnceFunc(func() { close(g) })
}

func (f *fakeBackend) Get(ctx context.Context, ref backend.Ref) (backend.Secret, error) {
	n := f.calls.Add(1)
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if f.hang.Load() {
		<-f.release
	}
	if d := time.Duration(f.latency.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return backend.Secret{}, fmt.Errorf("fake: %w", ctx.Err())
		}
	}
	if f.down.Load() {
		return backend.Secret{}, fmt.Errorf("%w: fake is down", backend.ErrUnavailable)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return backend.Secret{}, f.err
	}
	v, ok := f.values[ref.Name]
	if !ok {
		return backend.Secret{}, fmt.Errorf("record %q: %w", ref.Name, backend.ErrNotFound)
	}
	value := v
	if f.varies {
		value = fmt.Appendf(bytes.Clone(v), "#%d", n)
	}
	return backend.Secret{Value: bytes.Clone(value), Version: f.version, Created: time.Unix(1700000000, 0), Varies: f.varies}, nil
}

func (f *fakeBackend) Close() error {
	f.closed.Store(true)
	return nil
}

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testOptions are the recommended settings on a fake clock.
func testOptions(clk *clock) Options {
	o := DefaultOptions()
	o.Now = clk.Now
	return o
}

func newCache(t testing.TB, b backend.Backend, o Options) *Cache {
	t.Helper()
	c, err := New(b, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ref(name string) backend.Ref { return backend.Ref{Name: name, Reuse: true} }

func get(t testing.TB, c *Cache, r backend.Ref) backend.Secret {
	t.Helper()
	s, err := c.Get(context.Background(), r)
	if err != nil {
		t.Fatalf("get %s: %v", r.Name, err)
	}
	return s
}

func getErr(t testing.TB, c *Cache, r backend.Ref, want error) error {
	t.Helper()
	_, err := c.Get(context.Background(), r)
	if !errors.Is(err, want) {
		t.Fatalf("get %s: got %v, want an error wrapping %v", r.Name, err, want)
	}
	return err
}

func wantValue(t testing.TB, s backend.Secret, value string, stale bool) {
	t.Helper()
	if string(s.Value) != value || s.Stale != stale {
		t.Fatalf("got %q stale=%v, want %q stale=%v", s.Value, s.Stale, value, stale)
	}
}

func wantCalls(t testing.TB, f *fakeBackend, n int64) {
	t.Helper()
	if got := f.calls.Load(); got != n {
		t.Fatalf("backend calls: got %d, want %d", got, n)
	}
}

// settle waits for the cache's background work to end and its disk copies
// to be written. Only call it with no request in flight.
func settle(c *Cache) {
	c.bg.Wait()
	c.Flush(context.Background())
}

// openLKG opens (creating on first use) an LKG store in dir with a key
// file next to it. Opening the same dir again, after closing the store,
// is what a restarted plugin does.
func openLKG(t testing.TB, dir string) (LKG, *store.Store) {
	t.Helper()
	keyFile := filepath.Join(dir, "lkg.key")
	if err := store.GenerateKeyFile(keyFile); err != nil && !errors.Is(err, fs.ErrExist) {
		t.Fatal(err)
	}
	s, err := OpenLKGStore(context.Background(), filepath.Join(dir, "lkg"), store.KeyFile(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return NewStoreLKG(s), s
}

// countingLKG wraps an LKG to count what reaches it, or fails everything.
type countingLKG struct {
	LKG
	loads, saves, forgets atomic.Int64
	fail                  bool
}

var errDisk = errors.New("fake disk failure")

func (l *countingLKG) Load(ctx context.Context, key string) (backend.Secret, time.Time, error) {
	l.loads.Add(1)
	if l.fail {
		return backend.Secret{}, time.Time{}, errDisk
	}
	return l.LKG.Load(ctx, key)
}

func (l *countingLKG) Save(ctx context.Context, key string, s backend.Secret, saved time.Time) error {
	l.saves.Add(1)
	if l.fail {
		return errDisk
	}
	return l.LKG.Save(ctx, key, s, saved)
}

func (l *countingLKG) Forget(ctx context.Context, key string) error {
	l.forgets.Add(1)
	if l.fail {
		return errDisk
	}
	return l.LKG.(Forgetter).Forget(ctx, key)
}

// mustLKG is an LKG store in a fresh directory.
func mustLKG(t testing.TB) LKG {
	t.Helper()
	l, _ := openLKG(t, t.TempDir())
	return l
}

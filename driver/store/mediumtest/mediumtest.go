package mediumtest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// Harness opens the medium under test.
type Harness struct {
	// New makes a fresh, empty storage for one subtest and returns a func
	// that opens a handle on it; each handle stands for another process
	// (another plugin, another manager) on the same storage. Handles are
	// the harness's to close, at the end of the subtest (t.Cleanup).
	New func(t *testing.T) (open func(t *testing.T) store.Medium)
}

// Run runs every conformance check as a subtest of t.
func Run(t *testing.T, h Harness) {
	t.Run("CAS", func(t *testing.T) { testCAS(t, h.New(t)(t)) })
	t.Run("ConcurrentCAS", func(t *testing.T) { testConcurrentCAS(t, h.New(t)) })
	t.Run("WholeBlobs", func(t *testing.T) { testWholeBlobs(t, h.New(t)) })
	t.Run("List", func(t *testing.T) { testList(t, h.New(t)(t)) })
	t.Run("Lock", func(t *testing.T) { testLock(t, h.New(t)) })
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testCAS walks one key through every compare-and-swap case.
func testCAS(t *testing.T, m store.Medium) {
	ctx := ctxFor(t, 20*time.Second)
	const k = "r/cas"
	if _, err := m.Stat(ctx, k); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat absent: %v", err)
	}
	if _, _, err := m.Read(ctx, k); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Read absent: %v", err)
	}
	if err := m.Delete(ctx, k, ""); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Delete absent: %v", err)
	}
	r1, err := m.Write(ctx, k, []byte("one"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write(ctx, k, []byte("two"), ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("create over an existing key: %v", err)
	}
	if b, rev, err := m.Read(ctx, k); err != nil || string(b) != "one" || rev != r1 {
		t.Fatalf("Read = %q %q %v, want one %q", b, rev, err, r1)
	}
	if rev, err := m.Stat(ctx, k); err != nil || rev != r1 {
		t.Fatalf("Stat = %q %v, want %q", rev, err, r1)
	}
	// Same size, written at once: the revision must still change.
	r2, err := m.Write(ctx, k, []byte("two"), r1)
	if err != nil || r2 == r1 {
		t.Fatalf("Write at r1 = %q %v (previous %q)", r2, err, r1)
	}
	if b, rev, err := m.Read(ctx, k); err != nil || string(b) != "two" || rev != r2 {
		t.Fatalf("Read = %q %q %v, want two %q", b, rev, err, r2)
	}
	if rev, err := m.Stat(ctx, k); err != nil || rev != r2 {
		t.Fatalf("Stat = %q %v, want %q", rev, err, r2)
	}
	if _, err := m.Write(ctx, k, []byte("stale"), r1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Write at a stale revision: %v", err)
	}
	if _, err := m.Write(ctx, k, []byte("x"), "not-a-revision"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Write at a foreign revision: %v", err)
	}
	if err := m.Delete(ctx, k, r1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Delete at a stale revision: %v", err)
	}
	if err := m.Delete(ctx, k, ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Delete as if absent: %v", err)
	}
	if err := m.Delete(ctx, k, r2); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, k, r2); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Delete twice: %v", err)
	}
	if _, _, err := m.Read(ctx, k); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Read after Delete: %v", err)
	}
	if _, err := m.Write(ctx, k, []byte("x"), r2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Write at the revision of a deleted key: %v", err)
	}
	r3, err := m.Write(ctx, k, []byte("three"), "")
	if err != nil {
		t.Fatal(err)
	}
	if r3 == r1 || r3 == r2 {
		t.Fatalf("revision %q reused after delete", r3)
	}
	// The same content over and over: never the same revision twice, or
	// a reader holding an old one would take a changed key for unchanged.
	revs := map[store.Revision]bool{r1: true, r2: true, r3: true}
	prev := r3
	for range 50 {
		if prev, err = m.Write(ctx, k, []byte("x"), prev); err != nil {
			t.Fatal(err)
		}
		if revs[prev] {
			t.Fatalf("revision %q repeated", prev)
		}
		revs[prev] = true
	}
}

// testConcurrentCAS: goroutines on two handles increment a counter with
// read-modify-write; compare-and-swap must not lose one increment.
func testConcurrentCAS(t *testing.T, open func(*testing.T) store.Medium) {
	media := []store.Medium{open(t), open(t)}
	ctx := ctxFor(t, 60*time.Second)
	const per, goroutines = 10, 3
	var wg sync.WaitGroup
	for _, m := range media {
		for range goroutines {
			wg.Go(func() {
				for range per {
					for {
						b, rev, err := m.Read(ctx, "r/counter")
						if errors.Is(err, backend.ErrNotFound) {
							b, rev, err = []byte("0"), "", nil
						}
						if err != nil {
							t.Error(err)
							return
						}
						n, _ := strconv.Atoi(string(b))
						_, err = m.Write(ctx, "r/counter", []byte(strconv.Itoa(n+1)), rev)
						if err == nil {
							break
						}
						if !errors.Is(err, store.ErrConflict) {
							t.Error(err)
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	b, _, err := media[0].Read(ctx, "r/counter")
	if err != nil || string(b) != strconv.Itoa(len(media)*goroutines*per) {
		t.Fatalf("counter = %q %v, want %d", b, err, len(media)*goroutines*per)
	}
}

// testWholeBlobs: while one handle rewrites a key with blobs of different
// content and size, readers on another handle see only whole blobs, and
// a revision Read returns with a blob never names another blob.
func testWholeBlobs(t *testing.T, open func(*testing.T) store.Medium) {
	w, r := open(t), open(t)
	ctx := ctxFor(t, 60*time.Second)
	blobs := [][]byte{bytes.Repeat([]byte("a"), 48<<10), bytes.Repeat([]byte("b"), 16<<10), bytes.Repeat([]byte("c"), 100)}
	var mu sync.Mutex
	written := map[store.Revision]byte{} // revision -> content byte
	rev, err := w.Write(ctx, "r/blob", blobs[0], "")
	if err != nil {
		t.Fatal(err)
	}
	written[rev] = 'a'
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				b, rv, err := r.Read(ctx, "r/blob")
				if err != nil {
					t.Error(err)
					return
				}
				ok := len(b) > 0 && bytes.Count(b, b[:1]) == len(b)
				for _, want := range blobs {
					ok = ok && (b[0] != want[0] || len(b) == len(want))
				}
				mu.Lock()
				c, known := written[rv]
				mu.Unlock()
				// A revision nobody wrote is allowed: a file medium that
				// opened the old file just before it was replaced sees its
				// ctime change with the unlink. Such a revision only fails
				// a later compare-and-swap; it must never name other content.
				if !ok || known && c != b[0] {
					t.Errorf("torn or misattributed read: %d bytes starting %q at revision %q", len(b), b[:min(len(b), 1)], rv)
					return
				}
			}
		})
	}
	for i := 1; i <= 60; i++ {
		blob := blobs[i%len(blobs)]
		// Record the revision before readers can meet it: write under the
		// lock, readers check under it too.
		mu.Lock()
		rev, err = w.Write(ctx, "r/blob", blob, rev)
		if err == nil {
			written[rev] = blob[0]
		}
		mu.Unlock()
		if err != nil {
			t.Error(err)
			break
		}
	}
	close(done)
	wg.Wait()
}

// testList: listing keeps to the prefix, lists each key once, "" lists
// everything, and an error from the callback stops it.
func testList(t *testing.T, m store.Medium) {
	ctx := ctxFor(t, 20*time.Second)
	keys := []string{"r/a", "r/b/c", "r/d", "keyring", "other", "rx", "s/1"}
	for _, k := range keys {
		if _, err := m.Write(ctx, k, []byte("blob"), ""); err != nil {
			t.Fatal(err)
		}
	}
	list := func(prefix string) []string {
		t.Helper()
		var got []string
		if err := m.List(ctx, prefix, func(k string) error { got = append(got, k); return nil }); err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		slices.Sort(got)
		return got
	}
	if got := list("r/"); !slices.Equal(got, []string{"r/a", "r/b/c", "r/d"}) {
		t.Fatalf("List(r/) = %q", got)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if got := list(""); !slices.Equal(got, want) {
		t.Fatalf("List(\"\") = %q, want %q", got, want)
	}
	if got := list("none/"); len(got) != 0 {
		t.Fatalf("List(none/) = %q", got)
	}
	rev, err := m.Stat(ctx, "r/d")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "r/d", rev); err != nil {
		t.Fatal(err)
	}
	if got := list("r/"); !slices.Equal(got, []string{"r/a", "r/b/c"}) {
		t.Fatalf("List(r/) after Delete = %q", got)
	}
	stop := errors.New("stop")
	calls := 0
	err = m.List(ctx, "r/", func(string) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("List with a failing callback: %v after %d calls", err, calls)
	}
}

// testLock: two handles (two processes) on one storage. While one holds
// the lock the other cannot take it and gives up at its deadline; once
// released, the other gets it at once, and writes under it.
func testLock(t *testing.T, open func(*testing.T) store.Medium) {
	ma, mb := open(t), open(t)
	a, ok := ma.(store.Locker)
	if !ok {
		t.Skip("the medium has no writer lock")
	}
	b := mb.(store.Locker)
	ctx := ctxFor(t, 20*time.Second)
	lctx, unlockA, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlockA() // on failure; unlocking twice is allowed
	// The holder's own writes under the lock go through.
	if _, err := ma.Write(lctx, "r/under-lock", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := b.Lock(short); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("a second handle took a held lock: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Lock took %v past a 300ms deadline", el)
	}
	unlockA()
	unlockA() // safe to call twice
	lctx, unlockB, err := b.Lock(ctx)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	defer unlockB()
	if _, err := mb.Write(lctx, "r/x", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	unlockB()
	// The same handle again.
	_, unlockB, err = b.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unlockB()
}

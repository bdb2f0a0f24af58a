package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// causesLKG tallies why saves fail.
type causesLKG struct {
	LKG
	lockWait, conflict, other atomic.Int64
}

func (l *causesLKG) Save(ctx context.Context, key string, s backend.Secret, saved time.Time) error {
	err := l.LKG.Save(ctx, key, s, saved)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrConflict):
		l.conflict.Add(1)
	case strings.Contains(err.Error(), "wait for store lock"):
		l.lockWait.Add(1)
	default:
		l.other.Add(1)
	}
	return err
}

// TestFirstReadOfManyNamesWritesEveryCopy is the first read of 1,000
// names at concurrency 8 with copies in a real store on disk, as when a
// plugin starts: every copy must reach the disk, or a restart during an
// outage finds none for the names whose write failed. Copies used to be
// written within the backend timeout, each queueing on the store lock; a
// short one makes sure the disk cannot keep up with it, whatever the
// machine, since writing a copy must not depend on it.
func TestFirstReadOfManyNamesWritesEveryCopy(t *testing.T) {
	const names, workers = 1000, 8
	name := func(i int) string { return fmt.Sprintf("app/s%04d", i) }
	dir := t.TempDir()
	f := newFake()
	for i := range names {
		f.set(name(i), fmt.Sprintf("value %d", i))
	}
	lkg, s := openLKG(t, dir)
	l := &causesLKG{LKG: lkg}
	o := DefaultOptions()
	o.LKG, o.Timeout = l, 500*time.Millisecond
	c, err := New(f, o)
	if err != nil {
		t.Fatal(err)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				wantValue(t, get(t, c, ref(name(i))), fmt.Sprintf("value %d", i), false)
			}
		})
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	settle(c)
	st := c.Stats()
	t.Logf("%d written, %d errors: %d waited too long for the store lock, %d conflicts, %d other",
		st.LKGWrites, st.LKGErrors, l.lockWait.Load(), l.conflict.Load(), l.other.Load())
	if st.LKGErrors != 0 || st.LKGWrites != names {
		t.Errorf("%d copies written, %d LKG errors, want %d and 0", st.LKGWrites, st.LKGErrors, names)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// After a restart, every name has its copy.
	lkg, _ = openLKG(t, dir)
	missing := 0
	for i := range names {
		got, _, err := lkg.Load(context.Background(), keyOf(ref(name(i))).String())
		if err != nil || string(got.Value) != fmt.Sprintf("value %d", i) {
			missing++
		}
	}
	if missing != 0 {
		t.Errorf("%d of %d copies missing on disk after a restart", missing, names)
	}
}

// gatedLKG holds saves at a gate, can fail them, and counts them.
type gatedLKG struct {
	LKG
	gate      chan struct{}
	open      func()
	ignoreCtx bool         // wait at the gate as a write stuck in the kernel does
	entered   chan string  // each save's key as it reaches the gate
	fails     atomic.Int64 // the next this many saves fail
	saves     atomic.Int64
}

func newGated(l LKG) *gatedLKG {
	g := &gatedLKG{LKG: l, gate: make(chan struct{}), entered: make(chan string, 100)}
	g.open = sync.OnceFunc(func() { close(g.gate) })
	return g
}

func (l *gatedLKG) Save(ctx context.Context, key string, s backend.Secret, saved time.Time) error {
	l.saves.Add(1)
	select {
	case l.entered <- key:
	default:
	}
	if l.ignoreCtx {
		<-l.gate
	} else {
		select {
		case <-l.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if l.fails.Add(-1) >= 0 {
		return errDisk
	}
	return l.LKG.Save(ctx, key, s, saved)
}

func (l *gatedLKG) Forget(ctx context.Context, key string) error {
	return l.LKG.(Forgetter).Forget(ctx, key)
}

// onDisk reports which of names have a copy in l.
func onDisk(t *testing.T, l LKG, names ...string) (have []string) {
	t.Helper()
	for _, n := range names {
		_, _, err := l.Load(context.Background(), keyOf(ref(n)).String())
		switch {
		case err == nil:
			have = append(have, n)
		case !errors.Is(err, backend.ErrNotFound):
			t.Fatal(err)
		}
	}
	return have
}

func TestLKGQueueDropsOldestWhenFull(t *testing.T) {
	clk := newClock()
	f := newFake()
	names := []string{"a", "b", "c", "d", "e", "f"}
	for _, n := range names {
		f.set(n, "v-"+n)
	}
	disk := mustLKG(t)
	l := newGated(disk)
	o := testOptions(clk)
	o.LKG, o.MaxEntries = l, 3
	c := newCache(t, f, o)
	get(t, c, ref("a"))
	<-l.entered // a is being written; the queue holds 3 more
	for _, n := range names[1:] {
		get(t, c, ref(n)) // never waits on the disk
	}
	if st := c.Stats(); st.LKGErrors != 2 {
		t.Fatalf("stats %+v, want 2 errors: b and c dropped", st)
	}
	l.open()
	settle(c)
	if got := strings.Join(onDisk(t, disk, names...), ","); got != "a,d,e,f" {
		t.Fatalf("copies on disk: %s, want a,d,e,f", got)
	}
}

func TestLKGWriteIsRetried(t *testing.T) {
	clk := newClock()
	f := newFake()
	f.set("db", "v1")
	f.set("big", "v1")
	disk := mustLKG(t)
	l := newGated(disk)
	l.open()
	l.fails.Store(1)
	o := testOptions(clk)
	o.LKG = l
	c := newCache(t, f, o)
	get(t, c, ref("db"))
	// Retried after a pause, with no Flush to hurry it.
	waitFor(t, "the copy to be written", func() bool { return c.Stats().LKGWrites == 1 })
	if st := c.Stats(); st.LKGErrors != 1 || len(onDisk(t, disk, "db")) != 1 {
		t.Fatalf("stats %+v", st)
	}

	// A copy the disk keeps refusing is given up after a few tries.
	l.fails.Store(1 << 20)
	saves := l.saves.Load()
	get(t, c, ref("big"))
	settle(c)
	if n := l.saves.Load() - saves; n != lkgMaxTries {
		t.Fatalf("%d tries, want %d", n, lkgMaxTries)
	}
	if st := c.Stats(); st.LKGErrors != 1+lkgMaxTries || st.LKGWrites != 1 || len(onDisk(t, disk, "big")) != 0 {
		t.Fatalf("stats %+v", st)
	}
	if c.w.has(keyOf(ref("big"))) {
		t.Fatal("dropped copy still queued")
	}
}

func TestCloseWritesPendingCopies(t *testing.T) {
	clk := newClock()
	f := newFake()
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprint("s", i))
		f.set(names[i], "v")
	}
	disk := mustLKG(t)
	l := newGated(disk)
	o := testOptions(clk)
	o.LKG = l
	c, err := New(f, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		get(t, c, ref(n))
	}
	<-l.entered
	closed := make(chan error)
	go func() { closed <- c.Close() }()
	l.open()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := onDisk(t, disk, names...); len(got) != len(names) {
		t.Fatalf("%d of %d copies on disk", len(got), len(names))
	}
	if st := c.Stats(); st.LKGErrors != 0 || st.LKGWrites != uint64(len(names)) {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloseIsBoundedWhenTheDiskHangs(t *testing.T) {
	for _, stuck := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignores context %v", stuck), func(t *testing.T) {
			clk := newClock()
			f := newFake()
			for _, n := range []string{"a", "b", "c"} {
				f.set(n, "v")
			}
			l := newGated(mustLKG(t))
			l.ignoreCtx = stuck
			t.Cleanup(l.open)
			o := testOptions(clk)
			o.LKG = l
			c, err := New(f, o)
			if err != nil {
				t.Fatal(err)
			}
			c.w.closeWait = 50 * time.Millisecond
			for _, n := range []string{"a", "b", "c"} {
				get(t, c, ref(n))
			}
			<-l.entered
			err = c.Close()
			want := "3 last-known-good copies not written within 50ms of closing"
			if err == nil || !strings.HasPrefix(err.Error(), want) || errors.Is(err, ErrStillWriting) != stuck {
				t.Fatalf("close: %v, want %q, still writing %v", err, want, stuck)
			}
			if st := c.Stats(); st.LKGErrors != 3 || st.LKGWrites != 0 {
				t.Fatalf("stats %+v", st)
			}
			if !f.closed.Load() {
				t.Fatal("backend not closed")
			}
		})
	}
}

// A copy waiting for the disk is newer than the disk's: when memory no
// longer holds it, it is the one served.
func TestQueuedCopyIsServed(t *testing.T) {
	clk := newClock()
	f := newFake()
	f.set("a", "v1")
	f.set("b", "v1")
	l := newGated(mustLKG(t))
	o := testOptions(clk)
	o.LKG, o.MaxEntries = l, 1
	c := newCache(t, f, o)
	get(t, c, ref("a"))
	<-l.entered
	get(t, c, ref("b")) // evicts a from memory
	f.down.Store(true)
	clk.Add(DefaultTTL)
	got := get(t, c, ref("a"))
	wantValue(t, got, "v1", true)
	if got.Age != DefaultTTL {
		t.Fatalf("age %s", got.Age)
	}
	l.open()
}

// A copy written late still says when the backend gave it: its age, and
// so max stale, count from then.
func TestLateCopyKeepsItsFetchTime(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	f := newFake()
	f.set("x", "v1")
	f.set("db", "v1")
	disk, s := openLKG(t, dir)
	l := newGated(disk)
	o := testOptions(clk)
	o.LKG = l
	c := newCache(t, f, o)
	get(t, c, ref("x"))
	<-l.entered
	get(t, c, ref("db")) // queued behind x
	clk.Add(10 * time.Minute)
	l.open()
	settle(c)
	c.Close()
	s.Close()

	disk, _ = openLKG(t, dir)
	o.LKG = disk
	f.down.Store(true)
	c = newCache(t, f, o)
	got := get(t, c, ref("db"))
	wantValue(t, got, "v1", true)
	if got.Age != 10*time.Minute {
		t.Fatalf("age %s, want 10m", got.Age)
	}
}

// Not found cancels the copy still waiting for the disk, so a deleted
// secret is not written after its removal.
func TestNotFoundCancelsQueuedCopy(t *testing.T) {
	clk := newClock()
	f := newFake()
	f.set("x", "v1")
	f.set("db", "v1")
	disk := mustLKG(t)
	l := newGated(disk)
	o := testOptions(clk)
	o.LKG = l
	c := newCache(t, f, o)
	get(t, c, ref("x"))
	<-l.entered
	get(t, c, ref("db")) // queued behind x
	f.del("db")
	clk.Add(DefaultTTL)
	getErr(t, c, ref("db"), backend.ErrNotFound)
	l.open()
	settle(c)
	if got := strings.Join(onDisk(t, disk, "x", "db"), ","); got != "x" || l.saves.Load() != 1 {
		t.Fatalf("on disk: %s after %d saves", got, l.saves.Load())
	}
	f.down.Store(true)
	clk.Add(DefaultNegativeTTL)
	getErr(t, c, ref("db"), backend.ErrUnavailable)
}

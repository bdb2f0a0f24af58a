package store

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// watchOf is the reader's working dirWatch; it fails the test if there is none.
func watchOf(t *testing.T, s *Store) *dirWatch {
	t.Helper()
	b := s.watch.w.Load()
	if b == nil {
		t.Fatal("the store does not watch its folder")
	}
	return b.w.(*dirWatch)
}

// noPoller keeps every watch started in the test from polling: changes are
// then announced by the change counter alone, as when the poller has not
// woken up yet.
func noPoller(t *testing.T) {
	old := startPoll
	startPoll = func(*dirWatch, syscall.RawConn) {}
	t.Cleanup(func() { startPoll = old })
}

// The guarantee rests on the change counter, not on the poller's timing: a
// put through another handle is served by the very next read even when the
// poller never reports, and reads of unchanged names then make no system
// call (no drain of the queue).
func TestChanges_CounterAloneShowsAPutAtOnce(t *testing.T) {
	noPoller(t)
	ts := newTestStore(t, InitOptions{MaxVersions: 2})
	ts.m.(*DirMedium).noSync = true
	reader := ts.handle(t)
	mustPut(t, ts.Store, "other", "o")
	servedGet(t, reader, "other")
	w := watchOf(t, reader)
	for i := range 200 {
		want := strconv.Itoa(i)
		mustPut(t, ts.Store, "x", want)
		for range 2 {
			if got, mem := servedGet(t, reader, "x"); got != want {
				t.Fatalf("after put %d: %q (from memory: %v)", i, got, mem)
			}
		}
	}
	servedGet(t, reader, "other") // a new shard folder for x dropped the cache
	drains := w.begun.Load()
	for range 100 {
		if got, mem := servedGet(t, reader, "other"); got != "o" || !mem {
			t.Fatalf("unchanged name: %q (from memory: %v)", got, mem)
		}
	}
	if n := w.begun.Load() - drains; n != 0 {
		t.Fatalf("%d drains of the inotify queue for 100 reads with nothing changed", n)
	}
}

// A change by other hands (a record file restored from a copy) does not
// move the counter: the poller reports it, and it is served soon after.
func TestChanges_PollerSeesOtherHands(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, "x", "old")
	p := recordPath(ts.dir, "x")
	saved, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, ts.Store, "x", "new")
	reader := ts.handle(t)
	if got, _ := servedGet(t, reader, "x"); got != "new" {
		t.Fatal(got)
	}
	tmp := filepath.Join(t.TempDir(), "copy")
	if err := os.WriteFile(tmp, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Skipf("temp dir on another filesystem: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := servedGet(t, reader, "x")
		if got == "old" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a record restored by hand still served as %q after 10s", got)
		}
		time.Sleep(time.Millisecond)
	}
}

// A counter file truncated while mapped (a copy over the folder) faults on
// the next access: the fault is caught, the counter given up, and reads and
// writes go on, each read draining the queue again.
func TestChanges_TruncatedCounterDoesNotCrash(t *testing.T) {
	noPoller(t)
	ts := newTestStore(t, InitOptions{})
	reader := ts.handle(t)
	mustPut(t, ts.Store, "x", "1")
	servedGet(t, reader, "x")
	if err := os.Truncate(filepath.Join(ts.dir, changesFile), 0); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		want := strconv.Itoa(i + 2)
		mustPut(t, ts.Store, "x", want)
		if got, _ := servedGet(t, reader, "x"); got != want {
			t.Fatalf("after the counter was truncated: %q, want %q", got, want)
		}
	}
	if !ts.m.(*DirMedium).changes.broken.Load() {
		t.Fatal("the truncated counter was not given up")
	}
}

// A writer that cannot open the counter must not write: readers that trust
// the counter would not hear of its writes.
func TestChanges_WriterWithoutCounterRefuses(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	m := ts.m.(*DirMedium)
	m.changesErr = os.ErrPermission
	if _, err := ts.Put(t.Context(), "x", []byte("v")); err == nil {
		t.Fatal("a write without the change counter succeeded")
	}
}

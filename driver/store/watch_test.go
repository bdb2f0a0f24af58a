package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustStat(t testing.TB, s *Store, name string) Revision {
	t.Helper()
	rev, err := s.m.Stat(context.Background(), recordKey(name))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// countingDir is a DirMedium that counts Stat and Read calls; it still
// offers Watch (promoted), so a store on it watches.
type countingDir struct {
	*DirMedium
	stats, reads atomic.Int64
}

func (c *countingDir) Stat(ctx context.Context, key string) (Revision, error) {
	c.stats.Add(1)
	return c.DirMedium.Stat(ctx, key)
}

func (c *countingDir) Read(ctx context.Context, key string) ([]byte, Revision, error) {
	c.reads.Add(1)
	return c.DirMedium.Read(ctx, key)
}

// unwatchable hides every optional interface of a medium: the store falls
// back to a Stat per Get.
type unwatchable struct{ Medium }

func openCounting(t *testing.T, ts testStore) (*Store, *countingDir) {
	t.Helper()
	dm, err := OpenDir(ts.dir)
	if err != nil {
		t.Fatal(err)
	}
	m := &countingDir{DirMedium: dm}
	s, err := Open(context.Background(), m, KeyFile(ts.key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, m
}

// A value put through another handle (as swarmkeep put in another process
// does) is served by the very next Get, and cached Gets ask the medium for
// nothing: no Stat, no Read. Before the watch every Get cost a Stat.
func TestWatch_PutElsewhereSeenAtOnceWithoutStat(t *testing.T) {
	ts := newTestStore(t, InitOptions{MaxVersions: 2})
	ts.m.(*DirMedium).noSync = true
	reader, m := openCounting(t, ts)
	ctx := context.Background()
	names := []string{"a", "b/c", "d-e"}
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			for i := range 150 {
				want := name + "=" + strconv.Itoa(i)
				if _, err := ts.Put(ctx, name, []byte(want)); err != nil {
					t.Error(err)
					return
				}
				for range 3 {
					if got, mem := servedGet(t, reader, name); got != want {
						t.Errorf("Get %s after put %d: %q (from memory: %v)", name, i, got, mem)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if reader.watch.w.Load() == nil {
		t.Fatal("the store does not watch its folder")
	}
	if n := m.stats.Load(); n != 0 {
		t.Fatalf("%d Stat calls for cached Gets", n)
	}
	reads := m.reads.Load()
	for range 100 {
		mustGet(t, reader, "a", 0)
		if _, mem := servedGet(t, reader, "a"); !mem {
			t.Fatal("an unchanged, cached name not answered from memory")
		}
	}
	if n := m.reads.Load() - reads; n != 0 {
		t.Fatalf("%d reads for 200 Gets of an unchanged name", n)
	}
}

// The same guarantee on a medium that cannot watch: a Stat per Get.
func TestWatch_UnwatchableMediumStats(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	dm, err := OpenDir(ts.dir)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := Open(context.Background(), unwatchable{dm}, KeyFile(ts.key))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	for i := range 20 {
		want := strconv.Itoa(i)
		mustPut(t, ts.Store, "x", want)
		if got := mustGet(t, reader, "x", 0); got != want {
			t.Fatalf("after put %d: %q", i, got)
		}
	}
	if reader.watch.w.Load() != nil {
		t.Fatal("watching a medium that is no Watcher")
	}
}

// Events the kernel dropped (queue overflow) must not leave a stale
// record: the store drops its whole cache.
func TestWatch_QueueOverflowDropsCache(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skip("no inotify limits to read")
	}
	limit, err := strconv.Atoi(string(b[:len(b)-1]))
	if err != nil || limit > 1<<18 {
		t.Skipf("inotify queue of %q events is too long to overflow here", b)
	}
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, "x", "old")
	mustPut(t, ts.Store, "flood/a", "f")
	mustPut(t, ts.Store, "flood/b", "f")
	reader := ts.handle(t)
	if got := mustGet(t, reader, "x", 0); got != "old" {
		t.Fatal(got)
	}
	// Fill the queue with events of other records (alternating: the
	// kernel merges repeated events), then change x: its event is
	// dropped, only the overflow says something happened.
	pa, _ := ts.m.(*DirMedium).path(recordKey("flood/a"))
	pb, _ := ts.m.(*DirMedium).path(recordKey("flood/b"))
	for i := range limit + 10 {
		tm := time.Unix(int64(i), 0)
		if err := os.Chtimes([]string{pa, pb}[i%2], tm, tm); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, ts.Store, "x", "new")
	if got, _ := servedGet(t, reader, "x"); got != "new" {
		t.Fatalf("after an overflow: %q", got)
	}
}

// The store folder or its objects folder replaced by a copy (a restore
// from backup): the watch sees only the old folders, so the store goes
// back to Stat, which follows the path.
func TestWatch_FolderReplaced(t *testing.T) {
	for _, which := range []string{"root", "objects"} {
		t.Run(which, func(t *testing.T) {
			ts := newTestStore(t, InitOptions{})
			mustPut(t, ts.Store, "x", "old")
			reader := ts.handle(t)
			if got := mustGet(t, reader, "x", 0); got != "old" {
				t.Fatal(got)
			}
			dir := ts.dir
			if which == "objects" {
				dir = filepath.Join(ts.dir, "objects")
			}
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.CopyFS(dir, os.DirFS(dir+".old")); err != nil {
				t.Fatal(err)
			}
			writer := openStore(t, ts.dir, KeyFile(ts.key))
			mustPut(t, writer, "x", "new")
			if got, _ := servedGet(t, reader, "x"); got != "new" {
				t.Fatalf("after the %s folder was replaced: %q", which, got)
			}
			if reader.watch.w.Load() != nil {
				t.Fatal("still watching the old folder")
			}
			mustPut(t, writer, "x", "newer")
			if got, mem := servedGet(t, reader, "x"); got != "newer" || mem {
				t.Fatalf("on the Stat path: %q", got)
			}
		})
	}
}

// Shard folders made after the watch started are watched too.
func TestWatch_NewShards(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	ts.m.(*DirMedium).noSync = true
	reader := ts.handle(t)
	mustPut(t, ts.Store, "first", "1")
	mustGet(t, reader, "first", 0) // starts the watch with one shard
	for round := range 2 {
		for i := range 64 {
			name := fmt.Sprintf("n/%d", i)
			want := fmt.Sprintf("%d-%d", round, i)
			mustPut(t, ts.Store, name, want)
			if got, _ := servedGet(t, reader, name); got != want {
				t.Fatalf("%s: %q, want %q", name, got, want)
			}
		}
	}
}

// The cache is bounded, and keeps what was read last.
func TestCache_Bounded(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	ts.m.(*DirMedium).noSync = true
	reader, m := openCounting(t, ts)
	reader.cache.close()
	reader.cache = newRecordCache(16 << 10) // about 120 entries
	pairs := make([]Pair, 300)
	for i := range pairs {
		pairs[i] = Pair{Name: fmt.Sprintf("n/%03d", i), Value: []byte(strconv.Itoa(i))}
	}
	if _, err := ts.PutMany(context.Background(), pairs); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		for _, p := range pairs {
			if got := mustGet(t, reader, p.Name, 0); got != string(p.Value) {
				t.Fatalf("%s: %q", p.Name, got)
			}
		}
	}
	if n := reader.cache.len(); n < 50 || n >= 150 {
		t.Fatalf("cache holds %d entries of 16 KiB", n)
	}
	reads := m.reads.Load()
	for range 5 {
		for _, p := range pairs[250:] {
			mustGet(t, reader, p.Name, 0)
		}
	}
	if n := m.reads.Load() - reads; n != 0 {
		t.Fatalf("%d reads for the 50 names read last", n)
	}
	mustGet(t, reader, pairs[0].Name, 0)
	if n := m.reads.Load() - reads; n != 1 {
		t.Fatalf("%d reads for an evicted name", n)
	}
}

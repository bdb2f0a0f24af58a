package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// listAll is List's entries as "name@latest/count" strings, in order.
func listAll(t *testing.T, s *Store) ([]string, error) {
	t.Helper()
	var out []string
	err := s.List(context.Background(), func(e Entry) error {
		out = append(out, fmt.Sprintf("%s@%d/%d", e.Name, e.Versions[len(e.Versions)-1].Version, len(e.Versions)))
		return nil
	})
	return out, err
}

// TestListCacheReadsOnlyWhatChanged: a second listing reads no record, one
// after a put and an rm reads only the record written, and every listing
// shows the store as it is, from any handle.
func TestListCacheReadsOnlyWhatChanged(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	for i := range 20 {
		mustPut(t, ts.Store, fmt.Sprintf("app/n%02d", i), "v")
	}
	first, err := listAll(t, ts.Store)
	if err != nil || len(first) != 20 || ts.listRead.Load() != 20 {
		t.Fatalf("first listing: %d names, %d read, %v", len(first), ts.listRead.Load(), err)
	}
	if _, err := os.Stat(filepath.Join(ts.dir, listCacheFile)); err != nil {
		t.Fatalf("no listing cache written: %v", err)
	}
	other := ts.handle(t) // another process's listing uses the same cache
	again, err := listAll(t, other)
	if err != nil || !slices.Equal(again, first) || other.listRead.Load() != 0 {
		t.Fatalf("second listing: %v, %d read, %v", again, other.listRead.Load(), err)
	}
	mustPut(t, ts.Store, "app/n03", "v2")
	if err := ts.Remove(context.Background(), "app/n07", 0); err != nil {
		t.Fatal(err)
	}
	after, err := listAll(t, other)
	want := slices.Clone(first)
	want[3] = "app/n03@2/2"
	want = slices.Delete(want, 7, 8)
	if err != nil || !slices.Equal(after, want) {
		t.Fatalf("after a put and an rm: %v, %v; want %v", after, err, want)
	}
	if n := other.listRead.Load(); n != 2 {
		t.Fatalf("after a put and an rm the listing read %d records, want 2", n)
	}
}

// TestListCacheDistrusted: a cache that is damaged, made under another key
// or for another store is ignored (every record is read, the listing is
// right), and a record damaged in place is reported though it was listed
// before.
func TestListCacheDistrusted(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	for i := range 5 {
		mustPut(t, ts.Store, fmt.Sprintf("n%d", i), "v")
	}
	want, err := listAll(t, ts.Store)
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(ts.dir, listCacheFile)
	good, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	other := newTestStore(t, InitOptions{})
	mustPut(t, other.Store, "n0", "v")
	if _, err := listAll(t, other.Store); err != nil {
		t.Fatal(err)
	}
	foreign, err := os.ReadFile(filepath.Join(other.dir, listCacheFile))
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 1
	for what, b := range map[string][]byte{"flipped": flipped, "truncated": good[:len(good)-1], "another store's": foreign, "empty": nil} {
		if err := os.WriteFile(cache, b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := listAll(t, ts.Store)
		if err != nil || !slices.Equal(got, want) || ts.listRead.Load() != 5 {
			t.Fatalf("%s cache: %v, %d read, %v", what, got, ts.listRead.Load(), err)
		}
	}

	// Damaged in place: same file, new change time, read again.
	p := recordPath(ts.dir, "n2")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0x40
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := listAll(t, ts.Store)
	if !errors.Is(err, backend.ErrCorrupt) || len(got) != 4 {
		t.Fatalf("record damaged in place: %v, %v; want it reported and the others listed", got, err)
	}
}

// TestListCacheWithADamagedObjectFile: an object file that holds no key (a
// truncated file, say) is reported, and every other record is still listed
// and remembered.
func TestListCacheWithADamagedObjectFile(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	for i := range 3 {
		mustPut(t, ts.Store, fmt.Sprintf("n%d", i), "v")
	}
	p := recordPath(ts.dir, "n9")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte{0}, 0o600); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		got, err := listAll(t, ts.Store)
		if !errors.Is(err, backend.ErrCorrupt) || !slices.Equal(got, []string{"n0@1/1", "n1@1/1", "n2@1/1"}) {
			t.Fatalf("round %d: %v, %v; want the three records and the damaged file reported", round, got, err)
		}
	}
	if n := ts.listRead.Load(); n != 1 {
		t.Fatalf("the second listing read %d objects, want only the damaged one", n)
	}
}

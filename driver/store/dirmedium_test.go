package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Compare-and-swap, listing, whole blobs and the lock across handles are
// in the medium suite (medium_conformance_test.go); these tests are about
// files.

func TestDirMedium_ListAndStrays(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "m")
	m, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	keys := []string{"r/a", "r/b/c", "keyring", "other"}
	for _, k := range keys {
		if _, err := m.Write(ctx, k, []byte("blob"), ""); err != nil {
			t.Fatal(err)
		}
	}
	// Names never appear on disk.
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if d.Name() == "a" || d.Name() == "keyring" {
			t.Errorf("name visible on disk: %s", p)
		}
		return nil
	})
	// Junk a killed writer or an operator could leave.
	p, shard := m.path("r/a")
	os.WriteFile(filepath.Join(filepath.Dir(p), tmpName), []byte("torn"), 0o600)
	os.WriteFile(filepath.Join(dir, "objects", "zz"), nil, 0o600)
	os.WriteFile(filepath.Join(filepath.Dir(p), "notes.txt"), nil, 0o600)

	var got []string
	if err := m.List(ctx, "r/", func(k string) error { got = append(got, k); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"r/a", "r/b/c"}) {
		t.Fatalf("List = %v", got)
	}

	// A temp file named in the lock file is removed by the next writer.
	m.journal(shard)
	if _, err := m.Write(ctx, "unrelated", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	if st := strays(t, dir); len(st) != 0 {
		t.Fatalf("stray temp file kept: %v", st)
	}

	// A file at the wrong path is reported, and does not stop the listing.
	b, _ := os.ReadFile(p)
	q, _ := m.path("r/moved")
	os.MkdirAll(filepath.Dir(q), 0o700)
	os.WriteFile(q, b, 0o600)
	got = nil
	err = m.List(ctx, "r/", func(k string) error { got = append(got, k); return nil })
	var bad badObjects
	if !errors.As(err, &bad) || len(bad) != 1 || !errors.Is(err, backend.ErrCorrupt) || len(got) != 2 {
		t.Fatalf("List with a moved file = %v, %v", got, err)
	}
	if _, _, err := m.Read(ctx, "r/moved"); !errors.Is(err, backend.ErrCorrupt) {
		t.Fatalf("Read of moved file = %v", err)
	}
}

// TestDirMedium_WriteWaitsForLock: a DirMedium write takes the store's
// lock itself, so another handle's write waits while the lock is held
// (and gives up at its deadline), and a context from a released lock no
// longer counts as holding it.
func TestDirMedium_WriteWaitsForLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	a, _ := OpenDir(dir)
	defer a.Close()
	b, _ := OpenDir(dir)
	defer b.Close()
	ctx := context.Background()
	lctx, unlock, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// a's own writes under the held lock go through...
	if _, err := a.Write(lctx, "k", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	// ...b's wait until it is released.
	short, cancel := context.WithTimeout(ctx, 50e6)
	defer cancel()
	if _, err := b.Write(short, "k2", []byte("x"), ""); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Write while another handle holds the lock = %v", err)
	}
	unlock()
	unlock() // idempotent
	if _, err := b.Write(ctx, "k2", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	// After unlock, the old context no longer counts as holding it.
	if _, err := a.Write(lctx, "k3", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
}

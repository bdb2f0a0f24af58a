package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

func TestStoreLKGRoundTrip(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	dir := t.TempDir()
	l, s := openLKG(t, dir)
	key := keyOf(ref("db")).String()

	if _, _, err := l.Load(ctx, key); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("absent copy: %v", err)
	}
	in := backend.Secret{Value: []byte("v1"), Version: 7, Created: time.Unix(1700000000, 42)}
	if err := l.Save(ctx, key, in, clk.Now()); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	if err := l.Save(ctx, key, backend.Secret{Value: []byte("v2"), Version: 8}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	out, saved, err := l.Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Value) != "v2" || out.Version != 8 || !out.Created.IsZero() || !saved.Equal(clk.Now()) {
		t.Fatalf("loaded %+v saved %s", out, saved)
	}
	// One version per name: the older copy is gone from disk.
	info, err := s.Info(ctx, lkgName(key))
	if err != nil || len(info.Versions) != 1 {
		t.Fatalf("info %+v, %v", info, err)
	}
	s.Close()

	// Reopened, as after a restart. The copy keeps the time it is given,
	// the fetch's, not the write's.
	l, _ = openLKG(t, dir)
	fetched := clk.Now().Add(-time.Hour)
	if err := l.Save(ctx, key, in, fetched); err != nil {
		t.Fatal(err)
	}
	out, saved, err = l.Load(ctx, key)
	if err != nil || string(out.Value) != "v1" || out.Version != 7 || !out.Created.Equal(in.Created) ||
		!saved.Equal(fetched) {
		t.Fatalf("loaded %+v saved %s: %v", out, saved, err)
	}
	fg := l.(Forgetter)
	for range 2 { // forgetting an absent copy is fine
		if err := fg.Forget(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := l.Load(ctx, key); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("forgotten copy: %v", err)
	}
}

func TestStoreLKGRejectsForeignRecords(t *testing.T) {
	ctx := context.Background()
	l, s := openLKG(t, t.TempDir())
	key := "some key"
	if _, err := s.Put(ctx, lkgName(key), []byte("not an envelope, and secret")); err != nil {
		t.Fatal(err)
	}
	_, _, err := l.Load(ctx, key)
	if !errors.Is(err, backend.ErrCorrupt) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("foreign record: %v", err)
	}
}

func TestOpenLKGStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "k")
	if err := store.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	if err := store.GenerateKeyFile(other); err != nil {
		t.Fatal(err)
	}
	s, err := OpenLKGStore(ctx, filepath.Join(dir, "lkg"), store.KeyFile(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	id := s.ID()
	s.Close()
	s, err = OpenLKGStore(ctx, filepath.Join(dir, "lkg"), store.KeyFile(keyFile))
	if err != nil || s.ID() != id {
		t.Fatalf("reopen: %v", err)
	}
	s.Close()
	// A wrong key is an error, never a fresh store over the old one.
	if _, err := OpenLKGStore(ctx, filepath.Join(dir, "lkg"), store.KeyFile(other)); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLKGStore(ctx, filepath.Join(dir, "file"), store.KeyFile(keyFile)); err == nil {
		t.Fatal("store over a file opened")
	}
}

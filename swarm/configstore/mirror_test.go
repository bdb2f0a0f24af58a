package configstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/store"
)

// storeFixture is a real encrypted store: a file store in a folder, or a
// swarm store under a prefix of the fake API.
type storeFixture struct {
	*store.Store
	key store.KeySource
}

func newKey(t *testing.T) store.KeySource {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	if err := store.GenerateKeyFile(p); err != nil {
		t.Fatal(err)
	}
	return store.KeyFile(p)
}

func initStore(t *testing.T, m store.Medium, key store.KeySource, values map[string]string) storeFixture {
	t.Helper()
	ctx := context.Background()
	s, err := store.Init(ctx, m, key, store.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for name, v := range values {
		if _, err := s.Put(ctx, name, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	return storeFixture{s, key}
}

func swarmStore(t *testing.T, f *fakeSwarm, values map[string]string) storeFixture {
	t.Helper()
	m, err := New(f, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	return initStore(t, m, newKey(t), values)
}

// snapshot is every file under dir but the lock, with its bytes.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".lock" {
			return err
		}
		b, err := os.ReadFile(p)
		files[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// readAll opens the folder as the plugin does and checks every value.
func readAll(ctx context.Context, dir string, key store.KeySource, want map[string]string) error {
	m, err := store.OpenDir(dir)
	if err != nil {
		return err
	}
	s, err := store.Open(ctx, m, key)
	if err != nil {
		m.Close()
		return err
	}
	defer s.Close()
	return getAll(ctx, s, want)
}

func getAll(ctx context.Context, s *store.Store, want map[string]string) error {
	for name, v := range want {
		got, err := s.Get(ctx, name, 0)
		if err != nil {
			return err
		}
		if string(got.Value) != v {
			return fmt.Errorf("%s: wrong value", name)
		}
	}
	return nil
}

func openLocal(t *testing.T, dir string) *store.DirMedium {
	t.Helper()
	local, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	return local
}

// TestMirrorKeepsFileStore: a manager's own file store is never replaced
// by a swarm store it did not mirror, unless adopted; an empty folder is
// filled and marked; a marked folder follows the swarm, even through a new
// store under its prefix.
func TestMirrorKeepsFileStore(t *testing.T) {
	ctx := context.Background()
	fileValues := map[string]string{"db/password": "file-1", "api/token": "file-2"}
	swarmValues := map[string]string{"db/password": "swarm-1", "other": "swarm-2"}
	f := newFakeSwarm()
	sw := swarmStore(t, f, swarmValues)

	t.Run("file store kept", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "store")
		local := openLocal(t, dir)
		fileKey := newKey(t)
		initStore(t, local, fileKey, fileValues)
		before := snapshot(t, dir)
		var told []error
		mr := &Mirror{API: f, Prefix: "t", Dir: dir, Refused: func(err error) error { told = append(told, err); return nil }}
		for range 2 {
			if err := mr.Sync(ctx, local); !errors.Is(err, ErrForeignStore) {
				t.Fatalf("Sync = %v, want ErrForeignStore", err)
			}
		}
		if len(told) != 1 {
			t.Fatalf("refusal told %d times, want once", len(told))
		}
		// A refusal that could not be published is told again next pass.
		tries := 0
		mr.Refused = func(error) error { tries++; return errors.New("no leader") }
		mr.lastDeny = ""
		for range 2 {
			mr.Sync(ctx, local)
		}
		if tries != 2 {
			t.Fatalf("a refusal whose publication failed was told %d times in 2 passes, want 2", tries)
		}
		if after := snapshot(t, dir); !maps.Equal(before, after) {
			t.Fatalf("folder changed:\nbefore %d files\nafter  %d files", len(before), len(after))
		}
		if err := readAll(ctx, dir, fileKey, fileValues); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("file store adopted", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "store")
		local := openLocal(t, dir)
		initStore(t, local, newKey(t), fileValues)
		mr := &Mirror{API: f, Prefix: "t", Dir: dir, Adopt: true}
		if err := mr.Sync(ctx, local); err != nil {
			t.Fatal(err)
		}
		if err := readAll(ctx, dir, sw.key, swarmValues); err != nil {
			t.Fatal(err)
		}
		if _, _, err := local.Read(ctx, "r/api/token"); err == nil {
			t.Fatal("a name of the file store is left in the mirror")
		}
		checkMarker(t, dir, sw.ID())
	})

	t.Run("empty folder filled, marked, followed", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "store")
		local := openLocal(t, dir)
		mr := &Mirror{API: f, Prefix: "t", Dir: dir}
		if err := mr.Sync(ctx, local); err != nil {
			t.Fatal(err)
		}
		if err := readAll(ctx, dir, sw.key, swarmValues); err != nil {
			t.Fatal(err)
		}
		checkMarker(t, dir, sw.ID())
		// A new store under the same prefix (removed and created again):
		// the marked folder follows it, with a fresh Mirror (a restart).
		m, _ := New(f, "t", nil)
		var keys []string
		m.List(ctx, "", func(k string) error { keys = append(keys, k); return nil })
		for _, k := range keys {
			rev, _ := m.Stat(ctx, k)
			if err := m.Delete(ctx, k, rev); err != nil {
				t.Fatal(err)
			}
		}
		newValues := map[string]string{"fresh": "swarm-3"}
		sw2 := swarmStore(t, f, newValues)
		mr = &Mirror{API: f, Prefix: "t", Dir: dir}
		if err := mr.Sync(ctx, local); err != nil {
			t.Fatal(err)
		}
		if err := readAll(ctx, dir, sw2.key, newValues); err != nil {
			t.Fatal(err)
		}
		checkMarker(t, dir, sw2.ID())
	})
}

func checkMarker(t *testing.T, dir, id string) {
	t.Helper()
	mk, err := readMarker(dir)
	if err != nil || mk != (marker{prefix: "t", store: id}) {
		t.Fatalf("marker = %+v %v, want prefix t, store %s", mk, err, id)
	}
}

// TestMirrorMissedRekey: a folder that missed a whole rekey of the swarm
// store (keyring {A,B}, records re-sealed, keyring {B}) catches up so that
// the plugin reading it never meets a record it cannot open: neither a
// reader that loaded the old keyring nor one that opens the folder anew,
// after any write of the pass.
func TestMirrorMissedRekey(t *testing.T) {
	ctx := context.Background()
	f := newFakeSwarm()
	values := map[string]string{}
	for i := range 2 * bulkFetch {
		values[fmt.Sprintf("n%02d", i)] = fmt.Sprint("value ", i)
	}
	sw := swarmStore(t, f, values)
	dir := filepath.Join(t.TempDir(), "store")
	local := openLocal(t, dir)
	if err := (&Mirror{API: f, Prefix: "t", Dir: dir}).Sync(ctx, local); err != nil {
		t.Fatal(err)
	}
	// The plugin's store, opened with keyring {A}, every record read.
	pm, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	plugin, err := store.Open(ctx, pm, sw.key)
	if err != nil {
		t.Fatal(err)
	}
	defer plugin.Close()
	if err := getAll(ctx, plugin, values); err != nil {
		t.Fatal(err)
	}
	st, err := sw.Rekey(ctx)
	if err != nil || st.Records != len(values) || st.OldKeys != 1 {
		t.Fatalf("rekey: %+v %v", st, err)
	}
	writes := 0
	mr := &Mirror{API: f, Prefix: "t", Dir: dir}
	mr.afterWrite = func() {
		writes++
		if err := getAll(ctx, plugin, values); err != nil {
			t.Errorf("after write %d of the catch-up, the plugin's reader: %v", writes, err)
		}
		if err := readAll(ctx, dir, sw.key, values); err != nil {
			t.Errorf("after write %d of the catch-up, a new reader: %v", writes, err)
		}
	}
	if err := mr.Sync(ctx, local); err != nil {
		t.Fatal(err)
	}
	if writes == 0 {
		t.Fatal("the catch-up wrote nothing")
	}
	// The folder is the swarm's: every record under the new key only.
	if err := readAll(ctx, dir, sw.key, values); err != nil {
		t.Fatal(err)
	}
	ring, _, _ := local.Read(ctx, "keyring")
	swRing, _, _ := mustMedium(t, f).Read(ctx, "keyring")
	if string(ring) != string(swRing) {
		t.Fatal("the folder's keyring is not the swarm's")
	}
}

func mustMedium(t *testing.T, f *fakeSwarm) *Medium {
	m, err := New(f, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMirrorRekeyEvents: a burst of events holding a whole rekey (its
// keyring reads as the last one, {B}, by then) is not applied head by head,
// keyring first: the plugin would meet records sealed with the dropped key.
func TestMirrorRekeyEvents(t *testing.T) {
	ctx := context.Background()
	f := newFakeSwarm()
	values := map[string]string{"a": "1", "b": "2", "c": "3"}
	sw := swarmStore(t, f, values)
	dir := filepath.Join(t.TempDir(), "store")
	local := openLocal(t, dir)
	mr := &Mirror{API: f, Prefix: "t", Dir: dir}
	if err := mr.Sync(ctx, local); err != nil {
		t.Fatal(err)
	}
	for len(f.events) > 0 { // the events of the writes mirrored already
		<-f.events
	}
	if _, err := sw.Rekey(ctx); err != nil {
		t.Fatal(err)
	}
	writes := 0
	mr.afterWrite = func() {
		writes++
		if err := readAll(ctx, dir, sw.key, values); err != nil {
			t.Errorf("after write %d: %v", writes, err)
		}
	}
	if err := mr.applyHeads(ctx, local, drain(<-f.events, f.events)); err != nil {
		t.Fatal(err)
	}
	if err := mr.Sync(ctx, local); err != nil {
		t.Fatal(err)
	}
	if writes == 0 {
		t.Fatal("the rekey was not mirrored")
	}
}

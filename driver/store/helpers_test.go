package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// cheapPassphrase is PassphraseFile with argon2id costs low enough for
// -race runs. The parameters are stored in the keyring, so stores made
// with it open with the real PassphraseFile too.
func cheapPassphrase(path string) KeySource {
	return &passphraseFile{path: path, time: 1, memory: 64, threads: 1}
}

func writePassphrase(t testing.TB, pass string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(p, []byte(pass), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newKeyFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys", "store.key")
	if err := GenerateKeyFile(p); err != nil {
		t.Fatal(err)
	}
	return p
}

type testStore struct {
	*Store
	dir string
	key string
}

// newStore makes a store in a fresh directory sealed with a new key file.
func newTestStore(t testing.TB, o InitOptions) testStore {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	key := newKeyFile(t)
	m, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Init(context.Background(), m, KeyFile(key), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return testStore{s, dir, key}
}

// handle opens another Store on the same directory, as the plugin
// process would.
func (ts testStore) handle(t testing.TB) *Store {
	t.Helper()
	return openStore(t, ts.dir, KeyFile(ts.key))
}

func openStore(t testing.TB, dir string, k KeySource) *Store {
	t.Helper()
	m, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), m, k)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustPut(t testing.TB, s *Store, name, value string) uint64 {
	t.Helper()
	v, err := s.Put(context.Background(), name, []byte(value))
	if err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
	return v
}

func mustGet(t testing.TB, s *Store, name string, version uint64) string {
	t.Helper()
	sec, err := s.Get(context.Background(), name, version)
	if err != nil {
		t.Fatalf("Get(%q, %d): %v", name, version, err)
	}
	return string(sec.Value)
}

// servedGet reads name as the plugin does: from memory when the store can
// answer so (backend.MemoryGetter), else with Get. It says which.
func servedGet(t testing.TB, s *Store, name string) (value string, fromMemory bool) {
	t.Helper()
	b := NewBackend(s, "file").(backend.MemoryGetter)
	if sec, ok := b.GetFromMemory(backend.Ref{Name: name}); ok {
		return string(sec.Value), true
	}
	return mustGet(t, s, name, 0), false
}

// recordPath is where DirMedium keeps name's record.
func recordPath(dir, name string) string {
	m := DirMedium{objects: filepath.Join(dir, "objects")}
	p, _ := m.path(recordKey(name))
	return p
}

// checkCorrupt asserts err is the error a damaged record must give: it
// wraps backend.ErrCorrupt, names the record, and holds no value.
func checkCorrupt(t testing.TB, err error, name string, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error for damaged record %q", name)
	}
	if !errors.Is(err, backend.ErrCorrupt) {
		t.Fatalf("error does not wrap backend.ErrCorrupt: %v", err)
	}
	if name != "" && !strings.Contains(err.Error(), `"`+name+`"`) {
		t.Fatalf("error does not name record %q: %v", name, err)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error leaks a value: %v", err)
		}
	}
}

func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// strays lists temp files left anywhere in the store.
func strays(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), tmpName) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

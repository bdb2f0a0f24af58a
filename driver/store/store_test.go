package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

func TestStore_RoundTrip(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	tests := []struct {
		name  string
		value []byte
	}{
		{"a", []byte("x")},
		{"db/password", []byte("hunter2")},
		{"A0/b_c.d-e/9", []byte{0, 1, 2, 255}},
		{strings.Repeat("n", 255), []byte("long name")},
		{"big", bytes.Repeat([]byte{7}, maxValueSize)},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name[:min(len(tt.name), 20)], func(t *testing.T) {
			v, err := ts.Put(ctx, tt.name, tt.value)
			if err != nil || v != 1 {
				t.Fatalf("Put = %d, %v; want 1", v, err)
			}
			for _, s := range []*Store{ts.Store, ts.handle(t)} {
				sec, err := s.Get(ctx, tt.name, 0)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(sec.Value, tt.value) || sec.Version != 1 || sec.Created.IsZero() {
					t.Fatalf("Get = version %d, %d bytes; want version 1, %d bytes", sec.Version, len(sec.Value), len(tt.value))
				}
			}
		})
	}
}

func TestStore_Versions(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{MaxVersions: 3})
	for i := 1; i <= 5; i++ {
		if v := mustPut(t, ts.Store, "app/key", fmt.Sprint("v", i)); v != uint64(i) {
			t.Fatalf("Put #%d = version %d", i, v)
		}
	}
	// Pruned to the newest 3.
	e, err := ts.Info(ctx, "app/key")
	if err != nil {
		t.Fatal(err)
	}
	if got := versionsOf(e); got != "3 4 5" {
		t.Fatalf("versions = %s, want 3 4 5", got)
	}
	tests := []struct {
		version uint64
		want    string
		err     error
	}{
		{0, "v5", nil},
		{5, "v5", nil},
		{3, "v3", nil},
		{2, "", backend.ErrNotFound}, // pruned
		{9, "", backend.ErrNotFound},
	}
	for _, tt := range tests {
		sec, err := ts.Get(ctx, "app/key", tt.version)
		if !errors.Is(err, tt.err) || string(sec.Value) != tt.want {
			t.Errorf("Get(%d) = %q, %v; want %q, %v", tt.version, sec.Value, err, tt.want, tt.err)
		}
	}

	// Remove one: the latest becomes 4; the next Put is 6, not 5.
	if err := ts.Remove(ctx, "app/key", 5); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, ts.Store, "app/key", 0); got != "v4" {
		t.Fatalf("latest after removing 5 = %q", got)
	}
	if err := ts.Remove(ctx, "app/key", 5); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("removing 5 twice: %v", err)
	}
	if v := mustPut(t, ts.Store, "app/key", "v6"); v != 6 {
		t.Fatalf("Put after remove = %d, want 6", v)
	}

	// Remove all: gone for readers, but numbers are still not reused.
	if err := ts.Remove(ctx, "app/key", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get(ctx, "app/key", 0); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Get after remove all: %v", err)
	}
	if _, err := ts.Info(ctx, "app/key"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Info after remove all: %v", err)
	}
	if err := ts.Remove(ctx, "app/key", 0); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("remove all twice: %v", err)
	}
	if v := mustPut(t, ts.Store, "app/key", "v7"); v != 7 {
		t.Fatalf("Put after remove all = %d, want 7", v)
	}
	// Removing the last remaining version keeps the counter too.
	if err := ts.Remove(ctx, "app/key", 7); err != nil {
		t.Fatal(err)
	}
	if v := mustPut(t, ts.Store, "app/key", "v8"); v != 8 {
		t.Fatalf("Put after removing last version = %d, want 8", v)
	}
	if _, err := ts.Get(ctx, "missing", 0); !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), `"missing"`) {
		t.Fatalf("Get(missing) = %v", err)
	}
}

func versionsOf(e Entry) string {
	var s []string
	for _, v := range e.Versions {
		s = append(s, fmt.Sprint(v.Version))
	}
	return strings.Join(s, " ")
}

func TestStore_SetMaxVersions(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{MaxVersions: 5})
	for i := range 5 {
		mustPut(t, ts.Store, "k", fmt.Sprint(i))
	}
	other := ts.handle(t)
	if err := other.SetMaxVersions(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// The bound lives in the keyring, so this handle's next Put sees it.
	mustPut(t, ts.Store, "k", "new")
	if e, _ := ts.Info(ctx, "k"); versionsOf(e) != "5 6" {
		t.Fatalf("versions = %s, want 5 6", versionsOf(e))
	}
	for _, n := range []int{0, -1, maxVersionsLimit + 1} {
		if err := ts.SetMaxVersions(ctx, n); !errors.Is(err, backend.ErrInvalidRef) {
			t.Errorf("SetMaxVersions(%d) = %v", n, err)
		}
	}
	if _, err := Init(ctx, nopMedium{}, KeyFile(ts.key), InitOptions{MaxVersions: 1001}); !errors.Is(err, backend.ErrInvalidRef) {
		t.Errorf("Init with 1001 versions: %v", err)
	}
}

// nopMedium fails the test if used.
type nopMedium struct{ Medium }

func TestStore_InvalidInput(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"", []byte("x")},
		{"bad name", []byte("x")},
		{"ok", nil},
		{"ok", make([]byte, maxValueSize+1)},
	} {
		if _, err := ts.Put(ctx, tc.name, tc.value); !errors.Is(err, backend.ErrInvalidRef) {
			t.Errorf("Put(%q, %d bytes) = %v", tc.name, len(tc.value), err)
		}
	}
	if _, err := ts.Get(ctx, "../etc/passwd", 0); !errors.Is(err, backend.ErrInvalidRef) {
		t.Errorf("Get(../etc/passwd) = %v", err)
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"A-b_c.d", true},
		{"db/prod/password", true},
		{"0/1/2", true},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
		{"", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{".hidden", false},
		{"a/..", false},
		{"a/-b", false},
		{"_a", false},
		{"a b", false},
		{"a\x00", false},
		{"é", false},
		{"a:b", false},
	}
	for _, tt := range tests {
		err := ValidateName(tt.name)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, backend.ErrInvalidRef)) {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestInit_Exists(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	m, err := OpenDir(ts.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := Init(ctx, m, KeyFile(ts.key), InitOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("Init on existing store: %v", err)
	}
	// A directory with records but no keyring is refused too.
	mustPut(t, ts.Store, "x", "1")
	p, _ := m.path(keyringKey)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(ctx, m, KeyFile(ts.key), InitOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("Init over orphaned records: %v", err)
	}
}

func TestOpen_NoStore(t *testing.T) {
	dir := t.TempDir()
	m, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = Open(context.Background(), m, KeyFile(newKeyFile(t)))
	if !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), "run swarmkeep init") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open on empty dir: %v", err)
	}
}

func TestStore_SeesOtherProcessPut(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	plugin := ts.handle(t)
	mustPut(t, ts.Store, "svc/token", "one")
	if got := mustGet(t, plugin, "svc/token", 0); got != "one" {
		t.Fatalf("got %q", got)
	}
	// Same length, so only the revision tells the change apart.
	for _, v := range []string{"two", "six", "ten"} {
		mustPut(t, ts.Store, "svc/token", v)
		if got := mustGet(t, plugin, "svc/token", 0); got != v {
			t.Fatalf("plugin sees %q after Put of %q", got, v)
		}
	}
	if err := ts.Remove(context.Background(), "svc/token", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := plugin.Get(context.Background(), "svc/token", 0); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("plugin Get after remove: %v", err)
	}
}

func TestStore_ManyRecords(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	ts.m.(*DirMedium).noSync = true // 2,000 fsyncs would dominate the run
	const n = 2000
	for i := range n {
		mustPut(t, ts.Store, fmt.Sprintf("many/%04d", i), fmt.Sprint("value-", i))
	}
	mustPut(t, ts.Store, "many/0007", "second")
	seen := map[string]int{}
	err := ts.handle(t).List(ctx, func(e Entry) error {
		seen[e.Name] = len(e.Versions)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n || seen["many/0007"] != 2 || seen["many/1999"] != 1 {
		t.Fatalf("List saw %d names (many/0007: %d versions)", len(seen), seen["many/0007"])
	}
	ok, bad, err := ts.Verify(ctx, nil)
	if ok != n || bad != 0 || err != nil {
		t.Fatalf("Verify = %d ok, %d bad, %v", ok, bad, err)
	}
	if got := mustGet(t, ts.Store, "many/1234", 0); got != "value-1234" {
		t.Fatalf("got %q", got)
	}
	// A listing callback's error stops it.
	stop := errors.New("stop")
	if err := ts.List(ctx, func(Entry) error { return stop }); err != stop {
		t.Fatalf("List with failing callback = %v", err)
	}
}

func TestStore_Permissions(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, "p", "v")
	err := filepath.WalkDir(ts.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(ts.key)
	if err != nil || fi.Mode().Perm() != 0o400 {
		t.Fatalf("key file mode %v, %v", fi.Mode().Perm(), err)
	}
	fi, err = os.Stat(filepath.Dir(ts.key))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode %v, %v", fi.Mode().Perm(), err)
	}
}

func TestStore_Closed(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, "x", "1")
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get(context.Background(), "x", 0); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, err := ts.Put(context.Background(), "x", []byte("2")); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Put after Close: %v", err)
	}
	if err := ts.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStore_ContextCanceled(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, "x", "1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ts.Get(ctx, "x", 0); !errors.Is(err, backend.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with canceled context: %v", err)
	}
}

// The cache keeps only the latest version of a record; a pinned older one
// is read from the medium and is still exact, and the latest stays cached.
func TestCacheKeepsLatestOnly(t *testing.T) {
	ts := newTestStore(t, InitOptions{MaxVersions: 5})
	s := ts.handle(t)
	mustPut(t, s, "db", "one")
	mustPut(t, s, "db", "two")
	mustPut(t, s, "db", "three")
	if got := mustGet(t, s, "db", 0); got != "three" {
		t.Fatalf("latest: %q", got)
	}
	v, ok, _ := s.cache.get(s.cacheID("db"), "")
	if !ok {
		v, ok, _ = s.cache.get("db", mustStat(t, s, "db"))
	}
	if !ok || v.num != 3 {
		t.Fatalf("cached: %v, version %d", ok, v.num)
	}
	for v, want := range map[uint64]string{1: "one", 2: "two", 3: "three", 0: "three"} {
		if got := mustGet(t, s, "db", v); got != want {
			t.Fatalf("version %d: %q, want %q", v, got, want)
		}
	}
	if _, err := s.Get(context.Background(), "db", 9); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("version 9: %v", err)
	}
	if e, err := s.Info(context.Background(), "db"); err != nil || len(e.Versions) != 3 {
		t.Fatalf("info after a cached get: %+v %v", e, err)
	}
}

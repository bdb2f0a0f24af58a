package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/etcdstore/etcdtest"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// One plain single-member cluster serves every test that does not stop
// members or change the cluster's security; each test works under its
// own prefix. Starting a member costs about a second under -race.
var shared struct {
	once sync.Once
	c    *etcdtest.Cluster
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		shared.c.Close()
	}
	os.Exit(code)
}

func sharedCluster(t testing.TB) *etcdtest.Cluster {
	t.Helper()
	etcdtest.Require(t)
	shared.once.Do(func() { shared.c, shared.err = etcdtest.New(etcdtest.Options{}) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.c
}

// prefixes numbers the prefixes handed out, so a test run again in the
// same process (-count) gets a fresh one.
var prefixes atomic.Int64

// testPrefix is a prefix no other test, and no other run of this test, uses.
func testPrefix(t testing.TB) string {
	return fmt.Sprintf("/t/%s.%d/", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()), prefixes.Add(1))
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newKeyFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "store.key")
	if err := store.GenerateKeyFile(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// testConfig is a configuration for cluster c under a fresh prefix.
func testConfig(t testing.TB, c *etcdtest.Cluster) Config {
	return Config{
		Endpoints:   c.Endpoints(),
		Prefix:      testPrefix(t),
		DialTimeout: 2 * time.Second,
		KeyFile:     newKeyFile(t),
	}
}

func newMedium(t testing.TB, c Config) *Medium {
	t.Helper()
	m, err := NewMedium(testCtx(t, 10*time.Second), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// lockCounter counts the store's calls to the medium's writer lock, to
// tell whether the store uses it at all (see TestStoreTakesWriterLock).
type lockCounter struct {
	*Medium
	n *atomic.Int64
}

func (l lockCounter) Lock(ctx context.Context) (context.Context, func(), error) {
	l.n.Add(1)
	return l.Medium.Lock(ctx)
}

// initStore creates the store under c and returns a handle on it.
func initStore(t testing.TB, c Config) *store.Store {
	t.Helper()
	s, err := store.Init(testCtx(t, 10*time.Second), newMedium(t, c), c.KeySource(), store.InitOptions{MaxVersions: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// handle opens another Store on c with its own connection and lock
// session: another manager, as far as etcd can tell.
func handle(t testing.TB, c Config) *store.Store {
	t.Helper()
	s, err := store.Open(testCtx(t, 10*time.Second), newMedium(t, c), c.KeySource())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// storeLocks reports whether the store takes the medium's writer lock.
func storeLocks(t testing.TB, c Config) bool {
	t.Helper()
	var n atomic.Int64
	m := lockCounter{newMedium(t, c), &n}
	s, err := store.Open(testCtx(t, 10*time.Second), m, c.KeySource())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Put(testCtx(t, 10*time.Second), "lock/probe", []byte("x")); err != nil {
		t.Fatal(err)
	}
	return n.Load() > 0
}

const lockHookMissing = "the store does not take etcdstore.Medium's writer lock: driver/store must export its " +
	"writer-lock interface (store.Locker with Lock(ctx)); without it a rekey can lose records written " +
	"concurrently by another manager"

func wantErr(t testing.TB, err, sentinel error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %v does not wrap %v", err, sentinel)
	}
}

func mustPut(t testing.TB, s *store.Store, name, value string) uint64 {
	t.Helper()
	v, err := s.Put(testCtx(t, 10*time.Second), name, []byte(value))
	if err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
	return v
}

func mustGet(t testing.TB, s *store.Store, name string, version uint64) string {
	t.Helper()
	sec, err := s.Get(testCtx(t, 10*time.Second), name, version)
	if err != nil {
		t.Fatalf("Get(%q, %d): %v", name, version, err)
	}
	return string(sec.Value)
}

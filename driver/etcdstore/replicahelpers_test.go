package etcdstore

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/etcdstore/etcdtest"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// ownCluster is the start of a replica test that stops etcd: fast replica
// timings, a cluster of its own with a store, and another manager's writer
// (its store and medium) that has put app/db=v1.
func ownCluster(t *testing.T) (*etcdtest.Cluster, Config, *store.Store, *Medium) {
	t.Helper()
	fastReplica(t)
	c := etcdtest.Start(t, etcdtest.Options{})
	cfg := testConfig(t, c)
	initStore(t, cfg)
	w, wm := writer(t, cfg)
	mustPut(t, w, "app/db", "v1")
	return c, cfg, w, wm
}

// waitApplied waits until every published replica applied wm's last write
// (what swarmkeep put waits for).
func waitApplied(t testing.TB, wm *Medium) {
	t.Helper()
	if _, lag, err := wm.WaitApplied(testCtx(t, 5*time.Second)); err != nil || len(lag) > 0 {
		t.Fatal(lag, err)
	}
}

// fastReplica shortens the replica's timings for the test: etcd gone quiet
// is noticed in a fraction of a second.
func fastReplica(t *testing.T) {
	old := currentTiming()
	progressEvery, staleAfter, minBackoff, maxBackoff, missTimeout = 50*time.Millisecond, 300*time.Millisecond, 20*time.Millisecond, 200*time.Millisecond, 500*time.Millisecond
	t.Cleanup(func() {
		progressEvery, staleAfter, minBackoff, maxBackoff, missTimeout, persistDelay =
			old.progressEvery, old.staleAfter, old.minBackoff, old.maxBackoff, old.missTimeout, old.persistDelay
	})
}

// replicaOf returns the Replica under an etcd backend.
func replicaOf(t testing.TB, b backend.Backend) *Replica {
	t.Helper()
	rb, ok := b.(*replicaBackend)
	if !ok {
		t.Fatalf("backend is a %T, not a replica backend", b)
	}
	return rb.r
}

// waitFor polls cond (an in-memory check) until it holds, for at most 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitStale(t testing.TB, b backend.Backend) {
	t.Helper()
	r := replicaOf(t, b)
	waitFor(t, "the copy to be marked stale", func() bool { stale, _, _ := r.Staleness(); return stale })
}

// pluginSettings are the settings a plugin instance gets: a replica
// folder of its own and an ID under which it publishes its revision.
func pluginSettings(t testing.TB, cfg Config, id string) backend.Settings {
	s := settingsOf(cfg)
	s[SettingReplicaDir] = filepath.Join(t.TempDir(), "replica")
	s[SettingReplicaID] = id
	return s
}

// writer is another manager's swarmkeep put: its own connection, and the
// medium to wait on.
func writer(t testing.TB, cfg Config) (*store.Store, *Medium) {
	t.Helper()
	m := newMedium(t, cfg)
	s, err := store.Open(testCtx(t, 10*time.Second), m, cfg.KeySource())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, m
}

func getValue(t testing.TB, b backend.Backend, name string) (string, error) {
	t.Helper()
	sec, err := b.Get(testCtx(t, 5*time.Second), backend.Ref{Name: name})
	return string(sec.Value), err
}

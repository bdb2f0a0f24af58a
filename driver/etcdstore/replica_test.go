package etcdstore

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

// TestReplicaCoherence: once a put or rm has waited for the published
// revisions (what swarmkeep put does), the next Get on every plugin answers
// the new state, with no TTL to wait out. Before the replica, the etcd
// backend sat behind a 30 s TTL cache and answered the old value.
func TestReplicaCoherence(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	initStore(t, cfg)
	w, wm := writer(t, cfg)
	mustPut(t, w, "app/db", "one")
	a := openBackendT(t, pluginSettings(t, cfg, "manager-a"))
	b := openBackendT(t, pluginSettings(t, cfg, "manager-b"))
	for _, p := range []backend.Backend{a, b} {
		if v, err := getValue(t, p, "app/db"); err != nil || v != "one" {
			t.Fatalf("before: %q, %v", v, err)
		}
	}
	for i, want := range []string{"two", "three", "four"} {
		mustPut(t, w, "app/db", want)
		n, lag, err := wm.WaitApplied(testCtx(t, 5*time.Second))
		if err != nil || len(lag) > 0 || n != 2 {
			t.Fatalf("put %d: %d confirmed, lagging %v, %v; want both plugins", i, n, lag, err)
		}
		for _, p := range []backend.Backend{a, b} {
			if v, err := getValue(t, p, "app/db"); err != nil || v != want {
				t.Fatalf("after put %d: %q, %v; want %q", i, v, err, want)
			}
		}
	}
	if err := w.Remove(testCtx(t, 5*time.Second), "app/db", 0); err != nil {
		t.Fatal(err)
	}
	if _, lag, err := wm.WaitApplied(testCtx(t, 5*time.Second)); err != nil || len(lag) > 0 {
		t.Fatalf("rm: lagging %v, %v", lag, err)
	}
	for _, p := range []backend.Backend{a, b} {
		if _, err := getValue(t, p, "app/db"); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("after rm: %v, want not found", err)
		}
	}
	// A name written a moment ago, not waited for, is read from etcd
	// when the copy lacks it.
	replicaOf(t, a).mu.Lock() // hold the watch back: the copy cannot have it
	mustPut(t, w, "fresh", "new")
	_, _, err := replicaOf(t, a).m.Read(testCtx(t, time.Second), "r/fresh")
	replicaOf(t, a).mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := getValue(t, a, "fresh"); err != nil || v != "new" {
		t.Fatalf("fresh name: %q, %v", v, err)
	}
	// A plugin that closes withdraws its revision: writers stop waiting.
	b.Close()
	mustPut(t, w, "after", "x")
	if n, lag, err := wm.WaitApplied(testCtx(t, 5*time.Second)); err != nil || len(lag) > 0 || n != 1 {
		t.Fatalf("after close: %d confirmed, lagging %v, %v; want 1", n, lag, err)
	}
}

// TestReplicaLagNamed: a plugin whose copy does not follow is named when
// the wait ends.
func TestReplicaLagNamed(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	initStore(t, cfg)
	w, wm := writer(t, cfg)
	mustPut(t, w, "k", "1")
	gate := make(chan struct{})
	set := pluginSettings(t, cfg, "slow-manager")
	pc, _ := ParseSettings(set)
	m, err := NewMedium(testCtx(t, 5*time.Second), pc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReplica(testCtx(t, 5*time.Second), m, pc.KeySource(), ReplicaOptions{ID: "slow-manager", gate: gate})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { close(gate); r.Close() }()
	waitFor(t, "the first publication", func() bool {
		n, _, _ := wm.WaitApplied(testCtx(t, time.Second))
		return n == 1 || wm.LastWrite() == 0
	})
	mustPut(t, w, "k", "2")
	n, lag, err := wm.WaitApplied(testCtx(t, 300*time.Millisecond))
	if err != nil || n != 0 || len(lag) != 1 || !strings.HasPrefix(lag[0], "slow-manager (at revision ") {
		t.Fatalf("confirmed %d, lagging %v, %v; want slow-manager named", n, lag, err)
	}
}

// TestReplicaOutageAndRestart: with etcd killed, both plugins answer from
// their copies, marked stale; a plugin restarted while etcd is down answers
// from its saved copy; once etcd is back the copies are listed again and
// follow new writes.
func TestReplicaOutageAndRestart(t *testing.T) {
	c, cfg, w, wm := ownCluster(t)
	mustPut(t, w, "other", "o1")
	setA, setB := pluginSettings(t, cfg, "a"), pluginSettings(t, cfg, "b")
	a := openBackendT(t, setA)
	b := openBackendT(t, setB)
	mustPut(t, w, "app/db", "v2")
	waitApplied(t, wm)
	for _, p := range []backend.Backend{a, b} {
		r := replicaOf(t, p)
		waitFor(t, "the copy saved", func() bool { return savedHas(t, r, wm.LastWrite()) })
	}
	if err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []backend.Backend{a, b} {
		waitStale(t, p)
		sec, err := p.Get(testCtx(t, time.Second), backend.Ref{Name: "app/db"})
		if err != nil || string(sec.Value) != "v2" || !sec.Stale {
			t.Fatalf("etcd down: %q stale %v, %v", sec.Value, sec.Stale, err)
		}
	}
	// Restart b with etcd still down: its saved copy answers.
	b.Close()
	b2, err := backend.Open(testCtx(t, 5*time.Second), "etcd", setB)
	if err != nil {
		t.Fatalf("open with etcd down and a saved copy: %v", err)
	}
	defer b2.Close()
	for name, want := range map[string]string{"app/db": "v2", "other": "o1"} {
		sec, err := b2.Get(testCtx(t, time.Second), backend.Ref{Name: name})
		if err != nil || string(sec.Value) != want || !sec.Stale {
			t.Fatalf("restarted: %s = %q stale %v, %v", name, sec.Value, sec.Stale, err)
		}
	}
	// max_stale bounds what a stale copy answers.
	setOld := pluginSettings(t, cfg, "c")
	setOld[SettingReplicaDir] = setB[SettingReplicaDir]
	setOld[SettingMaxStale] = "1ns"
	old, err := backend.Open(testCtx(t, 5*time.Second), "etcd", setOld)
	if err != nil {
		t.Fatal(err)
	}
	_, err = old.Get(testCtx(t, time.Second), backend.Ref{Name: "app/db"})
	old.Close()
	wantErr(t, err, backend.ErrUnavailable)

	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []backend.Backend{a, b2} {
		r := replicaOf(t, p)
		waitFor(t, "the copy confirmed again", func() bool { stale, _, _ := r.Staleness(); return !stale })
	}
	_, wm2 := writer(t, cfg) // the old writer's connection may still be backing off
	w2, _ := store.Open(testCtx(t, 5*time.Second), wm2, cfg.KeySource())
	mustPut(t, w2, "app/db", "v3")
	if n, lag, err := wm2.WaitApplied(testCtx(t, 5*time.Second)); err != nil || len(lag) > 0 || n != 2 {
		t.Fatalf("after etcd came back: %d confirmed, lagging %v, %v", n, lag, err)
	}
	for _, p := range []backend.Backend{a, b2} {
		if v, err := getValue(t, p, "app/db"); err != nil || v != "v3" {
			t.Fatalf("after etcd came back: %q, %v", v, err)
		}
	}
}

// savedHas reports whether r's saved file loads and holds every change up
// to revision rev (the values are sealed: the revision says it).
func savedHas(t testing.TB, r *Replica, rev int64) bool {
	b, err := os.ReadFile(filepath.Join(r.dir, replicaFile))
	if err != nil {
		return false
	}
	_, at, _, err := r.decode(b)
	return err == nil && at >= rev
}

// TestReplicaCompaction: a watch that falls behind a compaction lists the
// store again, and the copy catches up.
func TestReplicaCompaction(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	initStore(t, cfg)
	w, _ := writer(t, cfg)
	mustPut(t, w, "k", "1")
	gate := make(chan struct{})
	pc := cfg
	m := newMedium(t, pc)
	r, err := NewReplica(testCtx(t, 5*time.Second), m, pc.KeySource(), ReplicaOptions{gate: gate})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := store.Open(testCtx(t, 5*time.Second), r, pc.KeySource())
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, w, "k", "2")
	mustPut(t, w, "k", "3")
	cli := c.Client(t)
	resp, err := cli.Get(testCtx(t, 5*time.Second), "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(testCtx(t, 5*time.Second), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	lists := r.lists.Load()
	close(gate)
	waitFor(t, "a list after the compaction", func() bool { return r.lists.Load() > lists })
	waitFor(t, "the copy current", func() bool { stale, _, _ := r.Staleness(); return !stale })
	if got := mustGet(t, s, "k", 0); got != "3" {
		t.Fatalf("after compaction: %q, want 3", got)
	}
}

// TestReplicaTampered: a saved copy that was altered, or that another key
// made, is refused whole; with etcd down the plugin then cannot open, and
// says why.
func TestReplicaTampered(t *testing.T) {
	c, cfg, _, wm := ownCluster(t)
	set := pluginSettings(t, cfg, "a")
	b := openBackendT(t, set)
	r := replicaOf(t, b)
	waitFor(t, "the copy saved", func() bool { return savedHas(t, r, wm.LastWrite()) })
	b.Close()
	dir := set[SettingReplicaDir]
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("replica folder mode %v, %v; want 0700", st.Mode(), err)
	}
	f := filepath.Join(dir, replicaFile)
	if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("replica file mode %v, %v; want 0600", st.Mode(), err)
	}
	good, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	open := func() error {
		b, err := backend.Open(testCtx(t, 3*time.Second), "etcd", set)
		if err == nil {
			b.Close()
		}
		return err
	}
	if err := open(); err != nil {
		t.Fatalf("untouched copy: %v", err)
	}
	for _, i := range []int{len(good) / 2, len(good) - 40, 30} {
		bad := append([]byte(nil), good...)
		bad[i] ^= 1
		if err := os.WriteFile(f, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		err := open()
		t.Log(err)
		wantErr(t, err, backend.ErrCorrupt)
	}
	// Another key does not load the copy either.
	if err := os.WriteFile(f, good, 0o600); err != nil {
		t.Fatal(err)
	}
	other := maps(set)
	other[SettingKeyFile] = newKeyFile(t)
	_, err = backend.Open(testCtx(t, 3*time.Second), "etcd", other)
	if !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("copy with another key: %v, want ErrWrongKey", err)
	}
}

func maps(s backend.Settings) backend.Settings {
	o := backend.Settings{}
	for k, v := range s {
		o[k] = v
	}
	return o
}

// TestReplicaRekey: records resealed by a rekey reach the copy, and the
// plugin opens them with the new data key.
func TestReplicaRekey(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	initStore(t, cfg)
	w, wm := writer(t, cfg)
	mustPut(t, w, "a", "1")
	mustPut(t, w, "b", "2")
	p := openBackendT(t, pluginSettings(t, cfg, "p"))
	if _, err := w.Rekey(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	mustPut(t, w, "a", "1b")
	waitApplied(t, wm)
	for name, want := range map[string]string{"a": "1b", "b": "2"} {
		if v, err := getValue(t, p, name); err != nil || v != want {
			t.Fatalf("after rekey: %s = %q, %v", name, v, err)
		}
	}
}

// TestReplicaRefresh: Refresh lists the store again at once.
func TestReplicaRefresh(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	initStore(t, cfg)
	p := openBackendT(t, pluginSettings(t, cfg, "p"))
	r := replicaOf(t, p)
	n := r.lists.Load()
	p.(interface{ Refresh(string) }).Refresh("")
	waitFor(t, "a list after refresh", func() bool { return r.lists.Load() > n })
}

// TestReplicaQuietStaysLive: with no writes at all, etcd's progress
// notifications keep confirming the copy: it is never marked stale nor
// listed again for nothing.
func TestReplicaQuietStaysLive(t *testing.T) {
	fastReplica(t)
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	initStore(t, cfg)
	p := openBackendT(t, pluginSettings(t, cfg, "p"))
	r := replicaOf(t, p)
	lists := r.lists.Load()
	deadline := time.Now().Add(5 * staleAfter)
	for time.Now().Before(deadline) {
		if stale, _, why := r.Staleness(); stale {
			t.Fatalf("a quiet copy was marked stale: %v", why)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := r.lists.Load(); n != lists {
		t.Fatalf("listed %d times more while quiet", n-lists)
	}
}

// TestReplicaStall: a member that hangs (answers nothing, refuses nothing)
// is noticed by the unanswered progress requests: the copy is marked stale
// and still answers at once; a name it lacks fails within its deadline.
func TestReplicaStall(t *testing.T) {
	fastReplica(t)
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	initStore(t, cfg)
	w, _ := writer(t, cfg)
	mustPut(t, w, "k", "v")
	px := newStallProxy(t, c.Endpoints()[0])
	via := cfg
	via.Endpoints = []string{"http://" + px.addr}
	p := openBackendT(t, pluginSettings(t, via, "p"))
	if v, err := getValue(t, p, "k"); err != nil || v != "v" {
		t.Fatalf("before the stall: %q, %v", v, err)
	}
	px.stall()
	waitStale(t, p)
	start := time.Now()
	sec, err := p.Get(testCtx(t, time.Second), backend.Ref{Name: "k"})
	if err != nil || string(sec.Value) != "v" || !sec.Stale || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("stalled: %q stale %v, %v after %v", sec.Value, sec.Stale, err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = p.Get(ctx, backend.Ref{Name: "absent"})
	if !errors.Is(err, backend.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("absent name while stalled: %v after %v", err, time.Since(start))
	}
}

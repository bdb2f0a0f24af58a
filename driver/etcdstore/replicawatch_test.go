package etcdstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// memoryValue is the plugin's from-memory answer for name: "" when there
// is none (the request would take the full path).
func memoryValue(t *testing.T, b backend.Backend, name string) string {
	t.Helper()
	mg, ok := b.(backend.MemoryGetter)
	if !ok {
		t.Fatalf("%T answers nothing from memory", b)
	}
	sec, ok := mg.GetFromMemory(backend.Ref{Name: name})
	if !ok {
		return ""
	}
	return string(sec.Value)
}

// TestReplicaMemoryAnswers: a warm read is answered from the store's cache
// with no look at the copy, yet never older than what the replica applied:
// each put another writer waited for is the next answer, a removed name
// has none, a new list drops everything, and a copy etcd no longer
// confirms answers nothing from memory (Get marks it stale).
func TestReplicaMemoryAnswers(t *testing.T) {
	c, cfg, w, wm := ownCluster(t)
	p := openBackendT(t, pluginSettings(t, cfg, "mem"))
	waitApplied(t, wm)
	if v, err := getValue(t, p, "app/db"); err != nil || v != "v1" {
		t.Fatalf("Get: %q, %v", v, err)
	}
	if v := memoryValue(t, p, "app/db"); v != "v1" {
		t.Fatalf("warm read from memory: %q, want v1", v)
	}
	for i := 2; i <= 20; i++ {
		want := fmt.Sprintf("v%d", i)
		mustPut(t, w, "app/db", want)
		waitApplied(t, wm)
		if v := memoryValue(t, p, "app/db"); v != "" && v != want {
			t.Fatalf("put %d: memory answered %q, want %q or none", i, v, want)
		}
		if v, err := getValue(t, p, "app/db"); err != nil || v != want {
			t.Fatalf("put %d: Get %q, %v", i, v, err)
		}
		if v := memoryValue(t, p, "app/db"); v != want {
			t.Fatalf("put %d: not cached again after Get: %q", i, v)
		}
	}

	if err := w.Remove(testCtx(t, 5*time.Second), "app/db", 0); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, wm)
	if v := memoryValue(t, p, "app/db"); v != "" {
		t.Fatalf("removed name answered from memory: %q", v)
	}
	if _, err := getValue(t, p, "app/db"); err == nil {
		t.Fatal("removed name still served")
	}

	mustPut(t, w, "app/db", "again")
	waitApplied(t, wm)
	if v, err := getValue(t, p, "app/db"); err != nil || v != "again" {
		t.Fatalf("Get after re-put: %q, %v", v, err)
	}
	r := replicaOf(t, p)
	lists := r.lists.Load()
	p.(*replicaBackend).Refresh("")
	waitFor(t, "a new list", func() bool { return r.lists.Load() > lists })
	if v := memoryValue(t, p, "app/db"); v != "" {
		t.Fatalf("after a new list the cache answered %q", v)
	}
	if v, err := getValue(t, p, "app/db"); err != nil || v != "again" {
		t.Fatalf("Get after the list: %q, %v", v, err)
	}

	if err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	waitStale(t, p)
	if v := memoryValue(t, p, "app/db"); v != "" {
		t.Fatalf("stale copy answered from memory: %q (unmarked)", v)
	}
	sec, err := p.Get(testCtx(t, time.Second), backend.Ref{Name: "app/db"})
	if err != nil || string(sec.Value) != "again" || !sec.Stale {
		t.Fatalf("stale Get: %q stale %v, %v", sec.Value, sec.Stale, err)
	}
}

// TestReplicaSyncWaitsForTheHandOver: a Sync that finds the changes already
// taken by another Sync returns only once that one dropped them, or a read
// between the two could answer from a record an acknowledged put replaced.
func TestReplicaSyncWaitsForTheHandOver(t *testing.T) {
	r := &Replica{}
	w, err := r.Watch()
	if err != nil {
		t.Fatal(err)
	}
	r.changes.note("r/app/db")
	inA, dropped := make(chan struct{}), make(chan time.Time, 1)
	go w.Sync(func(string) {
		close(inA)
		time.Sleep(100 * time.Millisecond) // a drop delayed (GC, a loaded machine)
		dropped <- time.Now()
	}, func() {})
	<-inA
	if err := w.Sync(func(string) { t.Error("the change was handed on twice") }, func() {}); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	select {
	case at := <-dropped:
		if returned.Before(at) {
			t.Fatalf("the second Sync returned %s before the first dropped the record", at.Sub(returned))
		}
	default:
		t.Fatal("the second Sync returned while the first was still dropping the record")
	}
}

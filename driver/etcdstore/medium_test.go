package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// TestMediumCAS walks one key through every compare-and-swap case.
func TestMediumCAS(t *testing.T) {
	c := sharedCluster(t)
	m := newMedium(t, testConfig(t, c))
	ctx := testCtx(t, 20*time.Second)
	const k = "r/cas"

	if _, err := m.Stat(ctx, k); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat absent: %v", err)
	}
	if _, _, err := m.Read(ctx, k); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Read absent: %v", err)
	}
	if err := m.Delete(ctx, k, ""); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Delete absent: %v", err)
	}
	r1, err := m.Write(ctx, k, []byte("one"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write(ctx, k, []byte("two"), ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("create over an existing key: %v", err)
	}
	if b, rev, err := m.Read(ctx, k); err != nil || string(b) != "one" || rev != r1 {
		t.Fatalf("Read = %q %q %v, want one %q", b, rev, err, r1)
	}
	if rev, err := m.Stat(ctx, k); err != nil || rev != r1 {
		t.Fatalf("Stat = %q %v, want %q", rev, err, r1)
	}
	r2, err := m.Write(ctx, k, []byte("two"), r1)
	if err != nil || r2 == r1 {
		t.Fatalf("Write at r1 = %q %v", r2, err)
	}
	if _, err := m.Write(ctx, k, []byte("stale"), r1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Write at a stale revision: %v", err)
	}
	if _, err := m.Write(ctx, k, []byte("x"), "not-a-revision"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Write at a foreign revision: %v", err)
	}
	if err := m.Delete(ctx, k, r1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Delete at a stale revision: %v", err)
	}
	if err := m.Delete(ctx, k, ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Delete as if absent: %v", err)
	}
	if err := m.Delete(ctx, k, r2); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, k, r2); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Delete twice: %v", err)
	}
	if _, err := m.Write(ctx, k, []byte("x"), r2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Write at the revision of a deleted key: %v", err)
	}
	r3, err := m.Write(ctx, k, []byte("three"), "")
	if err != nil {
		t.Fatal(err)
	}
	if r3 == r1 || r3 == r2 {
		t.Fatalf("revision %q reused after delete", r3)
	}
	for _, bad := range []string{"", strings.Repeat("k", maxKeyLen+1), ".lock/x", ".lockout"} {
		if _, err := m.Write(ctx, bad, []byte("x"), ""); !errors.Is(err, backend.ErrInvalidRef) {
			t.Fatalf("Write(%.20q): %v", bad, err)
		}
	}
}

// TestMediumConcurrentCAS: goroutines on two media increment a counter
// with read-modify-write; compare-and-swap must not lose one increment.
func TestMediumConcurrentCAS(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	media := []*Medium{newMedium(t, cfg), newMedium(t, cfg)}
	ctx := testCtx(t, 30*time.Second)
	const per, goroutines = 10, 3
	var wg sync.WaitGroup
	for _, m := range media {
		for range goroutines {
			wg.Go(func() {
				for range per {
					for {
						b, rev, err := m.Read(ctx, "r/counter")
						if errors.Is(err, backend.ErrNotFound) {
							b, rev, err = []byte("0"), "", nil
						}
						if err != nil {
							t.Error(err)
							return
						}
						n, _ := strconv.Atoi(string(b))
						_, err = m.Write(ctx, "r/counter", []byte(strconv.Itoa(n+1)), rev)
						if err == nil {
							break
						}
						if !errors.Is(err, store.ErrConflict) {
							t.Error(err)
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	b, _, err := media[0].Read(ctx, "r/counter")
	if err != nil || string(b) != strconv.Itoa(len(media)*goroutines*per) {
		t.Fatalf("counter = %q %v, want %d", b, err, len(media)*goroutines*per)
	}
}

// TestMediumList: listing pages through more keys than fit in a page,
// returns each key once, keeps to the prefix and hides the lock.
func TestMediumList(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	m := newMedium(t, cfg)
	ctx := testCtx(t, 30*time.Second)
	// Write directly, many keys per transaction: this test is about List.
	admin := c.Client(t)
	const n = 2*defaultPage + 37
	var want []string
	for i := 0; i < n; i += 100 {
		var ops []clientv3.Op
		for j := i; j < min(i+100, n); j++ {
			k := fmt.Sprintf("r/%05d", j)
			want = append(want, k)
			ops = append(ops, clientv3.OpPut(cfg.Prefix+k, "x"))
		}
		if _, err := admin.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"keyring", "r", "s/1", ".lock/123"} {
		if _, err := admin.Put(ctx, cfg.Prefix+k, "x"); err != nil {
			t.Fatal(err)
		}
	}
	// A key just outside the prefix must not show.
	if _, err := admin.Put(ctx, strings.TrimSuffix(cfg.Prefix, "/")+"0r/x", "x"); err != nil {
		t.Fatal(err)
	}
	for _, page := range []int64{defaultPage, 7} {
		m.pageSize = page
		var got []string
		if err := m.List(ctx, "r/", func(k string) error { got = append(got, k); return nil }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("page %d: listed %d keys, want %d", page, len(got), len(want))
		}
	}
	var all []string
	if err := m.List(ctx, "", func(k string) error { all = append(all, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) != n+3 || slices.Contains(all, ".lock/123") {
		t.Fatalf("List(\"\") gave %d keys (lock key listed: %v), want %d", len(all), slices.Contains(all, ".lock/123"), n+3)
	}
	stop := errors.New("stop")
	calls := 0
	err := m.List(ctx, "r/", func(string) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("List with a failing callback: %v after %d calls", err, calls)
	}
}

// TestMediumUnreachable: nothing listens on the endpoint. Every call
// must fail with backend.ErrUnavailable within its deadline, saying why.
func TestMediumUnreachable(t *testing.T) {
	m := newMedium(t, Config{Endpoints: []string{"http://127.0.0.1:1"}, Prefix: "/x/", DialTimeout: time.Second})
	calls := map[string]func(context.Context) error{
		"stat":  func(ctx context.Context) error { _, err := m.Stat(ctx, "keyring"); return err },
		"read":  func(ctx context.Context) error { _, _, err := m.Read(ctx, "keyring"); return err },
		"write": func(ctx context.Context) error { _, err := m.Write(ctx, "keyring", []byte("x"), ""); return err },
		"list":  func(ctx context.Context) error { return m.List(ctx, "", func(string) error { return nil }) },
		"lock": func(ctx context.Context) error {
			_, unlock, err := m.Lock(ctx)
			if err == nil {
				unlock()
			}
			return err
		},
	}
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		cancel()
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("%s took %v with a 400ms deadline", name, el)
		}
		if !errors.Is(err, backend.ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("%s: %v, want ErrUnavailable naming the cause", name, err)
		}
	}
}

// TestLockExcludes: two media (two managers) on one prefix. While one
// holds the lock the other cannot take it, and gives up at its deadline;
// once released, the other gets it at once.
func TestLockExcludes(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	a, b := newMedium(t, cfg), newMedium(t, cfg)
	ctx := testCtx(t, 20*time.Second)
	_, unlockA, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short := testCtx(t, 300*time.Millisecond)
	start := time.Now()
	if _, _, err := b.Lock(short); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("second manager took a held lock: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Lock took %v past a 300ms deadline", el)
	}
	unlockA()
	unlockA() // safe to call twice
	lctx, unlockB, err := b.Lock(ctx)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	if _, err := b.Write(lctx, "r/x", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	unlockB()
	// The same process again, on the same session.
	_, unlockB, err = b.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unlockB()
}

// TestLockFencing: a writer whose lease was lost (revoked here; expired
// in real life, after a long pause) must not write with the context of
// the lock it no longer holds, and its next Lock must work again.
func TestLockFencing(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	m := newMedium(t, cfg)
	ctx := testCtx(t, 20*time.Second)
	lctx, unlock, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(t).Revoke(ctx, m.sess.Lease()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write(lctx, "r/fenced", []byte("x"), ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("write under a lost lock: %v, want ErrConflict", err)
	}
	if _, err := m.Stat(ctx, "r/fenced"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("the fenced write landed: %v", err)
	}
	unlock()
	lctx, unlock, err = m.Lock(ctx)
	if err != nil {
		t.Fatalf("lock after the lease was lost: %v", err)
	}
	defer unlock()
	if _, err := m.Write(lctx, "r/fenced", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
}

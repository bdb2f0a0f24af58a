package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/driver/store/mediumtest"
)

// Compare-and-swap, concurrent read-modify-write, whole blobs, listing by
// prefix and the lock across handles are in the medium suite
// (TestMediumConformance); these tests are about etcd.

// TestMediumConformance: the etcd medium passes the suite every medium
// does. Each subtest gets a prefix of its own on the shared cluster; each
// handle is another manager.
func TestMediumConformance(t *testing.T) {
	c := sharedCluster(t)
	mediumtest.Run(t, mediumtest.Harness{New: func(t *testing.T) func(*testing.T) store.Medium {
		cfg := testConfig(t, c)
		return func(t *testing.T) store.Medium { return newMedium(t, cfg) }
	}})
}

// TestMediumInvalidKeys: keys etcd or the lock's key space cannot take
// are refused as invalid, not written.
func TestMediumInvalidKeys(t *testing.T) {
	c := sharedCluster(t)
	m := newMedium(t, testConfig(t, c))
	ctx := testCtx(t, 20*time.Second)
	for _, bad := range []string{"", strings.Repeat("k", maxKeyLen+1), ".lock/x", ".lockout"} {
		if _, err := m.Write(ctx, bad, []byte("x"), ""); !errors.Is(err, backend.ErrInvalidRef) {
			t.Fatalf("Write(%.20q): %v", bad, err)
		}
	}
}

// TestMediumList: listing pages through more keys than fit in a page,
// returns each key once, keeps to the etcd prefix and hides the lock.
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
	// A failing callback stops the listing on a later page too.
	m.pageSize = 7
	stop := errors.New("stop")
	calls := 0
	err := m.List(ctx, "r/", func(string) error {
		if calls++; calls == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 10 {
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

package etcdstore

import (
	"bytes"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// TestStoreTakesWriterLock: the store must hold the medium's writer lock
// around its writes, or rekeys are unsafe against other managers.
func TestStoreTakesWriterLock(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	initStore(t, cfg)
	if !storeLocks(t, cfg) {
		t.Fatal(lockHookMissing)
	}
}

// TestStoreRoundTrip runs the store's whole life on etcd: init, put,
// versions, remove, rekey, verify, a second handle, a wrong key; and
// checks that etcd never held a plaintext.
func TestStoreRoundTrip(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	ctx := testCtx(t, 30*time.Second)
	s := initStore(t, cfg)
	if _, err := store.Init(ctx, newMedium(t, cfg), cfg.KeySource(), store.InitOptions{}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Init: %v", err)
	}
	values := map[string][]string{
		"db/password": {"plaintext-one", "plaintext-two", "plaintext-three"},
		"api/token":   {"plaintext-token"},
	}
	for name, vs := range values {
		for i, v := range vs {
			if n := mustPut(t, s, name, v); n != uint64(i+1) {
				t.Fatalf("%s: version %d, want %d", name, n, i+1)
			}
		}
	}
	if got := mustGet(t, s, "db/password", 0); got != "plaintext-three" {
		t.Fatalf("latest = %q", got)
	}
	if got := mustGet(t, s, "db/password", 2); got != "plaintext-two" {
		t.Fatalf("version 2 = %q", got)
	}
	if err := s.Remove(ctx, "db/password", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "db/password", 2); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("removed version: %v", err)
	}
	if err := s.Remove(ctx, "api/token", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "api/token", 0); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("removed name: %v", err)
	}
	if n := mustPut(t, s, "api/token", "plaintext-token-2"); n != 2 {
		t.Fatalf("put after remove: version %d, want 2 (numbers are never reused)", n)
	}
	var names []string
	if err := s.List(ctx, func(e store.Entry) error { names = append(names, e.Name); return nil }); err != nil || len(names) != 2 {
		t.Fatalf("List = %v %v", names, err)
	}

	other := handle(t, cfg) // another manager, reading what this one wrote
	if got := mustGet(t, other, "db/password", 1); got != "plaintext-one" {
		t.Fatalf("other handle: %q", got)
	}
	st, err := s.Rekey(ctx)
	if err != nil || st.Records != 2 || st.OldKeys != 1 {
		t.Fatalf("Rekey = %+v %v", st, err)
	}
	if got := mustGet(t, other, "db/password", 3); got != "plaintext-three" {
		t.Fatalf("other handle after rekey: %q", got)
	}
	ok, bad, err := handle(t, cfg).Verify(ctx, nil)
	if err != nil || ok != 2 || bad != 0 {
		t.Fatalf("Verify = %d ok, %d bad, %v", ok, bad, err)
	}
	wrong := cfg
	wrong.KeyFile = newKeyFile(t)
	if _, err := store.Open(ctx, newMedium(t, wrong), wrong.KeySource()); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("open with another key: %v", err)
	}

	resp, err := c.Client(t).Get(ctx, cfg.Prefix, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) < 3 {
		t.Fatalf("raw listing: %d keys, %v", len(resp.Kvs), err)
	}
	for _, kv := range resp.Kvs {
		if bytes.Contains(kv.Value, []byte("plaintext")) {
			t.Fatalf("etcd holds a plaintext under %s", kv.Key)
		}
	}
}

// TestStoreTooLarge: a record over etcd's request limit is refused with
// ErrInvalidRef, and the record stays as it was.
func TestStoreTooLarge(t *testing.T) {
	c := sharedCluster(t)
	s := initStore(t, testConfig(t, c))
	big := bytes.Repeat([]byte("v"), 1<<20)
	mustPut(t, s, "big", string(big))
	_, err := s.Put(testCtx(t, 20*time.Second), "big", big)
	wantErr(t, err, backend.ErrInvalidRef)
	if got := mustGet(t, s, "big", 0); len(got) != len(big) {
		t.Fatalf("record changed: %d bytes", len(got))
	}
}

package configstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/driver/store/mediumtest"
)

// TestConformanceOnFake: the suite on the in-memory API (the same suite
// runs against three real managers in test/e2e/multi).
func TestConformanceOnFake(t *testing.T) {
	mediumtest.Run(t, mediumtest.Harness{New: func(t *testing.T) func(*testing.T) store.Medium {
		f := newFakeSwarm()
		return func(t *testing.T) store.Medium {
			m, err := New(f, "t", nil)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}})
}

// TestChunksAndGarbage: a blob over one config's limit spans chunks; a
// rewrite and a delete remove the chunks they replace, so a store holds
// one head and its chunks per name; a corrupt chunk is reported, not served.
func TestChunksAndGarbage(t *testing.T) {
	ctx := context.Background()
	f := newFakeSwarm()
	m, _ := New(f, "t", nil)
	big := bytes.Repeat([]byte{7}, 2*chunkSize+5)
	rev, err := m.Write(ctx, "r/big", big, "")
	if err != nil {
		t.Fatal(err)
	}
	if n := f.count(kindData); n != 3 {
		t.Fatalf("%d data configs for %d bytes, want 3", n, len(big))
	}
	rev, err = m.Write(ctx, "r/big", []byte("small"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.count(kindData); n != 1 {
		t.Fatalf("%d data configs after a rewrite, want 1", n)
	}
	if err := m.Delete(ctx, "r/big", rev); err != nil {
		t.Fatal(err)
	}
	if d, h := f.count(kindData), f.count(kindHead); d != 0 || h != 1 {
		t.Fatalf("after delete: %d data, %d heads; want 0 and the tombstone", d, h)
	}
	if _, err := m.Write(ctx, "r/x", bytes.Repeat([]byte{1}, maxBlob+1), ""); err == nil {
		t.Fatal("a blob over the limit was stored")
	}
	if _, err := m.Write(ctx, "r/c", []byte("value-sealed"), ""); err != nil {
		t.Fatal(err)
	}
	h, _ := m.head(ctx, "r/c")
	f.mu.Lock()
	f.byID[chunksOf(h)[0]].Spec.Data = []byte("value-SEALED")
	f.mu.Unlock()
	if _, _, err := m.Read(ctx, "r/c"); !errors.Is(err, backend.ErrCorrupt) {
		t.Fatalf("tampered chunk: %v, want ErrCorrupt", err)
	}
}

// TestLockExpiresWhenHolderDies: a lock whose holder stopped extending it
// is taken over after its expiry, never before.
func TestLockExpiresWhenHolderDies(t *testing.T) {
	defer func(d time.Duration) { lockTTL = d }(lockTTL)
	lockTTL = 2 * time.Second // expiry has a 1 s resolution
	f := newFakeSwarm()
	a, _ := New(f, "t", nil)
	b, _ := New(f, "t", nil)
	ctx := context.Background()
	// a takes the lock and "dies": its extender stops with its context.
	actx, cancel := context.WithCancel(ctx)
	if _, _, err := a.Lock(actx); err != nil {
		t.Fatal(err)
	}
	cancel()
	short, c2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer c2()
	if _, _, err := b.Lock(short); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("lock taken before expiry: %v", err)
	}
	long, c3 := context.WithTimeout(ctx, 10*time.Second)
	defer c3()
	_, unlock, err := b.Lock(long)
	if err != nil {
		t.Fatalf("expired lock not taken over: %v", err)
	}
	unlock()
}

// TestMirror: the mirror copies every record and the keyring into the
// folder, follows writes and deletes, publishes the index it reached, and
// never wipes a non-empty folder for a store the swarm does not hold.
func TestMirror(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newFakeSwarm()
	dir := filepath.Join(t.TempDir(), "store")
	local, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if _, err := local.Write(ctx, "keyring", []byte("an old file store"), ""); err != nil {
		t.Fatal(err)
	}
	var published []uint64
	// Adopt: the folder's old store is replaced on purpose here (without
	// it the mirror keeps it: TestMirrorKeepsFileStore).
	mr := &Mirror{API: f, Prefix: "t", Dir: dir, Adopt: true, Publish: func(_ context.Context, i uint64) error { published = append(published, i); return nil }}
	if err := mr.Sync(ctx, local); !errors.Is(err, ErrNoStore) {
		t.Fatalf("mirror of a swarm without a store over a folder with one: %v, want ErrNoStore", err)
	}
	if b, _, _ := local.Read(ctx, "keyring"); string(b) != "an old file store" {
		t.Fatalf("folder changed: %q", b)
	}
	m, _ := New(f, "t", nil)
	if _, err := m.Write(ctx, "keyring", []byte("ring"), ""); err != nil {
		t.Fatal(err)
	}
	r1, _ := m.Write(ctx, "r/a", []byte("A1"), "")
	if _, err := m.Write(ctx, "r/b", []byte("B1"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Write(ctx, "r/stray", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	if err := mr.Sync(ctx, local); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"keyring": "ring", "r/a": "A1", "r/b": "B1"}
	check := func() {
		t.Helper()
		got := map[string]string{}
		local.List(ctx, "", func(k string) error {
			b, _, _ := local.Read(ctx, k)
			got[k] = string(b)
			return nil
		})
		if len(got) != len(want) {
			t.Fatalf("folder = %q, want %q", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("folder = %q, want %q", got, want)
			}
		}
	}
	check()
	if published[len(published)-1] != m.LastWrite() {
		t.Fatalf("published %d, last write %d", published[len(published)-1], m.LastWrite())
	}
	// Run follows events from here.
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- mr.Run(rctx) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if _, err := m.Write(ctx, "r/a", []byte("A2"), r1); err != nil {
		t.Fatal(err)
	}
	rb, _ := m.Stat(ctx, "r/b")
	if err := m.Delete(ctx, "r/b", rb); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"keyring": "ring", "r/a": "A2"}
	for {
		b, _, err := local.Read(ctx, "r/a")
		_, _, errB := local.Read(ctx, "r/b")
		if err == nil && string(b) == "A2" && errors.Is(errB, backend.ErrNotFound) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("mirror did not follow the write and the delete")
		}
		time.Sleep(5 * time.Millisecond)
	}
	check()
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}

// TestMirrorCatchUp: a folder far behind (a new or returning manager) is
// filled from one listing of the data configs, not one inspect per chunk.
func TestMirrorCatchUp(t *testing.T) {
	ctx := context.Background()
	f := newFakeSwarm()
	m, _ := New(f, "t", nil)
	if _, err := m.Write(ctx, "keyring", []byte("ring"), ""); err != nil {
		t.Fatal(err)
	}
	const n = 3 * bulkFetch
	for i := range n {
		if _, err := m.Write(ctx, fmt.Sprintf("r/n%d", i), []byte(fmt.Sprint("v", i)), ""); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "store")
	local, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	before := f.inspects
	mr := &Mirror{API: f, Prefix: "t", Dir: dir}
	if err := mr.Sync(ctx, local); err != nil {
		t.Fatal(err)
	}
	// One inspect: the keyring's chunk, read first to check the folder.
	if got := f.inspects - before; got > 1 {
		t.Fatalf("%d inspects for a catch-up of %d names, want 1 (the keyring)", got, n+1)
	}
	for i := range n {
		if b, _, err := local.Read(ctx, fmt.Sprintf("r/n%d", i)); err != nil || string(b) != fmt.Sprint("v", i) {
			t.Fatalf("r/n%d = %q %v", i, b, err)
		}
	}
}

// TestMirrorIdleWithoutStore: on a manager that keeps a file store and runs
// the agent for other loops, the mirror neither fails nor touches the
// folder, before a replicated store appears or after: it says why once.
func TestMirrorIdleWithoutStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newFakeSwarm()
	dir := filepath.Join(t.TempDir(), "store")
	local, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if _, err := local.Write(ctx, "keyring", []byte("file store"), ""); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	refused := make(chan error, 10)
	next := func() error {
		select {
		case err := <-refused:
			return err
		case <-ctx.Done():
			t.Fatal("the mirror did not say why it left the folder alone")
			return nil
		}
	}
	mr := &Mirror{API: f, Prefix: "t", Dir: dir, Refused: func(err error) error { refused <- err; return nil }}
	go func() { ran <- mr.Run(rctx) }()
	if err := next(); !errors.Is(err, ErrNoStore) {
		t.Fatalf("refused with %v, want ErrNoStore", err)
	}
	m, _ := New(f, "t", nil)
	if _, err := m.Write(ctx, "keyring", []byte("replicated"), ""); err != nil {
		t.Fatal(err)
	}
	if err := next(); !errors.Is(err, ErrForeignStore) {
		t.Fatalf("refused with %v, want ErrForeignStore", err)
	}
	if _, err := m.Write(ctx, "r/a", []byte("A"), ""); err != nil {
		t.Fatal(err)
	}
	for len(f.events) > 0 && ctx.Err() == nil { // the write's event taken
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case err := <-refused:
		t.Fatalf("the same refusal told twice: %v", err)
	default:
	}
	if b, _, _ := local.Read(ctx, "keyring"); string(b) != "file store" {
		t.Fatalf("folder touched: %q", b)
	}
	if _, _, err := local.Read(ctx, "r/a"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("record mirrored into a file store: %v", err)
	}
}

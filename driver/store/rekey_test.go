package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// keyIDs returns the data key IDs of the keyring on disk and the ID each
// record is sealed with, as a fresh process would see them.
func keyIDs(t *testing.T, ts testStore) (ring []uint32, records map[string]uint32) {
	t.Helper()
	s := ts.handle(t)
	defer s.Close()
	for id := range s.ringNow().keys {
		ring = append(ring, id)
	}
	records = map[string]uint32{}
	err := s.eachRecord(context.Background(), func(name string, rec *record, err error) error {
		if err != nil {
			return err
		}
		records[name] = rec.key.id
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ring, records
}

func checkAllUnder(t *testing.T, ts testStore, n int) {
	t.Helper()
	ring, recs := keyIDs(t, ts)
	if len(ring) != 1 {
		t.Fatalf("keyring holds keys %v after rekey", ring)
	}
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	for name, id := range recs {
		if id != ring[0] {
			t.Fatalf("record %q under key %d, keyring has %d", name, id, ring[0])
		}
	}
}

// TestRekey_ConcurrentReaders rekeys while goroutines on this handle and
// on a second one (the plugin) hammer Get: not a single read may fail.
func TestRekey_ConcurrentReaders(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	const n = 40
	want := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("svc/%02d", i)
		want[name] = fmt.Sprintf("value-%d", i)
		mustPut(t, ts.Store, name, want[name])
	}
	plugin := ts.handle(t)
	names := make([]string, 0, n)
	for name := range want {
		names = append(names, name)
	}

	var stop atomic.Bool
	var reads, failures atomic.Int64
	var wg sync.WaitGroup
	for g := range 4 {
		s := ts.Store
		if g%2 == 1 {
			s = plugin
		}
		wg.Go(func() {
			for !stop.Load() {
				name := names[rand.IntN(len(names))]
				sec, err := s.Get(ctx, name, 0)
				reads.Add(1)
				if err != nil || string(sec.Value) != want[name] {
					failures.Add(1)
					t.Errorf("Get(%q) during rekey: %v", name, err)
					return
				}
			}
		})
	}
	for range 3 {
		st, err := ts.Rekey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Records != n || st.OldKeys != 1 {
			t.Errorf("Rekey stats %+v, want %d records, 1 old key", st, n)
		}
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 || reads.Load() == 0 {
		t.Fatalf("%d of %d reads failed", failures.Load(), reads.Load())
	}
	checkAllUnder(t, ts, n)

	// The plugin handle, which never wrote, still reads and sees new values.
	for name, v := range want {
		if got := mustGet(t, plugin, name, 0); got != v {
			t.Fatalf("plugin reads %q for %q", got, name)
		}
	}
	mustPut(t, ts.Store, "svc/00", "after")
	if got := mustGet(t, plugin, "svc/00", 0); got != "after" {
		t.Fatalf("plugin reads %q after rekey and Put", got)
	}
}

// TestRekey_ConcurrentWriters puts from a second handle while the first
// rekeys: every record must end up under the new key, and readable.
func TestRekey_ConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{MaxVersions: 100})
	for i := range 20 {
		mustPut(t, ts.Store, fmt.Sprintf("w/%02d", i), "initial")
	}
	writer := ts.handle(t)
	var wg sync.WaitGroup
	var stop atomic.Bool
	var puts atomic.Int64
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			if _, err := writer.Put(ctx, fmt.Sprintf("w/%02d", i%25), []byte("during")); err != nil {
				t.Errorf("Put during rekey: %v", err)
				return
			}
			puts.Add(1)
		}
	})
	// At least 3 rekeys, and until the writer has touched every name.
	for i := 0; i < 3 || puts.Load() < 50; i++ {
		if _, err := ts.Rekey(ctx); err != nil {
			stop.Store(true)
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	checkAllUnder(t, ts, 25)
	if ok, bad, err := ts.handle(t).Verify(ctx, nil); bad != 0 || ok != 25 || err != nil {
		t.Fatalf("Verify = %d ok, %d bad, %v", ok, bad, err)
	}
}

// TestRekey_Resume interrupts a rekey after step 1 and half of step 2,
// as a crash would, and finishes it from another handle.
func TestRekey_Resume(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	for i := range 10 {
		mustPut(t, ts.Store, fmt.Sprintf("r/%d", i), fmt.Sprint("v", i))
	}
	target, err := ts.rekeyStart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := ts.rekeyRecord(ctx, fmt.Sprintf("r/%d", i), target); err != nil {
			t.Fatal(err)
		}
	}
	// Half-way: both keys in the keyring, everything readable.
	if ring, _ := keyIDs(t, ts); len(ring) != 2 {
		t.Fatalf("keyring mid-rekey holds %v", ring)
	}
	other := ts.handle(t)
	for i := range 10 {
		if got := mustGet(t, other, fmt.Sprintf("r/%d", i), 0); got != fmt.Sprint("v", i) {
			t.Fatalf("got %q", got)
		}
	}
	// A Put mid-rekey seals with the new key.
	mustPut(t, other, "r/9", "v9b")
	st, err := other.Rekey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 4 || st.OldKeys != 1 {
		t.Fatalf("resumed rekey %+v, want 4 records (5 done, 1 rewritten by Put), 1 old key", st)
	}
	checkAllUnder(t, ts, 10)
	ring, _ := keyIDs(t, ts)
	if ring[0] != target {
		t.Fatalf("resume used key %d, want the interrupted rekey's %d", ring[0], target)
	}
	// The first handle, which started the rekey, is fine too.
	if got := mustGet(t, ts.Store, "r/9", 0); got != "v9b" {
		t.Fatalf("got %q", got)
	}
}

func TestChangeKEK(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, "x", "secret")
	plugin := ts.handle(t)
	pass := writePassphrase(t, "new passphrase")
	if err := ts.ChangeKEK(ctx, cheapPassphrase(pass)); err != nil {
		t.Fatal(err)
	}
	// Records are untouched; the plugin keeps serving with its keys.
	if got := mustGet(t, plugin, "x", 0); got != "secret" {
		t.Fatalf("got %q", got)
	}
	m, _ := OpenDir(ts.dir)
	if _, err := Open(ctx, m, KeyFile(ts.key)); err == nil {
		t.Fatal("old key file still opens the store")
	}
	m.Close()
	s := openStore(t, ts.dir, PassphraseFile(pass))
	if got := mustGet(t, s, "x", 0); got != "secret" {
		t.Fatalf("got %q", got)
	}
	// The same handle can keep writing and rekeying under the new KEK.
	mustPut(t, ts.Store, "x", "second")
	if _, err := ts.Rekey(ctx); err != nil {
		t.Fatal(err)
	}
	key2 := newKeyFile(t)
	if err := s.ChangeKEK(ctx, KeyFile(key2)); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, openStore(t, ts.dir, KeyFile(key2)), "x", 0); got != "second" {
		t.Fatalf("got %q", got)
	}
}

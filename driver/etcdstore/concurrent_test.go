package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/etcdstore/etcdtest"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

type put struct {
	name    string
	version uint64
	value   string
}

// acked collects the puts that returned success.
type acked struct {
	mu   sync.Mutex
	puts []put
}

func (a *acked) add(p put) {
	a.mu.Lock()
	a.puts = append(a.puts, p)
	a.mu.Unlock()
}

func (a *acked) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.puts)
}

// waitUntil polls cond until it holds or d has passed, and says which.
// For states a test cannot be told about (load reaching a point).
func waitUntil(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// check reads every acknowledged put back through s: no version may be
// missing, hold another value, or have been handed out twice.
func (a *acked) check(t *testing.T, s *store.Store) map[string]int {
	t.Helper()
	seen := map[string]map[uint64]bool{}
	for _, p := range a.puts {
		if seen[p.name] == nil {
			seen[p.name] = map[uint64]bool{}
		}
		if seen[p.name][p.version] {
			t.Fatalf("%s version %d handed out twice", p.name, p.version)
		}
		seen[p.name][p.version] = true
		if got := mustGet(t, s, p.name, p.version); got != p.value {
			t.Fatalf("%s version %d = %q, want %q", p.name, p.version, got, p.value)
		}
	}
	counts := map[string]int{}
	for name, vs := range seen {
		counts[name] = len(vs)
	}
	return counts
}

// TestStoreConcurrentPuts: two managers (two handles, two connections,
// two lock sessions), several goroutines each, all putting to the same
// few names. No version may be lost or handed out twice.
func TestStoreConcurrentPuts(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	initStore(t, cfg)
	handles := []*store.Store{handle(t, cfg), handle(t, cfg)}
	ctx := testCtx(t, 40*time.Second)
	var done acked
	var wg sync.WaitGroup
	for h, s := range handles {
		for g := range 2 {
			wg.Go(func() {
				for i := range 6 {
					name := fmt.Sprintf("c/%d", i%3)
					value := fmt.Sprintf("h%d-g%d-i%d", h, g, i)
					v, err := s.Put(ctx, name, []byte(value))
					if err != nil {
						t.Errorf("Put: %v", err)
						return
					}
					done.add(put{name, v, value})
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	reader := handle(t, cfg)
	for name, n := range done.check(t, reader) {
		e, err := reader.Info(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Versions) != n || int(e.Versions[len(e.Versions)-1].Version) != n {
			t.Fatalf("%s: %d versions stored, %d put", name, len(e.Versions), n)
		}
	}
}

// TestStoreRekeyConcurrent: two managers put (to existing names and to
// new ones, the case compare-and-swap alone gets wrong) while a third
// rekeys again and again and readers read. No read may fail, every
// acknowledged version must read back, and a fresh handle must open
// every record: none may be left sealed with a dropped key.
func TestStoreRekeyConcurrent(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	first := initStore(t, cfg)
	if !storeLocks(t, cfg) {
		t.Skip(lockHookMissing + " (TestStoreTakesWriterLock fails for this)")
	}
	var done acked
	var existing []string
	for i := range 8 {
		name := fmt.Sprintf("old/%d", i)
		value := "seed-" + name
		done.add(put{name, mustPut(t, first, name, value), value})
		existing = append(existing, name)
	}
	ctx := testCtx(t, 50*time.Second)
	writers := []*store.Store{handle(t, cfg), handle(t, cfg)}
	rekeyer, readerH := handle(t, cfg), handle(t, cfg)

	var stop atomic.Bool
	var reads, rekeys atomic.Int64
	var wg sync.WaitGroup
	for w, s := range writers {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				name := fmt.Sprintf("new/%d-%d", w, i) // a new record each time
				if i%2 == 1 {
					name = existing[rand.IntN(len(existing))]
				}
				value := fmt.Sprintf("w%d-%d", w, i)
				v, err := s.Put(ctx, name, []byte(value))
				if err != nil {
					t.Errorf("Put(%s): %v", name, err)
					return
				}
				done.add(put{name, v, value})
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				name := existing[rand.IntN(len(existing))]
				if _, err := readerH.Get(ctx, name, 0); err != nil {
					t.Errorf("Get(%s) during rekey: %v", name, err)
					return
				}
				reads.Add(1)
				time.Sleep(time.Millisecond) // leave the CPU to the writers
			}
		})
	}
	wg.Go(func() {
		defer stop.Store(true)
		for range 2 {
			if _, err := rekeyer.Rekey(ctx); err != nil {
				t.Errorf("Rekey: %v", err)
				return
			}
			rekeys.Add(1)
		}
		// Let the writers run on the final keyring for a moment too.
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d rekeys, %d puts, %d reads", rekeys.Load(), len(done.puts), reads.Load())

	fresh := handle(t, cfg)
	done.check(t, fresh)
	var bad []string
	ok, nbad, err := fresh.Verify(ctx, func(name string, err error) {
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", name, err))
		}
	})
	if err != nil || nbad != 0 {
		t.Fatalf("Verify: %d ok, %d bad %v, %v", ok, nbad, bad, err)
	}
	// One key in the keyring: a new rekey finds exactly one to drop.
	st, err := fresh.Rekey(context.Background())
	if err != nil || st.OldKeys != 1 || st.Records != ok {
		t.Fatalf("final Rekey = %+v %v (want 1 old key, %d records)", st, err, ok)
	}
}

// TestClusterMemberDown: three members, endpoints listing all three.
// The leader is killed while a manager writes and the plugin reads, then
// restarted. No read may fail (reads wait out the election, about a
// second or two, since they are linearizable), reads must carry on on
// the survivors, and every acknowledged put must survive, read back
// through the restarted member alone once it caught up.
func TestClusterMemberDown(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	cfg := testConfig(t, c)
	writer := initStore(t, cfg)
	reader := handle(t, cfg)
	var done acked
	names := []string{"a", "b", "c"}
	for _, name := range names {
		done.add(put{name, mustPut(t, writer, name, "seed"), "seed"})
	}

	var stop atomic.Bool
	var reads, readFails, putFails, slowest atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			name, value := names[i%len(names)], fmt.Sprintf("v%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			v, err := writer.Put(ctx, name, []byte(value))
			cancel()
			if err != nil {
				// Allowed (not acknowledged), but it must say why.
				if !errors.Is(err, backend.ErrUnavailable) {
					t.Errorf("Put: %v", err)
				} else if putFails.Add(1) == 1 {
					t.Logf("first failed put: %v", err)
				}
				continue
			}
			done.add(put{name, v, value})
		}
	})
	for g := range 2 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				start := time.Now()
				_, err := reader.Get(ctx, names[(i+g)%len(names)], 0)
				cancel()
				if el := int64(time.Since(start)); el > slowest.Load() {
					slowest.Store(el) // racy max, good enough for a log line
				}
				if err != nil {
					t.Errorf("Get with a member down: %v", err)
					readFails.Add(1)
				}
				reads.Add(1)
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	// Kill the leader once reads and writes are both under way.
	seeded := done.len()
	if !waitUntil(10*time.Second, func() bool { return reads.Load() >= 20 && done.len() >= seeded+5 }) {
		t.Logf("load slow to start: %d reads, %d puts", reads.Load(), done.len()-seeded)
	}
	leader, err := c.Leader(testCtx(t, 10*time.Second))
	if err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatal(err)
	}
	if err := c.Kill(leader); err != nil {
		t.Error(err)
	}
	killedAt, ackedAt := reads.Load(), done.len()
	// Run on the survivors until reads carried on well past the bar below
	// and the writer got a put through the new leader; the deadline only
	// ends a run that does neither, which the checks below then report.
	waitUntil(15*time.Second, func() bool { return reads.Load()-killedAt >= 50 && done.len() > ackedAt })
	stop.Store(true)
	wg.Wait()
	t.Logf("killed leader m%d; %d reads (%d after), slowest %v, %d read failures, %d puts acknowledged, %d not",
		leader, reads.Load(), reads.Load()-killedAt, time.Duration(slowest.Load()), readFails.Load(),
		len(done.puts), putFails.Load())
	if reads.Load()-killedAt < 10 {
		t.Fatalf("only %d reads completed after the leader was killed", reads.Load()-killedAt)
	}
	if t.Failed() {
		return
	}

	if err := c.Restart(leader); err != nil {
		t.Fatal(err)
	}
	only := cfg
	only.Endpoints = []string{c.Members[leader].ClientURL}
	done.check(t, handle(t, only))
}

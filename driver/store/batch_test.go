package store

import (
	"bufio"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const batchNames = 200

func batchName(i int) string { return fmt.Sprintf("batch/%03d", i) }

// TestHelperBatchWriter is not a test: TestCrash_PutMany runs the test
// binary again with it selected. It imports rounds of batchNames values,
// all of round r reading "r-i", and prints "ack r" once PutMany returned.
func TestHelperBatchWriter(t *testing.T) {
	dir := os.Getenv("SWARMKEEP_BATCH_DIR")
	if dir == "" {
		t.Skip("helper process for TestCrash_PutMany")
	}
	s := openStore(t, dir, KeyFile(os.Getenv("SWARMKEEP_BATCH_KEY")))
	start, _ := strconv.Atoi(os.Getenv("SWARMKEEP_BATCH_ROUND"))
	// Never outlive a parent that died without killing us.
	for r, deadline := start, time.Now().Add(20*time.Second); time.Now().Before(deadline); r++ {
		pairs := make([]Pair, batchNames)
		for i := range pairs {
			pairs[i] = Pair{Name: batchName(i), Value: fmt.Appendf(nil, "%d-%d", r, i)}
		}
		if _, err := s.PutMany(context.Background(), pairs); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(2)
		}
		fmt.Printf("ack %d\n", r)
	}
	os.Exit(0)
}

// A batch killed at any moment leaves all of its values or none: every
// name shows the same round, at the same version, and no acknowledged
// round is lost.
func TestCrash_PutMany(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ts := newTestStore(t, InitOptions{MaxVersions: 3})
	ts.Close()
	acked, next := -1, 0
	deadline := time.Now().Add(8 * time.Second)
	kills := 0
	for ; kills < 30 && time.Now().Before(deadline); kills++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBatchWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SWARMKEEP_BATCH_DIR="+ts.dir, "SWARMKEEP_BATCH_KEY="+ts.key,
			"SWARMKEEP_BATCH_ROUND="+strconv.Itoa(next))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Once the helper is past start-up (its first ack), kill it at a
		// random moment, usually inside a round.
		timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		sc := bufio.NewScanner(out)
		for n := 0; sc.Scan(); n++ {
			f := strings.Fields(sc.Text())
			if len(f) != 2 || f[0] != "ack" {
				cmd.Process.Kill()
				t.Fatalf("helper: %q", sc.Text())
			}
			acked, _ = strconv.Atoi(f[1])
			if n == 0 {
				timer.Reset(time.Duration(mrand.IntN(100)) * time.Millisecond)
			}
		}
		cmd.Wait()
		timer.Stop()
		round := checkBatchRounds(t, ts)
		if round < acked {
			t.Fatalf("round %d was acknowledged, the store holds round %d", acked, round)
		}
		next = round + 1
	}
	if next < kills {
		t.Fatalf("only %d rounds in %d kills: too slow to test anything", next, kills)
	}
	t.Logf("%d kills, %d rounds stored", kills, next)
	// The next writer drops what an uncommitted batch left.
	s := openStore(t, ts.dir, KeyFile(ts.key))
	mustPut(t, s, "after", "x")
	filepath.WalkDir(ts.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), batchSuffix) {
			t.Errorf("left after recovery: %s", p)
		}
		return nil
	})
}

// checkBatchRounds opens the store as a new process would (which finishes
// a committed batch) and returns the one round every name holds, or -1.
func checkBatchRounds(t *testing.T, ts testStore) int {
	t.Helper()
	s := openStore(t, ts.dir, KeyFile(ts.key))
	defer s.Close()
	round, version := -2, uint64(0)
	for i := range batchNames {
		sec, err := s.Get(context.Background(), batchName(i), 0)
		r := -1
		if err == nil {
			var j int
			if _, err := fmt.Sscanf(string(sec.Value), "%d-%d", &r, &j); err != nil || j != i {
				t.Fatalf("%s holds %q", batchName(i), sec.Value)
			}
		}
		if round == -2 {
			round, version = r, sec.Version
		} else if r != round || sec.Version != version {
			t.Fatalf("a batch was cut: %s holds round %d version %d, %s round %d version %d",
				batchName(0), round, version, batchName(i), r, sec.Version)
		}
	}
	return round
}

// A batch killed after its commit, with half its files renamed, is
// finished by the next process that opens the store; one killed before
// its commit leaves no trace.
func TestPutMany_RecoverCommitted(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, "k/0", "old")
	m := ts.m.(*DirMedium)
	hashes := make([]string, 4)
	shards := m.shardDirs()
	defer shards.close()
	for i := range hashes {
		key := recordKey(fmt.Sprintf("k/%d", i))
		p, _ := m.path(key)
		hashes[i] = filepath.Base(p)
		rec := &record{name: fmt.Sprintf("k/%d", i), key: ts.ringNow().keys[ts.ringNow().active], next: 3}
		rec.versions = append(rec.versions, rec.seal(ts.id, 2, time.Now(), []byte("new")))
		if err := m.writeTemp(shards, hashes[i], key, rec.marshal(ts.id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.writeList(batchCommit, hashes); err != nil {
		t.Fatal(err)
	}
	for _, h := range hashes[:2] {
		if err := os.Rename(m.tempOf(h), filepath.Join(m.objects, h[:2], h)); err != nil {
			t.Fatal(err)
		}
	}
	s := ts.handle(t)
	for i := range hashes {
		if got := mustGet(t, s, fmt.Sprintf("k/%d", i), 0); got != "new" {
			t.Fatalf("k/%d after recovery: %q", i, got)
		}
	}
	if _, err := os.Lstat(filepath.Join(ts.dir, batchCommit)); !os.IsNotExist(err) {
		t.Fatalf("commit list left: %v", err)
	}

	// Not committed: the pending list and temp files are dropped by the
	// next writer, and nothing changes.
	rec := &record{name: "k/9", key: ts.ringNow().keys[ts.ringNow().active], next: 2}
	rec.versions = append(rec.versions, rec.seal(ts.id, 1, time.Now(), []byte("ghost")))
	p, _ := m.path(recordKey("k/9"))
	h := filepath.Base(p)
	if err := m.writeList(batchPending, []string{h}); err != nil {
		t.Fatal(err)
	}
	if err := m.writeTemp(shards, h, recordKey("k/9"), rec.marshal(ts.id)); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "k/1", "after")
	if _, err := s.Get(context.Background(), "k/9", 0); err == nil {
		t.Fatal("an uncommitted batch became visible")
	}
	if _, err := os.Lstat(m.tempOf(h)); !os.IsNotExist(err) {
		t.Fatalf("temp file of an uncommitted batch left: %v", err)
	}
}

// PutMany numbers versions like Put, a name given twice gets two, and a
// medium without batches writes the same records one by one.
func TestPutMany_Versions(t *testing.T) {
	for _, batched := range []bool{true, false} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			ts := newTestStore(t, InitOptions{MaxVersions: 2})
			s := ts.Store
			if !batched {
				m, err := OpenDir(ts.dir)
				if err != nil {
					t.Fatal(err)
				}
				if s, err = Open(context.Background(), unwatchable{m}, KeyFile(ts.key)); err != nil {
					t.Fatal(err)
				}
				defer s.Close()
			}
			mustPut(t, s, "a", "a1")
			nums, err := s.PutMany(context.Background(), []Pair{
				{"a", []byte("a2")}, {"b", []byte("b1")}, {"a", []byte("a3")},
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(nums) != "[2 1 3]" {
				t.Fatalf("versions %v", nums)
			}
			for name, want := range map[string]string{"a": "a3", "b": "b1"} {
				if got := mustGet(t, ts.handle(t), name, 0); got != want {
					t.Fatalf("%s: %q", name, got)
				}
			}
			if e, err := s.Info(context.Background(), "a"); err != nil || len(e.Versions) != 2 || e.Versions[0].Version != 2 {
				t.Fatalf("pruning: %+v %v", e, err)
			}
			if _, err := s.PutMany(context.Background(), []Pair{{"c", []byte("x")}, {"bad name", []byte("x")}}); err == nil ||
				!strings.Contains(err.Error(), "pair 2") {
				t.Fatalf("bad name: %v", err)
			}
			if _, err := s.Get(context.Background(), "c", 0); err == nil {
				t.Fatal("a rejected batch stored a value")
			}
		})
	}
}

//go:build e2e

package multi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/driver/store/mediumtest"
	"github.com/swarmkeep/swarmkeep/swarm/configstore"
)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestMediumConformance: the swarm medium passes the suite every medium
// does, against the real engines, each handle on another manager (so CAS
// races cross managers through Raft).
func TestMediumConformance(t *testing.T) {
	mediumtest.Run(t, mediumtest.Harness{New: func(t *testing.T) func(*testing.T) store.Medium {
		prefix := "t" + randHex(4)
		next := 0
		return func(t *testing.T) store.Medium {
			e := C.engines[next%len(C.engines)]
			next++
			m, err := configstore.New(e.cli, prefix, nil)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}})
}

// TestMediumLimits: a blob over one config's limit is stored in chunks and
// read back whole from another manager.
func TestMediumLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := "l" + randHex(4)
	w, _ := configstore.New(C.engines[0].cli, prefix, nil)
	r, _ := configstore.New(C.engines[2].cli, prefix, nil)
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16) // 3 MiB: 4 chunks
	rev, err := w.Write(ctx, "r/big", big, "")
	if err != nil {
		t.Fatal(err)
	}
	got, rrev, err := r.Read(ctx, "r/big")
	if err != nil || !bytes.Equal(got, big) || rrev != rev {
		t.Fatalf("read back %d bytes at %q (%v), want %d at %q", len(got), rrev, err, len(big), rev)
	}
}

func put(t *testing.T, e *engine, name string, value []byte, extra ...string) {
	t.Helper()
	mustCLI(t, e, value, append([]string{"put", name}, extra...)...)
}

// awaitServed polls each of engines (every 2 ms) until its plugin answers
// secret with want, and returns how long each took from ack.
func awaitServed(t *testing.T, ack time.Time, engines []*engine, secret string, want []byte) []time.Duration {
	t.Helper()
	var lat []time.Duration
	for _, e := range engines {
		for {
			got, _, err := e.getSecret(secret)
			if err == nil && bytes.Equal(got, want) {
				lat = append(lat, time.Since(ack))
				break
			}
			if time.Since(ack) > 30*time.Second {
				t.Fatalf("manager %d did not answer the put of %s within 30s", e.n, secret)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return lat
}

// latencies is the log line's summary of lat: percentiles and every sample.
func latencies(lat []time.Duration) string {
	ms := make([]string, len(lat))
	for i, d := range slices.Sorted(slices.Values(lat)) {
		ms[i] = strconv.FormatInt(d.Milliseconds(), 10)
	}
	return fmt.Sprintf("p50 %s p90 %s p99 %s max %s (%d samples, ms: %s)",
		percentile(lat, .5).Round(time.Millisecond), percentile(lat, .9).Round(time.Millisecond), percentile(lat, .99).Round(time.Millisecond),
		slices.Max(lat).Round(time.Millisecond), len(lat), strings.Join(ms, " "))
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestReplicatedStore walks the replicated store through the life of a
// 3-manager swarm. Subtests depend on each other and run in order.
func TestReplicatedStore(t *testing.T) {
	e1, e2, e3 := C.engines[0], C.engines[1], C.engines[2]
	cur := []byte("db-v1-" + randHex(4))

	t.Run("PutFromAnyManagerServedByEveryManagerAtOnce", func(t *testing.T) {
		put(t, e2, "db", cur)
		// No wait, no retry: put returned, so every plugin answers it.
		for _, e := range C.engines {
			wantSecret(t, e, "db", cur)
		}
		svc := createService(t, e2, "first", 2, "db")
		for _, tk := range waitRunning(t, e1, svc, 2, 60*time.Second, nil) {
			if got := readTaskSecret(t, tk, "db"); !bytes.Equal(got, cur) {
				t.Fatalf("task on manager %d: db = %q, want %q", C.byNode(tk.NodeID).n, got, cur)
			}
		}
	})

	t.Run("PutToEveryManagerTime", func(t *testing.T) {
		// The figure the README quotes: from an acknowledged put (made on
		// manager 2, without waiting) until managers 1 and 3 answer it.
		var lat, acked []time.Duration
		for i := range 15 {
			v := []byte(fmt.Sprintf("db-bench-%d-%s", i, randHex(4)))
			t0 := time.Now()
			put(t, e2, "bench", v, "--wait", "0")
			ack := time.Now()
			acked = append(acked, ack.Sub(t0))
			lat = append(lat, awaitServed(t, ack, []*engine{e1, e3}, "bench", v)...)
		}
		logf("put -> served by another manager's plugin: %s; put command (process, commit) p50 %s",
			latencies(lat), percentile(acked, .5).Round(time.Millisecond))
		var waited []time.Duration
		for i := range 5 {
			t0 := time.Now()
			put(t, e2, "bench", []byte(fmt.Sprintf("db-bench-w%d-%s", i, randHex(4))))
			waited = append(waited, time.Since(t0))
		}
		logf("put with --wait (returns once every manager's mirror applied it): p50 %s max %s",
			percentile(waited, .5).Round(time.Millisecond), slices.Max(waited).Round(time.Millisecond))
	})

	t.Run("StatusShowsThreeConsistentManagers", func(t *testing.T) {
		out := waitStatus(t, e3, true, "")
		for _, e := range C.engines {
			if !strings.Contains(out, e.addr+":") {
				t.Fatalf("status on manager 3 does not list manager %d (%s):\n%s", e.n, e.addr, out)
			}
		}
	})

	t.Run("AgentDownDuringPutFlaggedThenCatchesUp", func(t *testing.T) {
		e3.stopAgent()
		old := cur
		cur = []byte("db-v2-" + randHex(4))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := C.cli(ctx, e1, cur, "put", "db", "--wait", "2s")
		if err == nil || !strings.Contains(err.Error(), e3.addr) || !strings.Contains(err.Error(), "stored in the swarm") {
			t.Fatalf("put with manager 3's agent down: %v; want an error naming %s", err, e3.addr)
		}
		wantSecret(t, e1, "db", cur)
		wantSecret(t, e2, "db", cur)
		wantSecret(t, e3, "db", old) // what status must warn about
		waitStatus(t, e1, false, e3.addr)
		t0 := time.Now()
		if err := e3.startAgent(C); err != nil {
			t.Fatal(err)
		}
		for {
			if got, _, err := e3.getSecret("db"); err == nil && bytes.Equal(got, cur) {
				break
			}
			if time.Since(t0) > 30*time.Second {
				t.Fatal("manager 3 did not catch up within 30s of its agent's start")
			}
			time.Sleep(5 * time.Millisecond)
		}
		logf("restarted agent caught up in %s", time.Since(t0).Round(time.Millisecond))
		waitStatus(t, e1, true, "")
	})

	t.Run("RekeyFromAnyManager", func(t *testing.T) {
		mustCLI(t, e3, nil, "rekey", "--lkg-dir", filepath.Join(e3.state, "lkg"))
		for _, e := range C.engines {
			wantSecret(t, e, "db", cur)
			// Every record in each manager's folder opens with the keyring
			// there: the mirror copied the keyring and the re-sealed records.
			if _, err := run(context.Background(), nil, nil, C.bin, "verify", "--store", e.store, "--key-file", e.key); err != nil {
				t.Fatalf("manager %d folder after rekey: %v", e.n, err)
			}
		}
		if out := mustCLI(t, e2, nil, "ls"); !strings.Contains(out, "db") {
			t.Fatalf("ls on manager 2 after rekey:\n%s", out)
		}
	})

	t.Run("RmFromAnyManager", func(t *testing.T) {
		put(t, e1, "gone", []byte("to-be-removed"))
		mustCLI(t, e3, nil, "rm", "gone")
		for _, e := range C.engines {
			if got, line, err := e.getSecret("gone"); err != nil || got != nil || !strings.Contains(line, "not found") {
				t.Fatalf("manager %d after rm: %q %q %v", e.n, got, line, err)
			}
		}
	})

	t.Run("KillLeaderReplacementTasksGetTheLatestVersion", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		lead, err := C.leader(ctx, e2)
		if err != nil {
			t.Fatal(err)
		}
		if etcdCur == nil {
			t.Fatal("no etcd value: TestEtcdStore did not run first (run both)")
		}
		t3 := time.Now()
		// Each task holds a replicated-store secret and an etcd one.
		svc := createService(t, lead, "fo", 6, "db", etcdName+":"+etcdSecret)
		tasks := waitRunning(t, lead, svc, 6, 90*time.Second, nil)
		logf("6 tasks running in %s", time.Since(t3).Round(time.Millisecond))
		onLeader := 0
		for _, tk := range tasks {
			if got := readTaskSecret(t, tk, "db"); !bytes.Equal(got, cur) {
				t.Fatalf("task %.12s: db = %q, want %q", tk.ID, got, cur)
			}
			if got := readTaskSecret(t, tk, etcdSecret); !bytes.Equal(got, etcdCur) {
				t.Fatalf("task %.12s: %s = %q, want %q", tk.ID, etcdSecret, got, etcdCur)
			}
			if tk.NodeID == lead.nodeID {
				onLeader++
			}
		}
		// A put just before the kill, on the leader itself.
		late := []byte("late-" + randHex(4))
		put(t, lead, "late", late)
		// etcd stops before the failover. Every plugin answers the etcd
		// value from its replica, also the followers', which no engine
		// has asked for anything from etcd (only the leader's plugin is
		// asked): the replica holds the whole prefix whatever was served.
		if err := C.etcd.Stop(0); err != nil {
			t.Fatalf("stopping etcd: %v", err)
		}
		logf("etcd stopped")
		for _, e := range C.engines {
			got, line, err := e.getSecret(etcdName + ":" + etcdSecret)
			if err != nil || !bytes.Equal(got, etcdCur) {
				t.Fatalf("manager %d (leader %v) with etcd stopped: %s = %q (error %q, %v), want %q from its replica",
					e.n, e == lead, etcdSecret, got, line, err, etcdCur)
			}
		}
		pid, err := os.ReadFile(filepath.Join(lead.dir, "dockerd.pid"))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
		t0 := time.Now()
		if err := syscall.Kill(n, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		logf("killed the leader, manager %d (dockerd pid %d); %d of 6 tasks ran there", lead.n, n, onLeader)
		var via *engine
		for _, e := range C.engines {
			if e != lead {
				via = e
				break
			}
		}
		var nl *engine
		for nl == nil || nl == lead {
			if time.Since(t0) > 90*time.Second {
				t.Fatal("no new leader within 90s")
			}
			time.Sleep(500 * time.Millisecond)
			qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
			nl, _ = C.leader(qctx, via)
			qcancel()
		}
		logf("manager %d leads after %s", nl.n, time.Since(t0).Round(time.Millisecond))
		wantSecret(t, nl, "late", late)
		after := waitRunning(t, nl, svc, 6, 120*time.Second, func(tk swarm.Task) bool { return tk.NodeID != lead.nodeID })
		logf("6 tasks running on the survivors %s after the kill", time.Since(t0).Round(time.Millisecond))
		for _, tk := range after {
			if got := readTaskSecret(t, tk, "db"); !bytes.Equal(got, cur) {
				t.Fatalf("task %.12s on manager %d after failover: db = %q, want %q", tk.ID, C.byNode(tk.NodeID).n, got, cur)
			}
			// etcd is still stopped: the new leader's replica answered.
			if got := readTaskSecret(t, tk, etcdSecret); !bytes.Equal(got, etcdCur) {
				t.Fatalf("task %.12s on manager %d after failover, etcd stopped: %s = %q, want %q", tk.ID, C.byNode(tk.NodeID).n, etcdSecret, got, etcdCur)
			}
		}

		// A put while the old leader is down succeeds and names it; its
		// catch-up when it returns is the mirror's start (a full listing),
		// tested with a stopped agent above: restarting a kill -9'd engine
		// takes about a minute here, too long for CI.
		ctx2, cancel2 := context.WithTimeout(ctx, 30*time.Second)
		defer cancel2()
		while := []byte("while-down-" + randHex(4))
		cmd := exec.CommandContext(ctx2, C.bin, "put", "late")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+nl.host, "SWARMKEEP_BACKENDS=swarm:swarm", "SWARMKEEP_BACKEND=swarm",
			"SWARMKEEP_KEY_FILE="+nl.key, "SWARMKEEP_STORE="+nl.store)
		cmd.Stdin = bytes.NewReader(while)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), lead.addr) || !strings.Contains(string(out), "down") {
			t.Fatalf("put with manager %d down: %v: %s (want success and a note naming it)", lead.n, err, out)
		}
		for _, e := range C.engines {
			if e != lead {
				wantSecret(t, e, "late", while)
			}
		}
	})
}

// waitStatus runs swarmkeep status on e until it succeeds (ok) or fails
// naming name (!ok), within 15s (the agents publish every 300ms), and
// returns its output.
func waitStatus(t *testing.T, e *engine, ok bool, name string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		out, err := run(ctx, e.env(), nil, C.bin, "status")
		cancel()
		if ok && err == nil {
			return out
		}
		if !ok && err != nil && strings.Contains(err.Error(), name) && strings.Contains(out, "DIFFERS") {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("status on manager %d: want ok=%v naming %q; last: %v\n%s", e.n, ok, name, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

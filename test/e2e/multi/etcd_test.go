//go:build e2e

package multi

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// etcdCur is the latest value of etcdSecret in the etcd store, set by
// TestEtcdStore; the kill -9 subtest of TestReplicatedStore checks that
// replacement tasks get it while etcd is stopped.
var etcdCur []byte

const etcdSecret = "api"

func etcdPut(t *testing.T, e *engine, name string, value []byte, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := C.etcdCLI(ctx, e, value, append([]string{"put", name}, extra...)...); err != nil {
		t.Fatalf("manager %d: swarmkeep put %s (etcd): %v", e.n, name, err)
	}
}

// TestEtcdStore: the etcd backend on a 3-manager swarm. Before the
// replica, tasks started within the 30 s cache TTL after a put got the old
// value. Only the leader's plugin is asked here (by the engines), so the
// followers' plugins stay untouched for the outage check in
// TestReplicatedStore's kill -9 subtest.
func TestEtcdStore(t *testing.T) {
	e1, e2 := C.engines[0], C.engines[1]
	t.Run("PutThenNewTasksGetTheLatestAtOnce", func(t *testing.T) {
		etcdPut(t, e2, etcdSecret, []byte("api-v1-"+randHex(4)))
		etcdCur = []byte("api-v2-" + randHex(4))
		etcdPut(t, e2, etcdSecret, etcdCur)
		// No wait: the put returned.
		svc := createService(t, e2, "ek", 3, etcdName+":"+etcdSecret)
		first := waitRunning(t, e1, svc, 3, 60*time.Second, nil)
		for _, tk := range first {
			if got := readTaskSecret(t, tk, etcdSecret); !bytes.Equal(got, etcdCur) {
				t.Fatalf("task on manager %d: %s = %q, want %q", C.byNode(tk.NodeID).n, etcdSecret, got, etcdCur)
			}
		}
		etcdCur = []byte("api-v3-" + randHex(4))
		etcdPut(t, e2, etcdSecret, etcdCur)
		n := uint64(6)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, _, err := e2.cli.ServiceInspectWithRaw(ctx, svc, swarm.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Spec.Mode.Replicated.Replicas = &n
		if _, err := e2.cli.ServiceUpdate(ctx, svc, s.Version, s.Spec, swarm.ServiceUpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		old := map[string]bool{}
		for _, tk := range first {
			old[tk.ID] = true
		}
		all := waitRunning(t, e1, svc, 6, 60*time.Second, nil)
		fresh := 0
		for _, tk := range all {
			if old[tk.ID] {
				continue
			}
			fresh++
			if got := readTaskSecret(t, tk, etcdSecret); !bytes.Equal(got, etcdCur) {
				t.Fatalf("new task on manager %d: %s = %q, want %q (the put before the scale-up)", C.byNode(tk.NodeID).n, etcdSecret, got, etcdCur)
			}
		}
		if fresh != 3 {
			t.Fatalf("%d new tasks after the scale-up, want 3", fresh)
		}
	})
}

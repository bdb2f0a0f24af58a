//go:build e2e

package multi

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestEtcdPutToEveryManagerTime prints the time from an acknowledged etcd
// put (on one manager, without waiting) until another manager's plugin
// answers it, like the replicated store's figure. It runs after the kill
// -9 subtest (which leaves etcd stopped and one manager dead; this file
// sorts after replicated_test.go, so its tests run later), so it starts
// etcd again and uses the live managers.
func TestEtcdPutToEveryManagerTime(t *testing.T) {
	if !C.etcd.Members[0].Running() {
		if err := C.etcd.Restart(0); err != nil {
			t.Fatalf("restarting etcd: %v", err)
		}
	}
	var live []*engine
	for _, e := range C.engines {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := e.cli.Info(ctx)
		cancel()
		if err == nil {
			live = append(live, e)
		}
	}
	if len(live) < 2 {
		t.Fatalf("%d live managers, want 2 or more", len(live))
	}
	from, others := live[0], live[1:]
	var lat []time.Duration
	for i := range 15 {
		v := []byte(fmt.Sprintf("etcd-bench-%d-%s", i, randHex(4)))
		etcdPut(t, from, "ebench", v, "--wait", "0")
		ack := time.Now()
		lat = append(lat, awaitServed(t, ack, others, etcdName+":ebench", v)...)
	}
	logf("etcd put -> served by another manager's plugin: %s", latencies(lat))
}

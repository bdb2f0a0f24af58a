package etcdstore

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// BenchmarkReplicaPutToApplied: time from an acknowledged put (one
// manager's store handle) to another plugin's replica holding it, and to
// WaitApplied confirming it (what swarmkeep put waits for); p50 and p99 are
// reported per put.
func BenchmarkReplicaPutToApplied(b *testing.B) {
	c := sharedCluster(b)
	cfg := testConfig(b, c)
	initStore(b, cfg)
	w, wm := writer(b, cfg)
	p := openBackendT(b, pluginSettings(b, cfg, "bench"))
	r := replicaOf(b, p)
	mustPut(b, w, "k", "0")
	if _, _, err := wm.WaitApplied(testCtx(b, 5*time.Second)); err != nil {
		b.Fatal(err)
	}
	applied := make([]time.Duration, 0, b.N)
	confirmed := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		mustPut(b, w, "k", string(rune('a'+i%26)))
		start := time.Now()
		want := wm.LastWrite()
		for r.Applied() < want {
			time.Sleep(50 * time.Microsecond)
		}
		applied = append(applied, time.Since(start))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, lag, err := wm.WaitApplied(ctx); err != nil || len(lag) > 0 {
			b.Fatal(lag, err)
		}
		cancel()
		confirmed = append(confirmed, time.Since(start))
	}
	b.StopTimer()
	report := func(name string, d []time.Duration) {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		b.ReportMetric(float64(d[len(d)/2].Microseconds()), name+"-p50-µs")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), name+"-p99-µs")
	}
	report("applied", applied)
	report("confirmed", confirmed)
}

// BenchmarkReplicaGet is a warm read: from the replica, no etcd round trip.
// BenchmarkEtcdGet is the same read from etcd, as the backend did on every
// cache miss before.
func BenchmarkReplicaGet(b *testing.B) {
	c := sharedCluster(b)
	cfg := testConfig(b, c)
	initStore(b, cfg)
	w, _ := writer(b, cfg)
	mustPut(b, w, "k", "value")
	p := openBackendT(b, pluginSettings(b, cfg, "bench"))
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := p.Get(ctx, backend.Ref{Name: "k"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEtcdGet(b *testing.B) {
	c := sharedCluster(b)
	cfg := testConfig(b, c)
	s := initStore(b, cfg)
	mustPut(b, s, "k", "value")
	other := handle(b, cfg) // a Stat per read: no watch on etcd
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := other.Get(ctx, "k", 0); err != nil {
			b.Fatal(err)
		}
	}
}

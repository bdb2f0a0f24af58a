package cache

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// The target: with the backend stopped, stale answers have a p99 at most
// twice that of warm hits. Compare p99-ns of BenchmarkHit/serial with
// BenchmarkStaleFromLKG/memory:
//
//	go test ./driver/cache -run '^$' -bench . -benchtime 200000x

// benchRef is a typical request: a stack's secret with a few labels.
func benchRef() backend.Ref {
	return backend.Ref{
		Name: "app/db-password", Reuse: true, Secret: "app_db_password", Stack: "app", Service: "app_web",
		Labels: map[string]string{
			"com.docker.stack.namespace": "app", "swarmkeep.backend": "shared",
			"swarmkeep.name": "app/db-password", "team": "payments", "tier": "prod",
		},
	}
}

func BenchmarkHit(b *testing.B) {
	f := newFake()
	f.set("app/db-password", "correct horse battery staple")
	c := newCache(b, f, DefaultOptions())
	r := benchRef()
	ctx := context.Background()
	get(b, c, r)

	b.Run("serial", func(b *testing.B) {
		latencies(b, func() {
			if _, err := c.Get(ctx, r); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Get(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	if f.calls.Load() != 1 {
		b.Fatalf("%d backend calls", f.calls.Load())
	}
}

// BenchmarkStaleFromLKG serves disk copies with the backend stopped:
// "memory" is the steady state (the copy was loaded once, the circuit is
// open), "disk" is the first request after a restart (a failing call, then
// a load from the encrypted store).
func BenchmarkStaleFromLKG(b *testing.B) {
	clk := newClock()
	f := newFake()
	f.set("app/db-password", "correct horse battery staple")
	o := DefaultOptions()
	o.Now = clk.Now
	o.LKG = mustLKG(b)
	r := benchRef()
	ctx := context.Background()
	first := newCache(b, f, o)
	get(b, first, r)
	settle(first)
	f.down.Store(true)
	clk.Add(time.Minute)

	b.Run("memory", func(b *testing.B) {
		c := newCache(b, f, o)
		get(b, c, r)
		latencies(b, func() {
			if s, err := c.Get(ctx, r); err != nil || !s.Stale {
				b.Fatal(err)
			}
		})
	})
	b.Run("disk", func(b *testing.B) {
		var lat []time.Duration
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			c, err := New(f, o)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			t0 := time.Now()
			s, err := c.Get(ctx, r)
			lat = append(lat, time.Since(t0))
			if err != nil || !s.Stale {
				b.Fatal(err)
			}
			b.StopTimer()
			c.Close()
			b.StartTimer()
		}
		report(b, lat)
	})
}

// latencies runs op in the benchmark loop and reports its p50 and p99.
func latencies(b *testing.B, op func()) {
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		op()
		lat = append(lat, time.Since(t0))
	}
	report(b, lat)
}

func report(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkGet shows that Get does not slow down as the store grows:
// "cached" is the steady state of the plugin (a hot set of 1,000 names,
// each Get one stat and one AEAD open), "uncached" reads, MAC-checks and
// parses the record file on every call.
//
//	go test ./driver/store -run '^$' -bench Get -benchtime 20000x
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{10, 1000, 100_000} {
		ts := benchStore(b, n)
		hot := min(n, 1000)
		b.Run(fmt.Sprintf("records=%d/cached", n), func(b *testing.B) {
			benchGets(b, ts.Store, hot)
		})
		b.Run(fmt.Sprintf("records=%d/uncached", n), func(b *testing.B) {
			s := ts.handle(b)
			s.cache = newRecordCache(0)
			benchGets(b, s, n)
		})
	}
}

func benchGets(b *testing.B, s *Store, n int) {
	ctx := context.Background()
	names := make([]string, n)
	for i := range names {
		names[i] = benchName(i)
	}
	for _, name := range names { // warm the cache, if any
		if _, err := s.Get(ctx, name, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Get(ctx, names[rand.IntN(n)], 0); err != nil {
			b.Fatal(err)
		}
	}
}

func benchName(i int) string { return fmt.Sprintf("bench/svc-%06d/token", i) }

// benchStore builds a store of n one-version records quickly: records are
// sealed in memory and their files written in parallel, straight into the
// DirMedium layout (no lock or fsync: nothing else uses the directory yet).
func benchStore(b *testing.B, n int) testStore {
	b.Helper()
	start := time.Now()
	ts := newTestStore(b, InitOptions{})
	m := ts.m.(*DirMedium)
	key := ts.ringNow().keys[ts.ringNow().active]
	created := time.Now()
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				name := benchName(i)
				rec := &record{name: name, key: key, next: 2}
				rec.versions = []sealedVersion{rec.seal(ts.id, 1, created, []byte(fmt.Sprintf("secret-value-%d", i)))}
				blob := rec.marshal(ts.id)
				k := recordKey(name)
				p, _ := m.path(k)
				file := binary.BigEndian.AppendUint16(nil, uint16(len(k)))
				file = append(append(file, k...), blob...)
				os.MkdirAll(filepath.Dir(p), 0o700)
				if err := os.WriteFile(p, file, 0o600); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.Logf("built %d records in %v", n, time.Since(start).Round(time.Millisecond))
	return ts
}

// BenchmarkList is swarmkeep ls's store side: every record file read once,
// MAC-checked, parsed, sorted by name. Per record figures: one op is one
// listing of 10,000 names.
//
//	go test ./driver/store -run '^$' -bench List -benchtime 10x
func BenchmarkList(b *testing.B) {
	const n = 10_000
	ts := benchStore(b, n)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		got := 0
		if err := ts.List(ctx, func(Entry) error { got++; return nil }); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("listed %d of %d names", got, n)
		}
	}
}

package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentPuts: two handles on one directory (two processes, as far
// as flock is concerned), several goroutines each, all putting to the
// same few names. No version may be lost or handed out twice.
func TestConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{MaxVersions: maxVersionsLimit})
	handles := []*Store{ts.Store, ts.handle(t)}
	const (
		goroutines = 4
		puts       = 15
		names      = 3
	)
	type put struct {
		name    string
		version uint64
		value   string
	}
	var mu sync.Mutex
	var done []put
	var wg sync.WaitGroup
	for h, s := range handles {
		for g := range goroutines {
			wg.Go(func() {
				for i := range puts {
					name := fmt.Sprintf("c/%d", i%names)
					value := fmt.Sprintf("h%d-g%d-i%d", h, g, i)
					v, err := s.Put(ctx, name, []byte(value))
					if err != nil {
						t.Errorf("Put: %v", err)
						return
					}
					mu.Lock()
					done = append(done, put{name, v, value})
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := map[string]map[uint64]bool{}
	reader := ts.handle(t)
	for _, p := range done {
		if seen[p.name] == nil {
			seen[p.name] = map[uint64]bool{}
		}
		if seen[p.name][p.version] {
			t.Fatalf("%s version %d handed out twice", p.name, p.version)
		}
		seen[p.name][p.version] = true
		if got := mustGet(t, reader, p.name, p.version); got != p.value {
			t.Fatalf("%s version %d = %q, want %q", p.name, p.version, got, p.value)
		}
	}
	total := len(handles) * goroutines * puts
	for name, vs := range seen {
		e, err := reader.Info(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Versions) != len(vs) || int(e.Versions[len(e.Versions)-1].Version) != len(vs) {
			t.Fatalf("%s: %d versions stored, %d put", name, len(e.Versions), len(vs))
		}
		total -= len(vs)
	}
	if total != 0 {
		t.Fatalf("%d puts unaccounted for", total)
	}
}

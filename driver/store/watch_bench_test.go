package store

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkGetCachedWatch compares a cached Get kept current by the watch
// (one empty read of the inotify queue) with one kept current by a Stat
// (one lstat of the record's path), on the same store, 1,000 hot names.
//
//	go test ./driver/store -run '^$' -bench GetCachedWatch -count 5
func BenchmarkGetCachedWatch(b *testing.B) {
	ts := newTestStore(b, InitOptions{})
	ts.m.(*DirMedium).noSync = true
	pairs := make([]Pair, 1000)
	for i := range pairs {
		pairs[i] = Pair{Name: benchName(i), Value: fmt.Appendf(nil, "secret-value-%d", i)}
	}
	if _, err := ts.PutMany(context.Background(), pairs); err != nil {
		b.Fatal(err)
	}
	b.Run("watch", func(b *testing.B) { benchGets(b, ts.handle(b), len(pairs)) })
	b.Run("stat", func(b *testing.B) {
		m, err := OpenDir(ts.dir)
		if err != nil {
			b.Fatal(err)
		}
		s, err := Open(context.Background(), unwatchable{m}, KeyFile(ts.key))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchGets(b, s, len(pairs))
	})
}

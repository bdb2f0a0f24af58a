package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestDigestFollowsLatestVersions: two handles on one store agree; a put
// changes the digest (same value, new version), a copy of the folder taken
// before the put keeps the old digest with the same store ID: what status
// uses to name a manager with a stale copy.
func TestDigestFollowsLatestVersions(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, "a", "1")
	mustPut(t, ts.Store, "b", "1")
	d1, err := ts.Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d1.ID != ts.ID() || d1.Names != 2 || len(d1.Digest) != 16 {
		t.Fatalf("digest = %+v", d1)
	}
	stale := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(stale, os.DirFS(ts.dir)); err != nil {
		t.Fatal(err)
	}
	if d, _ := ts.handle(t).Digest(ctx); d != d1 {
		t.Fatalf("another handle: %+v, want %+v", d, d1)
	}
	mustPut(t, ts.Store, "b", "1")
	d2, _ := ts.Digest(ctx)
	if d2.Digest == d1.Digest || d2.ID != d1.ID || d2.Names != 2 {
		t.Fatalf("after a put: %+v (before %+v)", d2, d1)
	}
	if d, err := openStore(t, stale, KeyFile(ts.key)).Digest(ctx); err != nil || d != d1 {
		t.Fatalf("stale copy: %+v %v, want %+v", d, err, d1)
	}
	if err := ts.Remove(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	if d3, _ := ts.Digest(ctx); d3.Names != 1 || d3.Digest == d2.Digest {
		t.Fatalf("after rm: %+v", d3)
	}
}

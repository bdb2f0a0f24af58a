package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// TestHealthDigestKeptUntilStoreChanges: /health, read every 2 s by the
// agent, must not read the whole store each time. One digest serves every
// call until a write moves the store's change counter (here from another
// Store on the folder, as the put command does) or the digest ages out.
func TestHealthDigestKeptUntilStoreChanges(t *testing.T) {
	dir := t.TempDir()
	storeDir, key := filepath.Join(dir, "store"), filepath.Join(dir, "key")
	if err := store.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	m, err := store.OpenDir(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := store.Init(context.Background(), m, store.KeyFile(key), store.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	if _, err := writer.Put(context.Background(), "app_db", []byte("v1-xxxxxxxxxxxxxxxx")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvStoreDir: storeDir, EnvKeyFile: key, EnvAudit: "off", EnvLKGDir: filepath.Join(dir, "lkg")}
	cfg, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var computed atomic.Int64
	orig := computeDigest
	computeDigest = func(ctx context.Context, d backend.Digester) (backend.StoreDigest, error) {
		computed.Add(1)
		return orig(ctx, d)
	}
	defer func() { computeDigest = orig }()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s.digests.now = clock.now
	// Open the backend, as the first request does.
	if _, err := s.lazies[cfg.Default].Get(context.Background(), backend.Ref{Name: "missing"}); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("opening the store: %v", err)
	}

	first := s.metrics.Health().Stores
	for range 9 {
		if got := s.metrics.Health().Stores; got[cfg.Default] != first[cfg.Default] {
			t.Fatalf("digest changed with no write: %v then %v", first, got)
		}
	}
	if n := computed.Load(); n != 1 || first[cfg.Default].Names != 1 {
		t.Fatalf("10 /health on an unchanged store computed the digest %d times (want 1): %+v", n, first)
	}

	if _, err := writer.Put(context.Background(), "app_api", []byte("v1-yyyyyyyyyyyyyyyy")); err != nil {
		t.Fatal(err)
	}
	after := s.metrics.Health().Stores[cfg.Default]
	if after.Names != 2 || after.Digest == first[cfg.Default].Digest || computed.Load() != 2 {
		t.Fatalf("after a put /health shows %+v (computed %d times), want 2 names and a new digest", after, computed.Load())
	}
	s.metrics.Health()
	if n := computed.Load(); n != 2 {
		t.Fatalf("unchanged again, yet computed %d times (want 2)", n)
	}

	// A change the counter cannot see (other hands) shows within the age bound.
	clock.add(digestMaxAge)
	s.metrics.Health()
	if n := computed.Load(); n != 3 {
		t.Fatalf("a digest %s old was kept (computed %d times, want 3)", digestMaxAge, n)
	}

	// The loopback TCP port never computes it (not even when the kept one
	// is old), and shows none. A recorder's request comes from no socket.
	clock.add(digestMaxAge)
	w := httptest.NewRecorder()
	s.metrics.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/health", nil))
	if strings.Contains(w.Body.String(), `"stores"`) || computed.Load() != 3 {
		t.Fatalf("/health over TCP computed or showed digests (%d): %s", computed.Load(), w.Body.String())
	}
}

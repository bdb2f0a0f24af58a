package vault

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// TestLatestVersionReadsMetadataOnly: a token that may read only the
// metadata learns each new version, and nothing under data/ is asked.
func TestLatestVersionReadsMetadataOnly(t *testing.T) {
	t.Parallel()
	fake := vaulttest.New(t)
	fake.PutKV2("", "secret", "apps/db", map[string]any{"password": "p1"})
	tok := writeFile(t, "token", fake.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/metadata/*"}}))
	b := openFake(t, backend.Settings{setAddress: fake.URL, setTokenFile: tok, setPathTemplate: "apps/{{.Name}}"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	path, err := b.MetadataPath(backend.Ref{Name: "db", Field: "password"})
	if err != nil || path != "apps/db" {
		t.Fatalf("MetadataPath = %q, %v", path, err)
	}
	if v, err := b.LatestVersion(ctx, path); err != nil || v != 1 {
		t.Fatalf("LatestVersion = %d, %v; want 1", v, err)
	}
	fake.PutKV2("", "secret", "apps/db", map[string]any{"password": "p2"})
	fake.PutKV2("", "secret", "apps/db", map[string]any{"password": "p3"})
	fake.DeleteKV2("", "secret", "apps/db") // a deleted latest is still the current version
	if v, err := b.LatestVersion(ctx, path); err != nil || v != 3 {
		t.Fatalf("LatestVersion after two puts = %d, %v; want 3", v, err)
	}
	if _, err := b.LatestVersion(ctx, "apps/none"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("missing secret: %v, want ErrNotFound", err)
	}
	if n := fake.CountPrefix("/v1/secret/data/"); n != 0 {
		t.Fatalf("%d data reads, want none", n)
	}
	// The same token cannot read the value: the policy the README gives
	// is enough and no more.
	if _, err := b.Get(ctx, backend.Ref{Name: "db"}); !errors.Is(err, backend.ErrDenied) {
		t.Fatalf("Get with a metadata-only token: %v, want ErrDenied", err)
	}
}

// TestLatestVersionKVv1IsUnsupported: KV v1 keeps no versions; the error
// says so and the server is not asked.
func TestLatestVersionKVv1IsUnsupported(t *testing.T) {
	t.Parallel()
	fake := vaulttest.New(t)
	fake.EnableKV("", "kv", 1)
	fake.PutKV1("", "kv", "db", map[string]any{"v": "1"})
	tok := writeFile(t, "token", fake.RootToken())
	b := openFake(t, backend.Settings{setAddress: fake.URL, setTokenFile: tok, setMount: "kv", setKVVersion: "1"})
	before := fake.CountPrefix("/v1/kv/")
	_, err := b.LatestVersion(context.Background(), "db")
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "KV version 1") {
		t.Fatalf("KV v1: %v, want ErrUnsupported naming KV version 1", err)
	}
	if n := fake.CountPrefix("/v1/kv/"); n != before {
		t.Fatalf("KV v1 mount asked %d time(s)", n-before)
	}
}

// TestLatestVersionDenied names the token and the fix, like a read.
func TestLatestVersionDenied(t *testing.T) {
	t.Parallel()
	fake := vaulttest.New(t)
	fake.PutKV2("", "secret", "db", map[string]any{"v": "1"})
	tok := writeFile(t, "token", fake.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/data/*"}}))
	b := openFake(t, backend.Settings{setAddress: fake.URL, setTokenFile: tok})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := b.LatestVersion(ctx, "db")
	if !errors.Is(err, backend.ErrDenied) || !strings.Contains(err.Error(), "secret/metadata/db") || !strings.Contains(err.Error(), "token_file") {
		t.Fatalf("metadata without the capability: %v", err)
	}
}

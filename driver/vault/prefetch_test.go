package vault

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// TestPrefetchList: the backend lists every secret under the template's
// fixed folder, through subfolders, on KV v2 and v1; documents fetched
// whole answer a request's field and pinned version.
func TestPrefetchList(t *testing.T) {
	t.Parallel()
	fake := vaulttest.New(t)
	fake.PutKV2("", "secret", "apps/db", map[string]any{"user": "u", "password": "p1"})
	fake.PutKV2("", "secret", "apps/db", map[string]any{"user": "u", "password": "p2"})
	fake.PutKV2("", "secret", "apps/web/tls", map[string]any{"cert": "c"})
	fake.PutKV2("", "secret", "other/x", map[string]any{"v": "x"})
	fake.EnableKV("", "kv1", 1)
	fake.PutKV1("", "kv1", "apps/a", map[string]any{"v": "a"})
	tok := writeFile(t, "token", fake.RootToken())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	b := openFake(t, backend.Settings{setAddress: fake.URL, setTokenFile: tok, setPathTemplate: "apps/{{.Name}}"})
	got, err := b.List(ctx)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"apps/db", "apps/web/tls"}) {
		t.Fatalf("List = %q, %v", got, err)
	}
	doc, err := b.Fetch(ctx, "apps/db")
	if err != nil || doc.Version != 2 {
		t.Fatalf("Fetch: version %d, %v", doc.Version, err)
	}
	ref := backend.Ref{Name: "db", Field: "password"}
	if addr, ok := b.Address(ref); !ok || addr != "apps/db" {
		t.Fatalf("Address = %q %v", addr, ok)
	}
	if s, err := b.FromDocument(ref, doc); err != nil || string(s.Value) != "p2" || s.Version != 2 {
		t.Fatalf("FromDocument field: %q v%d, %v", s.Value, s.Version, err)
	}
	ref.Version = 1
	if _, err := b.FromDocument(ref, doc); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("FromDocument of an older pinned version: %v, want not found", err)
	}

	all := openFake(t, backend.Settings{setAddress: fake.URL, setTokenFile: tok})
	if got, err := all.List(ctx); err != nil || len(got) != 3 {
		t.Fatalf("whole mount: %q, %v", got, err)
	}
	v1 := openFake(t, backend.Settings{setAddress: fake.URL, setTokenFile: tok, setMount: "kv1", setKVVersion: "1", setPrefetchPath: "apps"})
	if got, err := v1.List(ctx); err != nil || !slices.Equal(got, []string{"apps/a"}) {
		t.Fatalf("KV v1: %q, %v", got, err)
	}
	// A template over the requester resolves per task: never from a copy.
	per := openFake(t, backend.Settings{setAddress: fake.URL, setTokenFile: tok, setPathTemplate: "{{.Service}}/{{.Name}}"})
	if _, ok := per.Address(backend.Ref{Name: "db", Service: "web"}); ok {
		t.Fatal("a varying path has an address")
	}
}

// TestPrefetchNeedsList: a policy that only reads data refuses the listing
// with ErrDenied, which the plugin logs with the fix.
func TestPrefetchNeedsList(t *testing.T) {
	t.Parallel()
	fake := vaulttest.New(t)
	fake.PutKV2("", "secret", "db", map[string]any{"v": "1"})
	tok := writeFile(t, "token", fake.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/data/*"}}))
	b := openFake(t, backend.Settings{setAddress: fake.URL, setTokenFile: tok})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.List(ctx); !errors.Is(err, backend.ErrDenied) {
		t.Fatalf("List without list capability: %v, want ErrDenied", err)
	}
	tok2 := writeFile(t, "token2", fake.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/data/*", "secret/metadata/*"}}))
	b2 := openFake(t, backend.Settings{setAddress: fake.URL, setTokenFile: tok2})
	if got, err := b2.List(ctx); err != nil || !slices.Equal(got, []string{"db"}) {
		t.Fatalf("List with metadata access: %q, %v", got, err)
	}
}

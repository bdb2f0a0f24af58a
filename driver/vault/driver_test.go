package vault_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/vault"
	_ "github.com/swarmkeep/swarmkeep/driver/vault" // registers "vault"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// TestDriver runs the backend behind the real driver, as the plugin does:
// labels in, value or one error line out, DoNotReuse for a per-service path.
func TestDriver(t *testing.T) {
	t.Parallel()
	fake := vaulttest.New(t)
	fake.PutKV2("", "secret", "web/db", map[string]any{"password": "s3cret", "user": "app"})
	// A stack secret's stored name carries its stack: web_db is web/db.
	fake.PutKV2("", "secret", "apps/api/web/db", map[string]any{"password": "per-service"})
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(fake.RootToken()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	set := backend.Settings{"address": fake.URL, "token_file": tokenFile}
	perService := backend.Settings{"address": fake.URL, "token_file": tokenFile, "path_template": "apps/{{.Service}}/{{.Name}}"}
	d, err := driver.New(driver.Options{Default: "vault", Timeout: 2 * time.Second, Routes: []driver.Route{
		{Name: "vault", Backend: backend.NewLazy(vault.Type, set)},
		{Name: "per-service", Backend: backend.NewLazy(vault.Type, perService)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := context.Background()
	labels := func(kv ...string) map[string]string {
		m := map[string]string{driver.StackNamespaceLabel: "web"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	r := d.Get(ctx, driver.Request{SecretName: "web_db", SecretLabels: labels(backend.LabelPath, "web/db", backend.LabelField, "password"), ServiceName: "web_api"})
	if r.Err != "" || string(r.Value) != "s3cret" || r.DoNotReuse {
		t.Fatalf("field: %+v", r)
	}
	r = d.Get(ctx, driver.Request{SecretName: "web_db", SecretLabels: labels(backend.LabelPath, "web/db"), ServiceName: "web_api"})
	if r.Err != "" || string(r.Value) != `{"password":"s3cret","user":"app"}` {
		t.Fatalf("document: %+v", r)
	}
	r = d.Get(ctx, driver.Request{SecretName: "web_db", SecretLabels: labels(driver.LabelBackend, "per-service", backend.LabelField, "password"), ServiceName: "api"})
	if r.Err != "" || string(r.Value) != "per-service" || !r.DoNotReuse {
		t.Fatalf("per-service: %+v", r)
	}
	r = d.Get(ctx, driver.Request{SecretName: "web_db", SecretLabels: labels(backend.LabelPath, "web/db", backend.LabelField, "pass")})
	if !strings.Contains(r.Err, `no field "pass"`) || strings.Contains(r.Err, "s3cret") || r.Value != nil {
		t.Fatalf("missing field: %+v", r)
	}
	t.Log(r.Err)
	fake.SetLatency(5 * time.Second)
	start := time.Now()
	r = d.Get(ctx, driver.Request{SecretName: "web_db", SecretLabels: labels(backend.LabelPath, "web/db")})
	if r.Err == "" || time.Since(start) > 3*time.Second {
		t.Fatalf("slow server: %+v after %s", r, time.Since(start))
	}
	t.Log(r.Err)
}

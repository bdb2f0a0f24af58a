package vault_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/vault"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// TestErrorLines reads through the real driver, as the plugin does, with
// backends whose settings or credential are wrong, and checks the whole
// line the engine shows: it names the secret, the setting or credential to
// change and the way to change it, never blames the secret's labels, never
// holds the token, and fits the driver's line.
func TestErrorLines(t *testing.T) {
	t.Parallel()
	ca := vaulttest.NewCA(t)
	tlsFake := vaulttest.New(t, vaulttest.WithTLS(ca.Issue(t, "vault")))
	fake := vaulttest.New(t)
	fake.PutKV2("", "secret", "db", map[string]any{"password": "s3cret"})
	fake.EnableKV("", "kv1", 1)
	fake.PutKV1("", "kv1", "db", map[string]any{"password": "s3cret"})

	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	revoked := fake.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/data/*"}, TTL: time.Hour})
	revokedFile := file("revoked", revoked)
	fake.RevokeToken(revoked)
	root := file("root", fake.RootToken())
	tlsHost := strings.TrimPrefix(tlsFake.URL, "https://")

	cases := []struct {
		name  string
		set   backend.Settings
		class driver.Class
		want  []string
	}{
		{name: "http to an https server", class: driver.ClassSettings,
			set:  backend.Settings{"address": "http://" + tlsHost, "token_file": file("tls-root", tlsFake.RootToken())},
			want: []string{`setting "address"`, "address=https://" + tlsHost}},
		{name: "revoked token", class: driver.ClassDenied,
			set:  backend.Settings{"address": fake.URL, "token_file": revokedFile},
			want: []string{"token_file", revokedFile, "revoked or expired", "write a new token"}},
		{name: "mount typo", class: driver.ClassSettings,
			set:  backend.Settings{"address": fake.URL, "token_file": root, "mount": "secrte"},
			want: []string{`no mount "secrte"`, `"mount" setting`}},
		{name: "v1 mount read as v2", class: driver.ClassSettings,
			set:  backend.Settings{"address": fake.URL, "token_file": root, "mount": "kv1"},
			want: []string{`mount "kv1" is KV version 1`, "kv_version=1"}},
	}
	typ, err := backend.Lookup(vault.Type)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var ev driver.Event
			d, err := driver.New(driver.Options{Timeout: 3 * time.Second,
				Routes:   []driver.Route{{Name: "vault", Backend: backend.NewLazy(vault.Type, tc.set), Caps: typ.Caps}},
				Observer: func(e driver.Event) { mu.Lock(); ev = e; mu.Unlock() }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			req := driver.Request{SecretName: "db", SecretLabels: map[string]string{backend.LabelField: "password"}}
			r := d.Get(context.Background(), req)
			t.Log(r.Err)
			mu.Lock()
			class := ev.Class
			mu.Unlock()
			if r.Err == "" || class != tc.class {
				t.Fatalf("class %s, want %s: %q", class, tc.class, r.Err)
			}
			if !strings.HasPrefix(r.Err, `swarmkeep: secret "db": `) || !strings.Contains(r.Err, "; fix: ") || len(r.Err) > 400 || strings.HasSuffix(r.Err, "...") {
				t.Errorf("not a whole error line: %q", r.Err)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Err, w) {
					t.Errorf("line lacks %q: %q", w, r.Err)
				}
			}
			// The labels are fine; the token is never shown.
			for _, bad := range []string{"swarmkeep.name", "label", "invalid reference", revoked, fake.RootToken(), tlsFake.RootToken()} {
				if strings.Contains(r.Err, bad) {
					t.Errorf("line says %q: %q", bad, r.Err)
				}
			}
		})
	}
}

package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/openbao/openbao/api/v2"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// Environment variables that point the suite at a real server instead of
// the in-process fake (see README.md, "Testing against a real server").
const (
	envAddr      = "SWARMKEEP_VAULT_ADDR"
	envTokenFile = "SWARMKEEP_VAULT_TOKEN_FILE"
	envCACert    = "SWARMKEEP_VAULT_CACERT"
	envMount     = "SWARMKEEP_VAULT_MOUNT"
)

// testEnv is a server to test against: the fake by default, a real Vault or
// OpenBao when envAddr is set. Tests seed it through the api client in both
// cases, so the same assertions hold for both.
type testEnv struct {
	fake      *vaulttest.Server // nil against a real server
	addr      string
	caFile    string
	mount     string // a KV v2 mount
	tokenFile string // holds a token that may do anything the suite needs
	admin     *api.Client
	prefix    string // unique per test, so runs against one server never collide

	mu      sync.Mutex
	written []string // KV v2 paths to delete from a real server
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{prefix: "swarmkeep-test/" + randHex(t) + "/"}
	if addr := os.Getenv(envAddr); addr != "" {
		e.addr, e.caFile, e.tokenFile = addr, os.Getenv(envCACert), os.Getenv(envTokenFile)
		if e.tokenFile == "" {
			t.Fatalf("%s is set but %s is not", envAddr, envTokenFile)
		}
		e.mount = envOr(envMount, "secret")
		tok, err := os.ReadFile(e.tokenFile)
		if err != nil {
			t.Fatal(err)
		}
		e.admin = e.client(t, strings.TrimSpace(string(tok)))
		t.Cleanup(func() { e.cleanup(t) })
		return e
	}
	e.fake = vaulttest.New(t)
	e.addr, e.mount = e.fake.URL, "secret"
	e.tokenFile = writeFile(t, "root-token", e.fake.RootToken())
	e.admin = e.client(t, e.fake.RootToken())
	return e
}

// needFake skips a test that needs to control the server (its clock, its
// roles, its availability), which only the fake allows.
func (e *testEnv) needFake(t *testing.T) *vaulttest.Server {
	t.Helper()
	if e.fake == nil {
		t.Skip("needs the in-process fake server")
	}
	return e.fake
}

func (e *testEnv) client(t *testing.T, token string) *api.Client {
	t.Helper()
	cfg := api.NewConfig()
	cfg.Address = e.addr
	if e.caFile != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: e.caFile}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// path is p under this test's prefix.
func (e *testEnv) path(p string) string { return e.prefix + p }

// put writes a KV v2 version at path(p) and returns its number.
func (e *testEnv) put(t *testing.T, p string, data map[string]any) int {
	t.Helper()
	s, err := e.admin.KVv2(e.mount).Put(ctxT(t), e.path(p), data)
	if err != nil {
		t.Fatalf("put %s: %v", p, err)
	}
	e.mu.Lock()
	e.written = append(e.written, e.path(p))
	e.mu.Unlock()
	return s.VersionMetadata.Version
}

// settings are the backend settings for this server with the admin token,
// plus extra key/value pairs.
func (e *testEnv) settings(extra ...string) backend.Settings {
	s := backend.Settings{setAddress: e.addr, setTokenFile: e.tokenFile, setMount: e.mount}
	if e.caFile != "" {
		s[setTLSCA] = e.caFile
	}
	for i := 0; i+1 < len(extra); i += 2 {
		s[extra[i]] = extra[i+1]
	}
	return s
}

// kvMount mounts a fresh KV engine of version v and returns its path.
func (e *testEnv) kvMount(t *testing.T, c *api.Client, v int) string {
	t.Helper()
	name := "swarmkeep-test-" + randHex(t)
	err := c.Sys().MountWithContext(ctxT(t), name, &api.MountInput{Type: "kv", Options: map[string]string{"version": fmt.Sprint(v)}})
	if err != nil {
		t.Fatalf("mount %s: %v", name, err)
	}
	t.Cleanup(func() { c.Sys().Unmount(name) }) //nolint:errcheck // best effort
	return name
}

// namespace creates a namespace and returns its name, or skips the test on
// a server without namespaces (Vault community edition).
func (e *testEnv) namespace(t *testing.T) string {
	t.Helper()
	name := "swarmkeep-test-" + randHex(t)
	if _, err := e.admin.Sys().CreateNamespaceWithContext(ctxT(t), name, nil); err != nil {
		t.Skipf("server has no namespaces: %v", err)
	}
	t.Cleanup(func() { e.admin.Sys().DeleteNamespace(name) }) //nolint:errcheck // best effort
	return name
}

// limitedToken returns a token that may read only KV v2 paths p (under this
// test's prefix) of the main mount.
func (e *testEnv) limitedToken(t *testing.T, ps ...string) string {
	t.Helper()
	var full []string
	for _, p := range ps {
		full = append(full, e.mount+"/data/"+e.path(p))
	}
	if e.fake != nil {
		return e.fake.CreateToken(vaulttest.TokenOptions{Paths: full, TTL: time.Hour, Renewable: true})
	}
	name := "swarmkeep-test-" + randHex(t)
	var hcl strings.Builder
	for _, p := range full {
		fmt.Fprintf(&hcl, "path %q { capabilities = [\"read\"] }\n", p)
	}
	if err := e.admin.Sys().PutPolicyWithContext(ctxT(t), name, hcl.String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.admin.Sys().DeletePolicy(name) }) //nolint:errcheck // best effort
	sec, err := e.admin.Auth().Token().CreateWithContext(ctxT(t), &api.TokenCreateRequest{Policies: []string{name}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	return sec.Auth.ClientToken
}

// revoke revokes a token made by limitedToken.
func (e *testEnv) revoke(t *testing.T, token string) {
	t.Helper()
	if e.fake != nil {
		e.fake.RevokeToken(token)
		return
	}
	if err := e.admin.Auth().Token().RevokeTreeWithContext(ctxT(t), token); err != nil {
		t.Fatal(err)
	}
}

// cleanup deletes what the test wrote to a real server.
func (e *testEnv) cleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.written {
		if err := e.admin.KVv2(e.mount).DeleteMetadata(ctx, p); err != nil {
			t.Logf("cleanup %s: %v", p, err)
		}
	}
}

// open opens a backend and closes it when the test ends.
func (e *testEnv) open(t *testing.T, s backend.Settings) *kvBackend {
	t.Helper()
	b, err := openBackend(s)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// get calls b.Get with a request-sized deadline.
func get(t *testing.T, b *kvBackend, ref backend.Ref) (backend.Secret, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return b.Get(ctx, ref)
}

// mustGet is get that fails the test on an error and returns the value.
func mustGet(t *testing.T, b *kvBackend, ref backend.Ref) string {
	t.Helper()
	s, err := get(t, b, ref)
	if err != nil {
		t.Fatalf("get %+v: %v", ref, err)
	}
	return string(s.Value)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// replaceFile swaps a file's content by rename, as Vault Agent and
// Kubernetes do, so a reader never sees half a token.
func replaceFile(t *testing.T, p, content string) {
	t.Helper()
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func statT(t *testing.T, p string) os.FileInfo {
	t.Helper()
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// writeInPlace rewrites a file in place and puts its mtime back, a change
// its stat does not show.
func writeInPlace(t *testing.T, p, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func randHex(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func envOr(k, dflt string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return dflt
}

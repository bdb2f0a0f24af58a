package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// vaultServer assembles a plugin with one Vault instance, its own
// last-known-good folder under dir, and prefetch as the settings say.
func vaultServer(t *testing.T, v *vaulttest.Server, dir, token string) *Server {
	t.Helper()
	key := filepath.Join(dir, "key")
	if _, err := os.Stat(key); err != nil {
		if err := store.GenerateKeyFile(key); err != nil {
			t.Fatal(err)
		}
	}
	q := url.Values{"address": {v.URL}, "token_file": {token}}
	env := map[string]string{
		EnvBackends: "vault:vault?" + q.Encode(), EnvStoreDir: filepath.Join(dir, "store"), EnvKeyFile: key,
		EnvLKGDir: filepath.Join(dir, "lkg"), EnvAudit: "off", EnvPolicyFile: filepath.Join(dir, "policy.yaml"),
	}
	return serverFromEnv(t, env, Options{})
}

func askField(t *testing.T, h http.Handler, name, field string) driver.Response {
	t.Helper()
	body, _ := json.Marshal(driver.Request{SecretName: name, ServiceName: "web",
		SecretLabels: map[string]string{"swarmkeep.backend": "vault", "swarmkeep.field": field}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, driver.GetSecretPath, bytes.NewReader(body)))
	var resp driver.Response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestPrefetchServesEveryName: a follower's plugin that was never asked for
// a name (only the leader's is) prefetches every Vault secret, and serves
// each through a Vault outage, also after a restart; before the prefetch a
// follower had no copy and failed every replacement task.
func TestPrefetchServesEveryName(t *testing.T) {
	v := vaulttest.New(t)
	v.PutKV2("", "secret", "db", map[string]any{"user": "app", "password": "pw-1"})
	v.PutKV2("", "secret", "shared/api", map[string]any{"token": "tk-1"})
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(v.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/data/*", "secret/metadata/*"}})+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	leader := vaultServer(t, v, filepath.Join(dir, "a"), tok)
	follower := vaultServer(t, v, filepath.Join(dir, "b"), tok)
	if r := askField(t, leader.Handler(), "db", "password"); string(r.Value) != "pw-1" {
		t.Fatalf("leader: %q %q", r.Value, r.Err)
	}
	c, ok := follower.Cache("vault")
	if !ok {
		t.Fatal("no cache in front of vault")
	}
	follower.Warm(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var saved, listed int
	var err error
	waitUntil(t, func() bool { saved, listed, err = c.Prefetch(ctx); return err == nil })
	if listed != 2 {
		t.Fatalf("prefetch: %d saved of %d listed, %v", saved, listed, err)
	}
	v.SetSealed(true)
	for name, want := range map[string][2]string{"db": {"password", "pw-1"}, "shared/api": {"token", "tk-1"}} {
		r := askField(t, follower.Handler(), name, want[0])
		if string(r.Value) != want[1] || r.Err != "" {
			t.Fatalf("follower during the outage: %s = %q %q", name, r.Value, r.Err)
		}
	}
	if c.Stats().PrefetchStale == 0 {
		t.Fatal("the answers did not come from the prefetched copies")
	}
	// A follower restarted during the outage still has the copies.
	follower.Close()
	again := vaultServer(t, v, filepath.Join(dir, "b"), tok)
	if r := askField(t, again.Handler(), "shared/api", "token"); string(r.Value) != "tk-1" {
		t.Fatalf("restarted follower: %q %q", r.Value, r.Err)
	}
	// A name Vault never held is not invented.
	if r := askField(t, again.Handler(), "nosuch", "x"); r.Err == "" {
		t.Fatalf("unknown name answered: %q", r.Value)
	}
}

// TestPrefetchForgetsDeletedAfterRestart: a Vault secret prefetched before
// a restart and deleted while the plugin was down is not served during a
// later outage once a round has run: a revoked credential stays revoked.
// Before, the new run forgot only the copies it had saved itself.
func TestPrefetchForgetsDeletedAfterRestart(t *testing.T) {
	v := vaulttest.New(t)
	v.PutKV2("", "secret", "db", map[string]any{"password": "pw-1"})
	v.PutKV2("", "secret", "revoked", map[string]any{"token": "tk-1"})
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(v.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/data/*", "secret/metadata/*"}})+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	round := func(s *Server) int {
		t.Helper()
		c, ok := s.Cache("vault")
		if !ok {
			t.Fatal("no cache in front of vault")
		}
		s.Warm(nil)
		var listed int
		var err error
		waitUntil(t, func() bool { _, listed, err = c.Prefetch(ctx); return err == nil })
		return listed
	}
	first := vaultServer(t, v, filepath.Join(dir, "p"), tok)
	if n := round(first); n != 2 {
		t.Fatalf("first run listed %d", n)
	}
	first.Close()
	v.DeleteKV2("", "secret", "revoked")
	again := vaultServer(t, v, filepath.Join(dir, "p"), tok)
	round(again)
	v.SetSealed(true)
	if r := askField(t, again.Handler(), "revoked", "token"); len(r.Value) != 0 || r.Err == "" {
		t.Fatalf("a secret deleted in Vault was served during the outage: %d bytes, %q", len(r.Value), r.Err)
	}
	if r := askField(t, again.Handler(), "db", "password"); string(r.Value) != "pw-1" {
		t.Fatalf("db during the outage: %q %q", r.Value, r.Err)
	}
}

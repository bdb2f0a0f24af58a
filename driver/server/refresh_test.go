package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// askVault asks h for name through the plugin protocol.
func askVault(t *testing.T, h http.Handler, name string) driver.Response {
	t.Helper()
	body, _ := json.Marshal(driver.Request{SecretName: name, SecretLabels: map[string]string{"swarmkeep.backend": "vault"}, ServiceName: "web"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, driver.GetSecretPath, bytes.NewReader(body)))
	var resp driver.Response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

func postRefresh(t *testing.T, c *http.Client, q url.Values) (int, metrics.RefreshReply) {
	t.Helper()
	resp, err := c.Post("http://swarmkeep/refresh?"+q.Encode(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep metrics.RefreshReply
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, rep
}

// TestRefreshEndpoint: a Vault value changed outside swarmkeep is answered
// from the cache until CACHE_TTL, or until POST /refresh on the root-only
// metrics socket drops the copy; the loopback port refuses the refresh.
func TestRefreshEndpoint(t *testing.T) {
	v := vaulttest.New(t)
	v.PutKV2("", "secret", "db", map[string]any{"value": "one"})
	dir, err := os.MkdirTemp("/tmp", "rf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(v.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/data/*"}})+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key")
	if err := store.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	q := url.Values{"address": {v.URL}, "token_file": {tok}}
	env := map[string]string{
		EnvBackends: "local:file vault:vault?" + q.Encode(), EnvStoreDir: filepath.Join(dir, "store"), EnvKeyFile: key,
		EnvLKGDir: filepath.Join(dir, "lkg"), EnvReplicaDir: filepath.Join(dir, "replica"), EnvAudit: "off",
		EnvPolicyFile: filepath.Join(dir, "policy.yaml"), EnvSocket: filepath.Join(dir, "p.sock"),
		EnvMetricsSocket: filepath.Join(dir, "m.sock"), EnvMetricsAddr: addr,
	}
	s := serverFromEnv(t, env, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	defer func() { cancel(); <-served }()

	if r := askVault(t, s.Handler(), "db"); string(r.Value) != `{"value":"one"}` {
		t.Fatalf("first: %q %q", r.Value, r.Err)
	}
	v.PutKV2("", "secret", "db", map[string]any{"value": "two"})
	if r := askVault(t, s.Handler(), "db"); string(r.Value) != `{"value":"one"}` {
		t.Fatalf("within the TTL the cached copy answers: %q %q", r.Value, r.Err)
	}
	unix := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", env[EnvMetricsSocket])
		}}}
	var code int
	var rep metrics.RefreshReply
	waitUntil(t, func() bool {
		c := &http.Client{Timeout: time.Second, Transport: unix.Transport}
		resp, err := c.Get("http://swarmkeep/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	tcp := &http.Client{Timeout: 5 * time.Second}
	resp, err := tcp.Post("http://"+addr+"/refresh", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refresh over TCP: HTTP %d, want 403", resp.StatusCode)
	}
	if code, rep = postRefresh(t, unix, url.Values{"backend": {"nosuch"}}); code != http.StatusBadRequest {
		t.Fatalf("unknown backend: %d %+v", code, rep)
	}
	code, rep = postRefresh(t, unix, url.Values{"name": {"db"}})
	if code != http.StatusOK || len(rep.Refreshed) != 2 || rep.Refreshed[1].Backend != "vault" ||
		rep.Refreshed[1].Action != "dropped 1 cached copies; the next request reads the backend" {
		t.Fatalf("refresh: %d %+v", code, rep)
	}
	if r := askVault(t, s.Handler(), "db"); string(r.Value) != `{"value":"two"}` {
		t.Fatalf("after refresh: %q %q", r.Value, r.Err)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

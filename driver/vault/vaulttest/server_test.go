package vaulttest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	api "github.com/openbao/openbao/api/v2"
)

// These tests pin the fake's answers to what the real servers send (see
// README.md in the parent directory for the sources).

func client(t *testing.T, s *Server, token string) *api.Client {
	t.Helper()
	cfg := api.NewConfig()
	cfg.Address = s.URL
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// raw sends one request and returns the status and the decoded body.
func raw(t *testing.T, s *Server, method, path, token, ns string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, nil)
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	if ns != "" {
		req.Header.Set("X-Vault-Namespace", ns)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, body
}

func TestKV2Shapes(t *testing.T) {
	s := New(t)
	ctx := context.Background()
	kv := client(t, s, s.RootToken()).KVv2("secret")
	if _, err := kv.Put(ctx, "a/b", map[string]any{"n": json.Number("1.50"), "s": "x"}); err != nil {
		t.Fatal(err)
	}
	kv.Put(ctx, "a/b", map[string]any{"s": "y"}) //nolint:errcheck

	got, err := kv.GetVersion(ctx, "a/b", 1)
	if err != nil || got.Data["s"] != "x" || got.Data["n"] != json.Number("1.5") || got.VersionMetadata.Version != 1 {
		t.Fatalf("version 1: %+v %v", got, err)
	}
	if got.VersionMetadata.CreatedTime.IsZero() || !got.VersionMetadata.DeletionTime.IsZero() {
		t.Fatalf("metadata: %+v", got.VersionMetadata)
	}

	// Missing secret and missing version: a 404 with an empty error list.
	for _, p := range []string{"/v1/secret/data/nope", "/v1/secret/data/a/b?version=7"} {
		code, body := raw(t, s, "GET", p, s.RootToken(), "")
		if code != 404 || len(body) != 1 || body["errors"] == nil || len(body["errors"].([]any)) != 0 {
			t.Fatalf("%s: %d %v, want 404 {\"errors\":[]}", p, code, body)
		}
	}

	// A deleted version: a 404 that still carries the metadata, which the
	// api client turns into a secret with nil Data and no error.
	if err := kv.DeleteVersions(ctx, "a/b", []int{1}); err != nil {
		t.Fatal(err)
	}
	code, body := raw(t, s, "GET", "/v1/secret/data/a/b?version=1", s.RootToken(), "")
	data, _ := body["data"].(map[string]any)
	if code != 404 || data == nil || data["data"] != nil || data["metadata"].(map[string]any)["deletion_time"] == "" {
		t.Fatalf("deleted: %d %v", code, body)
	}
	got, err = kv.GetVersion(ctx, "a/b", 1)
	if err != nil || got.Data != nil || got.VersionMetadata.DeletionTime.IsZero() {
		t.Fatalf("deleted through the api client: %+v %v", got, err)
	}
	if err := kv.Destroy(ctx, "a/b", []int{2}); err != nil {
		t.Fatal(err)
	}
	got, err = kv.Get(ctx, "a/b")
	if err != nil || got.Data != nil || !got.VersionMetadata.Destroyed {
		t.Fatalf("destroyed: %+v %v", got, err)
	}

	// A KV v1 style path on a v2 mount: 404 with a warning.
	code, body = raw(t, s, "GET", "/v1/secret/a/b", s.RootToken(), "")
	if w, _ := body["warnings"].([]any); code != 404 || len(w) != 1 || !strings.Contains(w[0].(string), "versioned K/V") {
		t.Fatalf("v1 path on v2: %d %v", code, body)
	}
	// No mount: Vault's router error.
	code, body = raw(t, s, "GET", "/v1/nomount/x", s.RootToken(), "")
	if code != 404 || !strings.Contains(body["errors"].([]any)[0].(string), "no handler for route") {
		t.Fatalf("no mount: %d %v", code, body)
	}
}

func TestKV1AndNamespaces(t *testing.T) {
	s := New(t)
	ctx := context.Background()
	root := client(t, s, s.RootToken())
	if _, err := root.Sys().CreateNamespaceWithContext(ctx, "team", nil); err != nil {
		t.Fatal(err)
	}
	ns := root.WithNamespace("team")
	if err := ns.Sys().MountWithContext(ctx, "kv", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := ns.KVv1("kv").Put(ctx, "p", map[string]any{"n": json.Number("1.50")}); err != nil {
		t.Fatal(err)
	}
	got, err := ns.KVv1("kv").Get(ctx, "p")
	if err != nil || got.Data["n"] != json.Number("1.50") || got.Raw.LeaseDuration != 2764800 {
		t.Fatalf("kv1 read: %+v %v", got, err)
	}
	if _, err := root.KVv1("kv").Get(ctx, "p"); err == nil {
		t.Fatal("the namespace's mount is visible from the root namespace")
	}
	// A token of the namespace cannot leave it.
	tok := s.CreateToken(TokenOptions{Namespace: "team", Paths: []string{"kv/*"}})
	if code, _ := raw(t, s, "GET", "/v1/kv/p", tok, "team"); code != 200 {
		t.Fatalf("token in its namespace: %d", code)
	}
	if code, _ := raw(t, s, "GET", "/v1/kv/p", tok, ""); code != 403 {
		t.Fatalf("token outside its namespace: %d", code)
	}
}

func TestTokens(t *testing.T) {
	s := New(t)
	clk := NewClock(time.Now())
	s.SetClock(clk.Now)
	ctx := context.Background()
	s.PutKV2("", "secret", "p", map[string]any{"a": "b"})
	tok := s.CreateToken(TokenOptions{Paths: []string{"secret/data/p"}, TTL: 2 * time.Second, MaxTTL: 3 * time.Second, Renewable: true})
	c := client(t, s, tok)

	look, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if ttl, _ := look.TokenTTL(); err != nil || ttl <= 0 || ttl > 2*time.Second {
		t.Fatalf("lookup-self: %v %v", ttl, err)
	}
	if _, err := c.KVv2("secret").Get(ctx, "other"); !isStatus(err, 403) {
		t.Fatalf("policy refusal: %v", err)
	}
	clk.Advance(1100 * time.Millisecond)
	ren, err := c.Auth().Token().RenewSelfWithContext(ctx, 2)
	if err != nil || ren.Auth.LeaseDuration != 1 || len(ren.Warnings) != 1 {
		t.Fatalf("renewal capped by max TTL: %+v %v", ren, err)
	}
	clk.Advance(2 * time.Second)
	// Vault 1.14 answers a dead token exactly as a policy refusal.
	_, err = c.KVv2("secret").Get(ctx, "p")
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 403 || len(re.Errors) != 1 || re.Errors[0] != errDenied {
		t.Fatalf("expired token: %v", err)
	}

	if _, err := client(t, s, s.RootToken()).Auth().Token().RenewSelfWithContext(ctx, 0); !isStatus(err, 400) {
		t.Fatalf("renewing the root token: %v", err)
	}
	fixed := s.CreateToken(TokenOptions{TTL: time.Hour})
	if _, err := client(t, s, fixed).Auth().Token().RenewSelfWithContext(ctx, 0); !isStatus(err, 400) {
		t.Fatalf("renewing a non-renewable token: %v", err)
	}
	if code, _ := raw(t, s, "GET", "/v1/secret/data/p", "", ""); code != 403 {
		t.Fatalf("no token: %d", code)
	}
}

func TestLogins(t *testing.T) {
	s := New(t)
	ctx := context.Background()
	s.AddAppRole(AppRole{RoleID: "r", SecretID: "sid", TokenTTL: time.Minute})
	s.AddJWTRole(JWTRole{Name: "j", BoundSubject: "me", TokenTTL: time.Minute})
	c := client(t, s, "")
	sec, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": "r", "secret_id": "sid"})
	if err != nil || sec.Auth.ClientToken == "" || sec.Auth.LeaseDuration != 60 || !sec.Auth.Renewable {
		t.Fatalf("approle: %+v %v", sec, err)
	}
	for body, want := range map[string]string{
		`{"role_id":"r","secret_id":"bad"}`:    "invalid secret id",
		`{"role_id":"nope","secret_id":"sid"}`: "invalid role ID",
		`{"role_id":"r"}`:                      "missing secret_id",
		`{"secret_id":"x"}`:                    "missing role_id",
	} {
		var m map[string]any
		json.Unmarshal([]byte(body), &m) //nolint:errcheck
		_, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", m)
		if !isStatus(err, 400) || !strings.Contains(err.Error(), want) {
			t.Errorf("approle %s: %v", body, err)
		}
	}
	jwt := s.SignJWT("me", time.Minute)
	if sec, err := c.Logical().WriteWithContext(ctx, "auth/jwt/login", map[string]any{"role": "j", "jwt": jwt}); err != nil || sec.Auth.ClientToken == "" {
		t.Fatalf("jwt: %+v %v", sec, err)
	}
	for _, tc := range []struct{ role, jwt, want string }{
		{"j", s.SignJWT("you", time.Minute), "bound subject"},
		{"nope", jwt, `role "nope" could not be found`},
		{"j", jwt[:len(jwt)-4] + "AAAA", "error validating token"},
		{"j", "", "missing token"},
	} {
		_, err := c.Logical().WriteWithContext(ctx, "auth/jwt/login", map[string]any{"role": tc.role, "jwt": tc.jwt})
		if !isStatus(err, 400) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("jwt %s: %v", tc.want, err)
		}
	}
	// Unknown auth mount: an ordinary path, refused without a token.
	if _, err := c.Logical().WriteWithContext(ctx, "auth/none/login", map[string]any{}); !isStatus(err, 403) {
		t.Fatalf("unknown mount: %v", err)
	}
}

func TestControls(t *testing.T) {
	s := New(t)
	ctx := context.Background()
	c := client(t, s, s.RootToken())
	s.SetSealed(true)
	if _, err := c.KVv2("secret").Get(ctx, "x"); !isStatus(err, 503) {
		t.Fatalf("sealed: %v", err)
	}
	s.SetSealed(false)
	s.Stop()
	if _, err := c.KVv2("secret").Get(ctx, "x"); err == nil || isStatus(err, 404) {
		t.Fatalf("stopped: %v", err)
	}
	s.Restart(t)
	if _, err := c.KVv2("secret").Get(ctx, "x"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("restarted: %v", err)
	}
	s.SetLatency(time.Second)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.KVv2("secret").Get(short, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("latency: %v", err)
	}
	// The request made while stopped never arrived.
	if s.Count("/v1/secret/data/x") != 3 || s.Total() != 3 {
		t.Fatalf("counts: %d %d", s.Count("/v1/secret/data/x"), s.Total())
	}
}

func isStatus(err error, code int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}

func TestAdmin(t *testing.T) {
	s := New(t)
	ctx := context.Background()
	root := client(t, s, s.RootToken())
	s.PutKV2("", "secret", "app/a", map[string]any{"k": "v"})
	s.PutKV2("", "secret", "app/b", map[string]any{"k": "v"})
	err := root.Sys().PutPolicyWithContext(ctx, "app", `path "secret/data/app/a" { capabilities = ["read"] }
path "secret/data/app/b" { capabilities = ["deny"] }`)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"app"}, TTL: "1h"})
	if err != nil || sec.Auth.LeaseDuration != 3600 || !sec.Auth.Renewable {
		t.Fatalf("create: %+v %v", sec, err)
	}
	c := client(t, s, sec.Auth.ClientToken)
	if _, err := c.KVv2("secret").Get(ctx, "app/a"); err != nil {
		t.Fatalf("allowed: %v", err)
	}
	if _, err := c.KVv2("secret").Get(ctx, "app/b"); !isStatus(err, 403) {
		t.Fatalf("denied: %v", err)
	}
	if _, err := c.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"app"}}); !isStatus(err, 403) {
		t.Fatalf("create without the ACL: %v", err)
	}
	if err := root.Auth().Token().RevokeTreeWithContext(ctx, sec.Auth.ClientToken); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KVv2("secret").Get(ctx, "app/a"); !isStatus(err, 403) {
		t.Fatalf("revoked: %v", err)
	}
	if err := root.KVv2("secret").DeleteMetadata(ctx, "app/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Get(ctx, "app/a"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("after DeleteMetadata: %v", err)
	}
}

func TestClock(t *testing.T) {
	start := time.Unix(1000, 0)
	clk := NewClock(start)
	now, _ := clk.NewTimer(0)
	if got := <-now; !got.Equal(start) {
		t.Fatalf("timer of 0 fired at %v", got)
	}
	late, _ := clk.NewTimer(2 * time.Second)
	soon, stopSoon := clk.NewTimer(time.Second)
	if p := clk.Pending(); len(p) != 2 || p[0] != time.Second || clk.WaitTimer(t) != time.Second {
		t.Fatalf("pending %v", p)
	}
	clk.Advance(999 * time.Millisecond)
	select {
	case <-soon:
		t.Fatal("timer fired early")
	default:
	}
	clk.Advance(time.Millisecond)
	if got := <-soon; !got.Equal(start.Add(time.Second)) || stopSoon() {
		t.Fatalf("fired at %v, or stopped after firing", got)
	}
	if !clk.Now().Equal(start.Add(time.Second)) {
		t.Fatalf("Now = %v", clk.Now())
	}
	_, stop := clk.NewTimer(time.Hour)
	if !stop() || len(clk.Pending()) != 1 {
		t.Fatalf("stopped timer still pending: %v", clk.Pending())
	}
	clk.Advance(time.Second)
	<-late
}

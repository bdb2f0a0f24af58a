package vaulttest

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"

	api "github.com/openbao/openbao/api/v2"
)

// TestMountInfo pins sys/internal/ui/mounts/{path} to Vault 1.14's
// pathInternalUIMountRead (vault/logical_system.go).
func TestMountInfo(t *testing.T) {
	s := New(t)
	ctx := context.Background()
	root := client(t, s, s.RootToken())
	if err := root.Sys().MountWithContext(ctx, "kv1", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	s.EnableKV("", "plain", 1)

	for p, want := range map[string]struct {
		path    string
		options any
	}{
		"secret":       {"secret/", map[string]any{"version": "2"}},
		"secret/a/b/c": {"secret/", map[string]any{"version": "2"}}, // the mount holding the path
		"kv1":          {"kv1/", map[string]any{"version": "1"}},
		"plain":        {"plain/", nil}, // "vault secrets enable kv": no options
	} {
		code, body := raw(t, s, "GET", "/v1/"+uiMounts+p, s.RootToken(), "")
		data, _ := body["data"].(map[string]any)
		if code != 200 || data["path"] != want.path || data["type"] != "kv" {
			t.Errorf("%s: %d %v", p, code, body)
			continue
		}
		if got, _ := data["options"].(map[string]any); want.options == nil && data["options"] != nil ||
			want.options != nil && (got == nil || got["version"] != want.options.(map[string]any)["version"]) {
			t.Errorf("%s: options %v, want %v", p, data["options"], want.options)
		}
	}

	// No such mount, and a mount the token may use nothing under, give the
	// same 403, so the endpoint cannot list mounts.
	limited := s.CreateToken(TokenOptions{Paths: []string{"secret/data/app/*"}})
	preflight := `preflight capability check returned 403, please ensure client's policies grant access to path "typo/"`
	for _, tc := range []struct{ path, token, want string }{
		{"typo", s.RootToken(), preflight},
		{"typo", limited, preflight},
		{"kv1", limited, `path "kv1/"`},
	} {
		code, body := raw(t, s, "GET", "/v1/"+uiMounts+tc.path, tc.token, "")
		errs, _ := body["errors"].([]any)
		if code != 403 || len(errs) != 1 || !strings.Contains(errs[0].(string), tc.want) {
			t.Errorf("%s: %d %v, want 403 %q", tc.path, code, body, tc.want)
		}
	}
	// A policy on any path under the mount is enough.
	if code, body := raw(t, s, "GET", "/v1/"+uiMounts+"secret", limited, ""); code != 200 {
		t.Errorf("limited token on its mount: %d %v", code, body)
	}
	// Any live token may ask; a dead or missing one is refused before the
	// mount is even looked at.
	s.RevokeToken(limited)
	for _, tok := range []string{limited, ""} {
		code, body := raw(t, s, "GET", "/v1/"+uiMounts+"secret", tok, "")
		if errs, _ := body["errors"].([]any); code != 403 || len(errs) != 1 || errs[0] != "permission denied" {
			t.Errorf("token %q: %d %v", tok, code, body)
		}
	}
}

// TestPlainHTTPToTLS: a plain-HTTP request to the TLS listener gets the
// answer Go's net/http server gives (Vault's listener is one): a bare HTTP
// 400 with a text body, not JSON.
func TestPlainHTTPToTLS(t *testing.T) {
	ca := NewCA(t)
	s := New(t, WithTLS(ca.Issue(t, "vault")))
	resp, err := http.Get("http://" + strings.TrimPrefix(s.URL, "https://") + "/v1/secret/data/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || string(body) != "Client sent an HTTP request to an HTTPS server.\n" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	// And the other way round: TLS to a plain server is refused by Go's
	// client with http.ErrSchemeMismatch.
	plain := New(t)
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	_, err = (&http.Client{Transport: tr}).Get("https://" + strings.TrimPrefix(plain.URL, "http://") + "/v1/sys/health")
	if err == nil || !strings.Contains(err.Error(), http.ErrSchemeMismatch.Error()) {
		t.Fatalf("https to a plain server: %v", err)
	}
}

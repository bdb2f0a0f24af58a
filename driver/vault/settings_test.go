package vault

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

func TestParseSettings_Defaults(t *testing.T) {
	c, err := parseSettings(backend.Settings{setAddress: "https://vault:8200", setTokenFile: "/t"})
	if err != nil {
		t.Fatal(err)
	}
	if c.mount != "secret" || c.kvVersion != 2 || c.auth != authToken || c.appRoleMount != "approle" ||
		c.jwtMount != "jwt" || c.namespace != "" || c.tmpl.varies {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = parseSettings(backend.Settings{setAddress: "http://v", setTokenFile: "/t", setMount: "/kv/team/", setNamespace: "/a/b/"})
	if err != nil || c.mount != "kv/team" || c.namespace != "a/b" {
		t.Fatalf("trimmed: %+v %v", c, err)
	}
}

func TestParseSettings_Errors(t *testing.T) {
	base := func(kv ...string) backend.Settings {
		s := backend.Settings{setAddress: "https://vault:8200", setTokenFile: "/t"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(s, kv[i])
			} else {
				s[kv[i]] = kv[i+1]
			}
		}
		return s
	}
	for _, tc := range []struct {
		name string
		s    backend.Settings
		want []string
	}{
		{"unknown", base("tokn_file", "/x", "zzz", "1"), []string{`unknown settings "tokn_file", "zzz"`, "token_file"}},
		{"no address", base(setAddress, "-"), []string{`"address" is required`}},
		{"bad address", base(setAddress, "vault:8200"), []string{`"address" must be an http:// or https:// URL`}},
		{"tls over http", base(setAddress, "http://v", setTLSCA, "/ca"), []string{"https://"}},
		{"cert without key", base(setTLSCert, "/c"), []string{`"tls_cert" and "tls_key" go together`}},
		{"kv version", base(setKVVersion, "3"), []string{`"kv_version" must be 1 or 2`}},
		{"mount", base(setMount, "a/../b"), []string{`"mount"`, "'..'"}},
		{"template syntax", base(setPathTemplate, "{{.Name"), []string{`"path_template"`}},
		{"template field", base(setPathTemplate, "{{.Servce}}/{{.Name}}"), []string{`"path_template"`, "Servce"}},
		{"auth", base(setAuth, "ldap"), []string{`"auth" must be token, approle or jwt`}},
		{"no token file", base(setTokenFile, "-"), []string{`"token_file" is required with auth=token`}},
		{"approle without role id", base(setAuth, "approle", setTokenFile, "-"), []string{`"role_id_file" is required`}},
		{"jwt without role", base(setAuth, "jwt", setTokenFile, "-", setJWTFile, "/j"), []string{`"jwt_role" is required`}},
		{"foreign setting", base(setAuth, "approle", setRoleIDFile, "/r"), []string{`"token_file" is for auth=token`}},
		{"foreign setting 2", base(setJWTRole, "r"), []string{`"jwt_role" is for auth=jwt`}},
	} {
		_, err := parseSettings(tc.s)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not contain %q", tc.name, err, w)
			}
		}
	}
}

func TestOpen_CredentialFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	empty := writeFile(t, "empty", "")
	for _, tc := range []struct {
		s    backend.Settings
		want []string
	}{
		{backend.Settings{setTokenFile: missing}, []string{`"token_file"`, missing, "no such file"}},
		{backend.Settings{setTokenFile: empty}, []string{`"token_file"`, empty, "empty"}},
		{backend.Settings{setAuth: "approle", setRoleIDFile: writeFile(t, "r", "role"), setSecretIDFile: missing}, []string{`"secret_id_file"`, missing}},
		{backend.Settings{setAuth: "jwt", setJWTRole: "r", setJWTFile: missing}, []string{`"jwt_file"`, missing}},
	} {
		tc.s[setAddress] = "http://127.0.0.1:1"
		_, err := openBackend(tc.s)
		if !errors.Is(err, backend.ErrDenied) {
			t.Errorf("%v: %v, want ErrDenied", tc.s, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q does not contain %q", err, w)
			}
		}
	}
	_, err := openBackend(backend.Settings{setAddress: "https://v", setTokenFile: writeFile(t, "t", "x"), setTLSCA: missing})
	if err == nil || !strings.Contains(err.Error(), `"tls_ca"`) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing CA: %v", err)
	}
}

// TestTLS runs the fake over HTTPS with a certificate from a test CA and
// requires client certificates from the same CA.
func TestTLS(t *testing.T) {
	t.Parallel()
	ca := vaulttest.NewCA(t)
	fake := vaulttest.New(t, vaulttest.WithTLS(ca.Issue(t, "vault", "vault.internal")), vaulttest.WithClientCAs(ca.Pool))
	fake.PutKV2("", "secret", "app", map[string]any{"v": "over tls"})

	dir := t.TempDir()
	caFile := ca.WriteCA(t, dir)
	certFile, keyFile := vaulttest.WriteCert(t, dir, "client", ca.Issue(t, "swarmkeep"))
	otherCA := vaulttest.NewCA(t)
	otherCAFile := otherCA.WriteCA(t, t.TempDir())
	strangerCert, strangerKey := vaulttest.WriteCert(t, t.TempDir(), "stranger", otherCA.Issue(t, "stranger"))
	tokenFile := writeFile(t, "token", fake.RootToken())
	ref := backend.Ref{Name: "app", Field: "v"}

	settings := func(kv ...string) backend.Settings {
		s := backend.Settings{setAddress: fake.URL, setTokenFile: tokenFile}
		for i := 0; i+1 < len(kv); i += 2 {
			s[kv[i]] = kv[i+1]
		}
		return s
	}
	openT := func(s backend.Settings) *kvBackend {
		b, err := openBackend(s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}

	good := openT(settings(setTLSCA, caFile, setTLSCert, certFile, setTLSKey, keyFile))
	if got := mustGet(t, good, ref); got != "over tls" {
		t.Fatalf("got %q", got)
	}
	named := openT(settings(setTLSCA, caFile, setTLSCert, certFile, setTLSKey, keyFile, setTLSServerName, "vault.internal"))
	mustGet(t, named, ref)

	for name, s := range map[string]backend.Settings{
		"wrong server name": settings(setTLSCA, caFile, setTLSCert, certFile, setTLSKey, keyFile, setTLSServerName, "other.internal"),
		"no client cert":    settings(setTLSCA, caFile),
		"untrusted client":  settings(setTLSCA, caFile, setTLSCert, strangerCert, setTLSKey, strangerKey),
		"untrusted server":  settings(setTLSCA, otherCAFile, setTLSCert, certFile, setTLSKey, keyFile),
		"system roots only": settings(setTLSCert, certFile, setTLSKey, keyFile),
	} {
		_, err := get(t, openT(s), ref)
		if !errors.Is(err, backend.ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable", name, err)
		}
	}

	_, err := openBackend(settings(setTLSCA, caFile, setTLSCert, certFile, setTLSKey, caFile))
	if err == nil || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("mismatched key: %v, want a tls settings error at open", err)
	}
}

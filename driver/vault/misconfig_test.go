package vault

import (
	"errors"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// Errors whose cause is the backend's settings, or a credential the server
// no longer accepts, must say so and name what to change: the server's own
// answer (a 400, a 403, a 404) points elsewhere.

// mustSay fails the test unless msg holds every one of the texts.
func mustSay(t *testing.T, what, msg string, want ...string) {
	t.Helper()
	t.Logf("%s: %s", what, msg)
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: %q lacks %q", what, msg, w)
		}
	}
}

// mustNotSay fails the test if msg holds any of the texts.
func mustNotSay(t *testing.T, what, msg string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(msg, w) {
			t.Errorf("%s: %q says %q", what, msg, w)
		}
	}
}

// openFake opens a backend against a server the test controls.
func openFake(t *testing.T, s backend.Settings) *kvBackend {
	t.Helper()
	b, err := openBackend(s)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// An http:// address for an HTTPS server: Go's server answers a bare 400,
// which was read as a bad path (reads) or refused credentials (logins).
func TestAddress_PlainHTTPToHTTPSServer(t *testing.T) {
	t.Parallel()
	ca := vaulttest.NewCA(t)
	fake := vaulttest.New(t, vaulttest.WithTLS(ca.Issue(t, "vault")))
	fake.AddAppRole(vaulttest.AppRole{RoleID: "role-id-1", SecretID: "secret-id-1"})
	host := strings.TrimPrefix(fake.URL, "https://")
	plain := "http://" + host
	for name, set := range map[string]backend.Settings{
		"token file": {setAddress: plain, setTokenFile: writeFile(t, "token", fake.RootToken())},
		"approle": {setAddress: plain, setAuth: authAppRole,
			setRoleIDFile: writeFile(t, "role", "role-id-1"), setSecretIDFile: writeFile(t, "secret", "secret-id-1")},
	} {
		b := openFake(t, set)
		_, err := get(t, b, backend.Ref{Name: "db"})
		if !errors.Is(err, backend.ErrCannotOpen) || errors.Is(err, backend.ErrInvalidRef) || errors.Is(err, backend.ErrDenied) {
			t.Errorf("%s: %v, want a settings error (ErrCannotOpen), not a bad reference or a refusal", name, err)
			continue
		}
		mustSay(t, name, err.Error(), `setting "address"`, "HTTPS", "address=https://"+host)
		mustNotSay(t, name, err.Error(), fake.RootToken(), "role-id-1", "secret-id-1", "\n")
	}
}

// The reverse: an https:// address for a plain HTTP server.
func TestAddress_HTTPSToPlainServer(t *testing.T) {
	t.Parallel()
	fake := vaulttest.New(t)
	host := strings.TrimPrefix(fake.URL, "http://")
	b := openFake(t, backend.Settings{setAddress: "https://" + host, setTokenFile: writeFile(t, "token", fake.RootToken())})
	_, err := get(t, b, backend.Ref{Name: "db"})
	if !errors.Is(err, backend.ErrCannotOpen) {
		t.Fatalf("%v, want a settings error (ErrCannotOpen)", err)
	}
	mustSay(t, "https to http", err.Error(), `setting "address"`, "plain HTTP", "http://"+host)
}

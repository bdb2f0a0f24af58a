package vault

import (
	"errors"
	"strings"
	"testing"
	"time"

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

// A revoked token in token_file: Vault answers it with the same bare 403
// as a policy refusal, so the error blamed the policy.
func TestTokenFile_RevokedToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.put(t, "s", map[string]any{"v": "ok"})
	e.put(t, "other", map[string]any{"v": "no"})
	tok := e.limitedToken(t, "s")
	file := writeFile(t, "token", tok)
	b := e.open(t, e.settings(setTokenFile, file))
	ref := backend.Ref{Name: e.path("s"), Field: "v"}
	mustGet(t, b, ref)

	// A live token refused by its policy: the policy's doing.
	_, err := get(t, b, backend.Ref{Name: e.path("other")})
	if !errors.Is(err, backend.ErrDenied) {
		t.Fatalf("policy refusal: %v, want ErrDenied", err)
	}
	mustSay(t, "policy refusal", err.Error(), "may not read it", file)
	mustNotSay(t, "policy refusal", err.Error(), "revoked", tok)

	// The lookup-self above vouches for the token for minFresh; a real
	// revocation comes later than that.
	b.auth.minFresh = 0
	e.revoke(t, tok)
	_, err = get(t, b, ref)
	if !errors.Is(err, backend.ErrDenied) {
		t.Fatalf("revoked token: %v, want ErrDenied", err)
	}
	mustSay(t, "revoked token", err.Error(), "revoked or expired", setTokenFile, file, "write a new token")
	mustNotSay(t, "revoked token", err.Error(), "may not read it", tok)

	// The fix works as the error says.
	replaceFile(t, file, e.limitedToken(t, "s"))
	mustGet(t, b, ref)
}

// mount=typo: the read's 404 looked like a missing secret.
func TestMount_NoSuchMount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	typo := "swarmkeep-test-typo-" + randHex(t)
	b := e.open(t, e.settings(setMount, typo))
	_, err := get(t, b, backend.Ref{Name: e.path("s")})
	if !errors.Is(err, backend.ErrCannotOpen) || errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("no such mount: %v, want a settings error (ErrCannotOpen), not ErrNotFound", err)
	}
	mustSay(t, "no such mount", err.Error(), `no mount "`+typo+`"`, `"mount" setting`)

	// A token whose policy covers nothing there gets a 403 instead (the
	// ACL is checked before the route): the error names both causes.
	limited := e.open(t, e.settings(setMount, typo, setTokenFile, writeFile(t, "token", e.limitedToken(t, "s"))))
	_, err = get(t, limited, backend.Ref{Name: e.path("s")})
	if !errors.Is(err, backend.ErrDenied) {
		t.Fatalf("no such mount, limited token: %v, want ErrDenied", err)
	}
	mustSay(t, "no such mount, limited token", err.Error(), `mount "`+typo+`"`, `"mount" setting`, "policy")
	mustNotSay(t, "no such mount, limited token", err.Error(), "revoked")

	// A secret missing from the right mount is still just missing.
	right := e.open(t, e.settings())
	if _, err := get(t, right, backend.Ref{Name: e.path("none")}); !errors.Is(err, backend.ErrNotFound) || errors.Is(err, backend.ErrCannotOpen) {
		t.Fatalf("missing secret: %v, want ErrNotFound", err)
	}
}

// kv_version against the mount's real version, both ways, and a mount
// setting that names a folder inside a KV v2 mount.
func TestMount_WrongKVVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v1 := e.kvMount(t, e.admin, 1)
	if err := e.admin.KVv1(v1).Put(ctxT(t), "app/db", map[string]any{"v": "x"}); err != nil {
		t.Fatal(err)
	}
	e.put(t, "app/db", map[string]any{"v": "y"})
	for _, tc := range []struct {
		name string
		set  backend.Settings
		ref  backend.Ref
		want []string
	}{
		{"v1 mount read as v2", e.settings(setMount, v1), backend.Ref{Name: "app/db"}, []string{`mount "` + v1 + `" is KV version 1`, "kv_version=1"}},
		{"v2 mount read as v1", e.settings(setKVVersion, "1"), backend.Ref{Name: e.path("app/db")}, []string{`mount "` + e.mount + `" is KV version 2`, "kv_version=2"}},
		{"folder inside a v2 mount", e.settings(setMount, e.mount+"/"+strings.TrimSuffix(e.prefix, "/")), backend.Ref{Name: "app/db"},
			[]string{"inside KV v2 mount", "mount=" + e.mount}},
	} {
		b := e.open(t, tc.set)
		_, err := get(t, b, tc.ref)
		if !errors.Is(err, backend.ErrCannotOpen) || errors.Is(err, backend.ErrNotFound) {
			t.Errorf("%s: %v, want a settings error (ErrCannotOpen)", tc.name, err)
			continue
		}
		mustSay(t, tc.name, err.Error(), tc.want...)
	}
}

// The mount is checked only after a failure that a wrong setting would
// explain, and then once per mountTTL, however many reads fail.
func TestMount_CheckedOncePerPeriod(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := e.needFake(t)
	e.put(t, "s", map[string]any{"v": "ok"})
	typo := "typo-" + randHex(t)
	checks := func(mount string) int { return fake.Count("/v1/" + uiMountsPath + mount) }

	good := e.open(t, e.settings())
	for range 5 {
		mustGet(t, good, backend.Ref{Name: e.path("s")})
	}
	for range 5 {
		if _, err := get(t, good, backend.Ref{Name: e.path("none")}); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("missing secret: %v", err)
		}
	}
	if n := checks(e.mount); n != 1 {
		t.Fatalf("%d mount checks for 5 reads and 5 missing secrets, want 1", n)
	}

	b := e.open(t, e.settings(setMount, typo))
	now := time.Now()
	b.now = func() time.Time { return now }
	for range 5 {
		if _, err := get(t, b, backend.Ref{Name: "s"}); !errors.Is(err, backend.ErrCannotOpen) {
			t.Fatalf("typo: %v", err)
		}
	}
	if n := checks(typo); n != 1 {
		t.Fatalf("%d mount checks for 5 failed reads, want 1", n)
	}
	// The mount appears on the server: seen once the answer expires.
	fake.EnableKV("", typo, 2)
	fake.PutKV2("", typo, "other", map[string]any{"v": "x"})
	now = now.Add(mountTTL)
	if _, err := get(t, b, backend.Ref{Name: "s"}); !errors.Is(err, backend.ErrNotFound) || errors.Is(err, backend.ErrCannotOpen) {
		t.Fatalf("after the mount was created: %v, want ErrNotFound", err)
	}
	if n := checks(typo); n != 2 {
		t.Fatalf("%d mount checks, want 2", n)
	}
}

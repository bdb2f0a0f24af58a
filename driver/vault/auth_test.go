package vault

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// These tests need to control tokens, roles and time on the server, so they
// run against the fake only.

const (
	approleLogin = "/v1/auth/approle/login"
	jwtLogin     = "/v1/auth/jwt/login"
	renewSelf    = "/v1/auth/token/renew-self"
)

// appRoleEnv seeds secret "s" and opens a backend that logs in with role.
func appRoleEnv(t *testing.T, role vaulttest.AppRole) (*testEnv, *kvBackend, backend.Ref) {
	t.Helper()
	e, set, ref := appRoleSettings(t, role)
	return e, e.open(t, set), ref
}

// appRoleEnvClock is appRoleEnv with the fake server and the backend both
// on a fake clock, which the test advances.
func appRoleEnvClock(t *testing.T, role vaulttest.AppRole) (*testEnv, *kvBackend, backend.Ref, *vaulttest.Clock) {
	t.Helper()
	e, set, ref := appRoleSettings(t, role)
	clk := vaulttest.NewClock(time.Now())
	e.fake.SetClock(clk.Now)
	return e, e.openClock(t, set, clk), ref, clk
}

func appRoleSettings(t *testing.T, role vaulttest.AppRole) (*testEnv, backend.Settings, backend.Ref) {
	t.Helper()
	e := newEnv(t)
	fake := e.needFake(t)
	e.put(t, "s", map[string]any{"v": "ok"})
	if role.RoleID == "" {
		role.RoleID, role.SecretID = "role-"+randHex(t), "secret-"+randHex(t)
	}
	if role.Paths == nil {
		role.Paths = []string{e.mount + "/data/" + e.path("s")}
	}
	fake.AddAppRole(role)
	set := e.settings(setAuth, authAppRole, setRoleIDFile, writeFile(t, "role-id", role.RoleID),
		setSecretIDFile, writeFile(t, "secret-id", role.SecretID))
	delete(set, setTokenFile)
	return e, set, backend.Ref{Name: e.path("s"), Field: "v"}
}

// openClock opens a backend whose session and renewer go by clk, and closes
// it when the test ends.
func (e *testEnv) openClock(t *testing.T, s backend.Settings, clk *vaulttest.Clock) *kvBackend {
	t.Helper()
	b, err := openBackendClock(s, clk)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// runRenewer moves clk on by at least total, one renewer wake-up at a
// time: it waits until the renewer sleeps on the clock, advances to its
// timer, and so on; it returns once the renewer sleeps again after the
// last step, so whatever that wake-up did (renew, log in) is done.
func runRenewer(t *testing.T, clk *vaulttest.Clock, total time.Duration) {
	t.Helper()
	for moved := time.Duration(0); moved < total; {
		d := clk.WaitTimer(t)
		clk.Advance(d)
		moved += d
	}
	clk.WaitTimer(t)
}

func TestAppRole_LoginOnceAndReuse(t *testing.T) {
	t.Parallel()
	e, b, ref := appRoleEnv(t, vaulttest.AppRole{TokenTTL: time.Hour})
	for range 5 {
		mustGet(t, b, ref)
	}
	if n := e.fake.Count(approleLogin); n != 1 {
		t.Fatalf("%d logins, want 1", n)
	}
	// A path the role's policy refuses is denied without a new login: the
	// token is fresh, so the 403 is the policy's.
	e.put(t, "elsewhere", map[string]any{"v": "x"})
	if _, err := get(t, b, backend.Ref{Name: e.path("elsewhere")}); !errors.Is(err, backend.ErrDenied) {
		t.Fatalf("refused path: %v, want ErrDenied", err)
	}
	if n := e.fake.Count(approleLogin); n != 1 {
		t.Fatalf("%d logins after a policy refusal, want 1", n)
	}
}

func TestAppRole_BadCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := e.needFake(t)
	fake.AddAppRole(vaulttest.AppRole{RoleID: "role-x", SecretID: "right-secret-id"})
	set := e.settings(setAuth, authAppRole, setRoleIDFile, writeFile(t, "r", "role-x"),
		setSecretIDFile, writeFile(t, "s", "wrong-secret-id"))
	delete(set, setTokenFile)
	b := e.open(t, set)
	_, err := get(t, b, backend.Ref{Name: "x"})
	// The server's words differ (Vault: "invalid secret id", OpenBao:
	// "invalid role or secret ID"): assert only what this package writes.
	if !errors.Is(err, backend.ErrDenied) || !strings.Contains(err.Error(), "auth/approle/login") || !strings.Contains(err.Error(), "(HTTP 400)") {
		t.Fatalf("got %v, want ErrDenied naming the login and the server's 400", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-id") || strings.Contains(err.Error(), "role-x") {
		t.Fatalf("error leaks a credential: %s", err)
	}
}

func TestAppRole_ReloginAfterExpiry(t *testing.T) {
	t.Parallel()
	e, b, ref, clk := appRoleEnvClock(t, vaulttest.AppRole{TokenTTL: time.Second, NonRenewable: true})
	mustGet(t, b, ref)
	clk.WaitTimer(t)
	clk.Advance(1500 * time.Millisecond) // the first token is dead by now
	mustGet(t, b, ref)
	if n := e.fake.Count(approleLogin); n != 2 {
		t.Fatalf("%d logins, want 2", n)
	}
	if n := e.fake.Count(renewSelf); n != 0 {
		t.Fatalf("%d renewals of non-renewable tokens", n)
	}
}

func TestAppRole_ReloginAfterRevocation(t *testing.T) {
	t.Parallel()
	e, b, ref := appRoleEnv(t, vaulttest.AppRole{TokenTTL: time.Hour})
	b.auth.minFresh = 0 // treat the just-issued token as possibly stale
	mustGet(t, b, ref)
	e.fake.RevokeAll()
	// Many requests meet the revoked token at once: one login serves all.
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() { mustGet(t, b, ref) })
	}
	wg.Wait()
	if n := e.fake.Count(approleLogin); n != 2 {
		t.Fatalf("%d logins, want 2", n)
	}
}

func TestAppRole_RenewBeforeExpiry(t *testing.T) {
	t.Parallel()
	e, b, ref, clk := appRoleEnvClock(t, vaulttest.AppRole{TokenTTL: 2 * time.Second})
	mustGet(t, b, ref)
	runRenewer(t, clk, 2500*time.Millisecond) // past the first lease; renewed at ~1.3s and ~2.7s
	mustGet(t, b, ref)
	if n := e.fake.Count(renewSelf); n < 2 {
		t.Fatalf("%d renewals, want at least 2", n)
	}
	if n := e.fake.Count(approleLogin); n != 1 {
		t.Fatalf("%d logins, want 1: renewal should have kept the token", n)
	}
}

func TestAppRole_ReloginNearMaxTTL(t *testing.T) {
	t.Parallel()
	e, b, ref, clk := appRoleEnvClock(t, vaulttest.AppRole{TokenTTL: 2 * time.Second, TokenMaxTTL: 3 * time.Second})
	for range 18 { // 4.5s in steps of 250ms, reading at each
		mustGet(t, b, ref)
		clk.WaitTimer(t)
		clk.Advance(250 * time.Millisecond)
	}
	mustGet(t, b, ref)
	if n := e.fake.Count(approleLogin); n < 2 {
		t.Fatalf("%d logins, want a new login once the max TTL capped renewal", n)
	}
	if n := e.fake.Count(renewSelf); n < 1 {
		t.Fatalf("%d renewals, want at least 1", n)
	}
}

func TestJWT_LoginAndRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := e.needFake(t)
	e.put(t, "s", map[string]any{"v": "ok"})
	fake.AddJWTRole(vaulttest.JWTRole{Name: "swarm", BoundSubject: "swarmkeep", TokenTTL: time.Hour,
		Paths: []string{e.mount + "/data/" + e.prefix + "*"}})
	jwtFile := writeFile(t, "jwt", fake.SignJWT("swarmkeep", time.Hour))
	set := e.settings(setAuth, authJWT, setJWTFile, jwtFile, setJWTRole, "swarm")
	delete(set, setTokenFile)
	b := e.open(t, set)
	b.auth.minFresh = 0
	ref := backend.Ref{Name: e.path("s"), Field: "v"}
	mustGet(t, b, ref)

	// The issuer rotates its key and the JWT; the Vault token is revoked.
	// The next login must read the new JWT: the old one no longer verifies.
	fake.RotateJWTKey()
	replaceFile(t, jwtFile, fake.SignJWT("swarmkeep", time.Hour))
	fake.RevokeAll()
	mustGet(t, b, ref)
	if n := fake.Count(jwtLogin); n != 2 {
		t.Fatalf("%d logins, want 2", n)
	}

	// A JWT for another subject is refused, without echoing the JWT.
	bad := fake.SignJWT("intruder", time.Hour)
	replaceFile(t, jwtFile, bad)
	fake.RevokeAll()
	_, err := get(t, b, ref)
	if !errors.Is(err, backend.ErrDenied) || strings.Contains(err.Error(), bad) {
		t.Fatalf("got %v, want ErrDenied without the JWT", err)
	}
}

func TestTokenFile_RenewedWhenRenewable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := e.needFake(t)
	e.put(t, "s", map[string]any{"v": "ok"})
	clk := vaulttest.NewClock(time.Now())
	fake.SetClock(clk.Now)
	tok := fake.CreateToken(vaulttest.TokenOptions{Paths: []string{e.mount + "/data/" + e.prefix + "*"}, TTL: 2 * time.Second, Renewable: true})
	b := e.openClock(t, e.settings(setTokenFile, writeFile(t, "token", tok)), clk)
	ref := backend.Ref{Name: e.path("s"), Field: "v"}
	mustGet(t, b, ref)
	runRenewer(t, clk, 3*time.Second) // the token would be dead without renewal
	mustGet(t, b, ref)
	if n := fake.Count(renewSelf); n < 1 {
		t.Fatalf("%d renewals, want at least 1", n)
	}
}

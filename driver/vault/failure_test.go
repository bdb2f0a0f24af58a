package vault

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	api "github.com/openbao/openbao/api/v2"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// getWithin calls Get with deadline d and returns the error and how long
// the call took.
func getWithin(b *kvBackend, ref backend.Ref, d time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	_, err := b.Get(ctx, ref)
	return time.Since(start), err
}

func TestGet_ServerDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := e.needFake(t)
	e.put(t, "s", map[string]any{"v": "ok"})
	b := e.open(t, e.settings())
	ref := backend.Ref{Name: e.path("s"), Field: "v"}
	mustGet(t, b, ref)

	fake.Stop()
	took, err := getWithin(b, ref, 3*time.Second)
	if !errors.Is(err, backend.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("server down: %v, want ErrUnavailable without a timeout", err)
	}
	if took > time.Second {
		t.Fatalf("server down: took %s, want a quick refusal", took)
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("error should say why: %s", err)
	}

	fake.Restart(t)
	mustGet(t, b, ref)
}

func TestGet_ServerDownAtFirstLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := e.needFake(t)
	fake.AddAppRole(vaulttest.AppRole{RoleID: "role", SecretID: "secret"})
	fake.Stop()
	set := e.settings(setAuth, authAppRole, setRoleIDFile, writeFile(t, "r", "role"), setSecretIDFile, writeFile(t, "s", "secret"))
	delete(set, setTokenFile)
	b := e.open(t, set)
	took, err := getWithin(b, backend.Ref{Name: "x"}, 3*time.Second)
	if !errors.Is(err, backend.ErrUnavailable) || took > time.Second {
		t.Fatalf("login with the server down: %v after %s, want a quick ErrUnavailable", err, took)
	}
}

func TestGet_SlowServerHonoursDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := e.needFake(t)
	e.put(t, "s", map[string]any{"v": "ok"})
	b := e.open(t, e.settings())
	ref := backend.Ref{Name: e.path("s")}
	mustGet(t, b, ref)

	fake.SetLatency(5 * time.Second)
	took, err := getWithin(b, ref, 300*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("slow server: %v, want DeadlineExceeded and ErrUnavailable", err)
	}
	if took > time.Second {
		t.Fatalf("slow server: took %s with a 300ms deadline", took)
	}
	fake.SetLatency(0)
	mustGet(t, b, ref)
}

func TestGet_SealedServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fake := e.needFake(t)
	e.put(t, "s", map[string]any{"v": "ok"})
	b := e.open(t, e.settings())
	ref := backend.Ref{Name: e.path("s")}
	mustGet(t, b, ref)
	fake.SetSealed(true)
	_, err := get(t, b, ref)
	if !errors.Is(err, backend.ErrUnavailable) || !strings.Contains(err.Error(), "sealed") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("sealed: %v, want ErrUnavailable naming the 503", err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.open(t, e.settings())
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := get(t, b, backend.Ref{Name: "x"}); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Get after Close: %v, want ErrUnavailable", err)
	}
}

func TestRegistered(t *testing.T) {
	b, err := backend.Open(context.Background(), "Vault", backend.Settings{setAddress: "http://127.0.0.1:1", setTokenFile: writeFile(t, "t", "tok")})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := backend.Open(context.Background(), Type, backend.Settings{}); err == nil || !strings.Contains(err.Error(), "vault backend") {
		t.Fatalf("open without settings: %v", err)
	}
}

func TestMapError(t *testing.T) {
	ctx := context.Background()
	resp := func(code int, msgs ...string) error {
		return &api.ResponseError{HTTPMethod: "GET", URL: "https://v/v1/secret/data/x", StatusCode: code, Errors: msgs}
	}
	for _, tc := range []struct {
		name     string
		err      error
		login    bool
		sentinel error
		want     string
	}{
		{"403", resp(403, "1 error occurred:\n\t* permission denied\n\n"), false, backend.ErrDenied, "op: permission denied (HTTP 403)"},
		{"403 vault", resp(403, "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"), false, backend.ErrDenied, "op: permission denied; invalid token (HTTP 403)"},
		{"404 empty", resp(404), false, backend.ErrNotFound, "op: not found (HTTP 404)"},
		{"400 read", resp(400, "bad version"), false, backend.ErrInvalidRef, "op: bad version (HTTP 400)"},
		{"400 login", resp(400, "invalid role or secret ID"), true, backend.ErrDenied, "op: invalid role or secret ID (HTTP 400)"},
		{"503", resp(503, "Vault is sealed"), false, backend.ErrUnavailable, "op: Vault is sealed (HTTP 503)"},
		{"429", resp(429, "rate limit quota exceeded"), false, backend.ErrUnavailable, "(HTTP 429)"},
		{"echoed secret", resp(400, `invalid secret_id "s3cr3t-id-value"`), true, backend.ErrDenied, `invalid secret_id "[redacted]"`},
		{"raw body", &api.ResponseError{StatusCode: 502, RawError: true, Errors: []string{"<html>\n<h1>Bad gateway</h1>"}}, false, backend.ErrUnavailable, "non-JSON answer: <html>; <h1>Bad gateway</h1>"},
		{"transport", &url.Error{Op: "Get", URL: "https://v/v1/secret/data/x?version=2", Err: syscall.ECONNREFUSED}, false, backend.ErrUnavailable, "op: connection refused"},
	} {
		err := mapError(ctx, "op", tc.err, tc.login, []string{"s3cr3t-id-value"})
		if !errors.Is(err, tc.sentinel) {
			t.Errorf("%s: %v does not wrap %v", tc.name, err, tc.sentinel)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %q does not contain %q", tc.name, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "https://v") {
			t.Errorf("%s: leaks a credential, a newline or the URL: %q", tc.name, err)
		}
	}

	done, cancel := context.WithCancel(ctx)
	cancel()
	err := mapError(done, "op", context.Canceled, false, nil)
	if !errors.Is(err, backend.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: %v", err)
	}
	err = mapError(ctx, "op", &url.Error{Op: "Get", URL: "u", Err: context.DeadlineExceeded}, false, nil)
	if !errors.Is(err, backend.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("client timeout: %v", err)
	}
	if statusOf(resp(403)) != 0 || statusOf(mapError(ctx, "op", resp(403), false, nil)) != 403 {
		t.Fatal("statusOf")
	}
}

package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	api "github.com/openbao/openbao/api/v2"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// callError is a failed call to the server. Its text is built here, never
// copied from the api client's error (which is multi-line and names the full
// URL), and has every credential of the call cut out.
type callError struct {
	sentinel error
	status   int   // HTTP status; 0 when no answer came
	cause    error // context error, when the deadline ended the call
	msg      string
}

func (e *callError) Error() string { return e.msg }

// Unwrap exposes the sentinel and, for a timeout, the context's error, so
// the driver classifies a slow server as a timeout.
func (e *callError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.sentinel, e.cause}
	}
	return []error{e.sentinel}
}

// statusOf is the HTTP status of a failed call, 0 if none.
func statusOf(err error) int {
	var ce *callError
	if errors.As(err, &ce) {
		return ce.status
	}
	return 0
}

// readError maps an error from a data or token call: 401/403 deny, 404 is
// not found, 400 is a request the server considers malformed, and anything
// else (5xx, 429, no answer) means the server cannot answer now.
func readError(ctx context.Context, op string, err error, creds ...string) error {
	return mapError(ctx, op, err, false, creds)
}

// loginError is readError for a login, where a 400 means the credentials
// were refused (AppRole and JWT answer a bad secret ID or JWT with 400).
func loginError(ctx context.Context, op string, err error, creds ...string) error {
	return mapError(ctx, op, err, true, creds)
}

func mapError(ctx context.Context, op string, err error, login bool, creds []string) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return &callError{sentinel: backend.ErrUnavailable, cause: ctxErr, msg: op + ": no answer in time"}
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		if re.StatusCode == http.StatusBadRequest && re.RawError && strings.Contains(strings.Join(re.Errors, " "), plainToTLS) {
			return wrongScheme(re.URL, re.StatusCode, "https", fmt.Sprintf("it answered %q", plainToTLS))
		}
		e := &callError{status: re.StatusCode, sentinel: backend.ErrUnavailable}
		switch {
		case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
			e.sentinel = backend.ErrDenied
		case re.StatusCode == http.StatusBadRequest && login:
			e.sentinel = backend.ErrDenied
		case re.StatusCode == http.StatusBadRequest:
			e.sentinel = backend.ErrInvalidRef
		case re.StatusCode == http.StatusNotFound:
			e.sentinel = backend.ErrNotFound
		}
		e.msg = fmt.Sprintf("%s: %s (HTTP %d)", op, serverMessage(re, creds), re.StatusCode)
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &callError{sentinel: backend.ErrUnavailable, cause: context.DeadlineExceeded, msg: op + ": no answer in time"}
	}
	// A transport error: the api client returns *url.Error, whose text
	// repeats the method and URL; keep only the cause.
	var ue *url.Error
	if errors.As(err, &ue) {
		if errors.Is(err, http.ErrSchemeMismatch) {
			return wrongScheme(ue.URL, 0, "http", http.ErrSchemeMismatch.Error())
		}
		err = ue.Err
	}
	return &callError{sentinel: backend.ErrUnavailable, msg: fmt.Sprintf("%s: %s", op, clean(err.Error(), creds))}
}

// multiErr matches go-multierror's "N errors occurred:" header, which Vault
// puts in front of some messages.
var multiErr = regexp.MustCompile(`^\d+ errors? occurred:\s*`)

// serverMessage is the server's error list on one line, or the status text
// when the list is empty (a 404 answers {"errors":[]}).
func serverMessage(re *api.ResponseError, creds []string) string {
	var parts []string
	for _, m := range re.Errors {
		if re.RawError {
			m = "non-JSON answer: " + m
		}
		m = multiErr.ReplaceAllString(strings.TrimSpace(m), "")
		for _, line := range strings.Split(m, "\n") {
			if line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*")); line != "" {
				parts = append(parts, line)
			}
		}
	}
	if len(parts) == 0 {
		return strings.ToLower(http.StatusText(re.StatusCode))
	}
	return clean(strings.Join(parts, "; "), creds)
}

// clean cuts every credential out of a message and keeps it short and on
// one line. A server may echo what it was sent: AppRole answers some failed
// logins with "invalid secret_id %q".
func clean(msg string, creds []string) string {
	for _, c := range creds {
		if c = strings.TrimSpace(c); len(c) >= 4 {
			msg = strings.ReplaceAll(msg, c, "[redacted]")
		}
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 240 {
		msg = msg[:237] + "..."
	}
	return msg
}

// plainToTLS is what Go's net/http server, which Vault and OpenBao listen
// with, writes back (as a bare HTTP 400, not JSON) when a plain HTTP
// request reaches its TLS listener.
const plainToTLS = "Client sent an HTTP request to an HTTPS server"

// wrongScheme is the error for an address setting whose scheme the server
// does not speak: the server (or Go's client) said so, and no request can
// succeed until the setting is fixed, so it wraps ErrSettings (an ErrCannotOpen) rather than
// what a 400 usually means (a bad path on a read, refused credentials on a
// login). want is the scheme the server speaks. The text names the setting
// and the address to set; an address holds no credential.
func wrongScheme(rawURL string, status int, want, said string) error {
	have, addr := "http", "the address"
	if want == "http" {
		have = "https"
	}
	if u, err := url.Parse(rawURL); err == nil && u.Host != "" {
		base, _, _ := strings.Cut(u.Path, "/v1/")
		addr = u.Host + base
	}
	var msg string
	if want == "https" {
		msg = fmt.Sprintf("setting %q is %s://%s, but the server there speaks HTTPS (%s): use %s=https://%s",
			setAddress, have, addr, said, setAddress, addr)
	} else {
		msg = fmt.Sprintf("setting %q is %s://%s, but the server there speaks plain HTTP (%s): serve TLS on it, or use %s=http://%s on a trusted network only",
			setAddress, have, addr, said, setAddress, addr)
	}
	return &callError{sentinel: backend.ErrSettings, status: status, msg: msg}
}

package vault

import (
	"context"
	"fmt"
	"net/http"
)

// A 403 and a 404 each have more than one cause, and the operator's fix
// depends on which. The server does not say: Vault answers a revoked or
// expired token with the same bare "permission denied" as a policy
// refusal, and a read under a mount that does not exist with the same 404
// as a missing secret (for a token whose policy allows the path). The
// functions here ask the two questions that tell them apart, only after
// such a failure: lookup-self (which every live token may call under the
// default policy) and the mount check (mount.go).

// tokenVerdict is the server's view of a token.
type tokenVerdict int

const (
	tokenUnknown  tokenVerdict = iota // no answer, or one that says nothing
	tokenAccepted                     // lookup-self answered
	tokenRefused                      // lookup-self answered 403: revoked or expired
)

// verdict asks lookup-self about s's token, unless the server accepted it
// within minFresh.
func (a *auth) verdict(ctx context.Context, s *session) tokenVerdict {
	a.mu.Lock()
	fresh := !s.verified.IsZero() && a.now().Sub(s.verified) < a.minFresh
	a.mu.Unlock()
	if fresh {
		return tokenAccepted
	}
	_, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	if err == nil {
		a.mu.Lock()
		s.verified = a.now()
		a.mu.Unlock()
		return tokenAccepted
	}
	switch statusOf(readError(ctx, "look up token", err, s.token)) {
	case http.StatusForbidden, http.StatusUnauthorized:
		return tokenRefused
	}
	return tokenUnknown
}

// replaceHint says how to give the backend a token the server accepts.
func (a *auth) replaceHint() string {
	switch a.method.(type) {
	case *tokenFile:
		return "write a new token to that file, which the backend re-reads"
	case *appRole, *jwtAuth:
		// A token minted by a fresh login and dead within a second: the
		// role limits its uses or its lifetime.
		return "check the role's token_num_uses and token_ttl"
	}
	return "give the backend a new token"
}

// explainDenied adds the cause to a read the server refused with 403 even
// after the backend re-read or renewed its credential. s is the session the
// last try used.
func (b *kvBackend) explainDenied(ctx context.Context, s *session, err error) error {
	switch b.auth.verdict(ctx, s) {
	case tokenRefused:
		return fmt.Errorf("%w; the server refuses %s itself (revoked or expired): %s", err, b.auth.describe(), b.auth.replaceHint())
	case tokenAccepted:
		// A live token: its policy refuses the path. That happens too
		// when the mount setting names no mount (the ACL is checked
		// before the route) or the wrong KV version (v2 reads go to
		// {mount}/data/...).
		st := b.mount(ctx, s)
		if st.absent {
			return fmt.Errorf("%w; %s may use nothing under mount %s, or there is no such mount: check the %q setting and the token's policy",
				err, b.auth.describe(), b.mountName(b.cfg.mount), setMount)
		}
		if p := b.mountProblem(st); p != "" {
			return settingsError(statusOf(err), err.Error()+"; "+p)
		}
	}
	return fmt.Errorf("%w; %s may not read it", err, b.auth.describe())
}

// explainAbsent checks the mount after a plain 404. The read passed the
// ACL (or the answer would be 403), so a mount check answered 403 means no
// mount holds the path: a settings error, as is a KV version or engine
// type other than the settings say. Otherwise err stands: the secret is
// missing.
func (b *kvBackend) explainAbsent(ctx context.Context, s *session, err error, where string) error {
	st := b.mount(ctx, s)
	if st.absent {
		return settingsError(http.StatusNotFound, fmt.Sprintf("read %s: the server has no mount %s (check the %q setting)",
			where, b.mountName(b.cfg.mount), setMount))
	}
	if p := b.mountProblem(st); p != "" {
		return settingsError(http.StatusNotFound, fmt.Sprintf("read %s: not found, and %s", where, p))
	}
	return err
}

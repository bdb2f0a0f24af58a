package vault

import (
	"context"
	"fmt"
	"sync"
	"time"

	api "github.com/openbao/openbao/api/v2"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// session is one token and what is known of its lease. client and token
// never change; the other fields are guarded by auth.mu.
type session struct {
	client *api.Client
	token  string // kept only to cut it out of error text

	obtained  time.Time     // login, lookup or last renewal
	ttl       time.Duration // lease left at obtained; 0: never expires, or unknown
	increment time.Duration // what a renewal asks for: the lease at login
	renewable bool
	known     bool      // ttl and renewable are the server's answer
	capped    bool      // a renewal came back short: the max TTL is near
	exhausted bool      // no renewal or new token can be had; wait for a change
	verified  time.Time // when the server last accepted the token
}

// auth keeps the backend's token: it logs in on demand, at most one login at
// a time, and (see renew.go) renews or replaces the token before it expires.
type auth struct {
	method  method
	clients *clients
	anon    *api.Client // no token: for logins
	clock   clock
	// minFresh: a token the server accepted this recently has not expired,
	// so a 403 within it is the policy's answer and no reason to log in.
	// This keeps a secret the policy refuses from costing a login each time.
	minFresh time.Duration

	sem  chan struct{} // held during a login
	wake chan struct{} // tells the renewer the session changed
	mu   sync.Mutex
	cur  *session
}

func newAuth(m method, f *clients, clk clock) (*auth, error) {
	anon, err := f.client("")
	if err != nil {
		return nil, err
	}
	return &auth{method: m, clients: f, anon: anon, clock: clk, minFresh: time.Second,
		sem: make(chan struct{}, 1), wake: make(chan struct{}, 1)}, nil
}

// current returns the session to read with. It logs in first when there is
// none, when the token has expired by the local clock, or when the token
// file has changed.
func (a *auth) current(ctx context.Context) (*session, error) {
	a.mu.Lock()
	s := a.cur
	ok := s != nil && !a.expiredLocked(s)
	a.mu.Unlock()
	if ok && !a.method.changed() {
		return s, nil
	}
	return a.login(ctx, s)
}

// expiredLocked treats the last tenth of a lease as gone, so a request does
// not set off with a token that dies on the way.
func (a *auth) expiredLocked(s *session) bool {
	if s.ttl <= 0 {
		return false
	}
	return !a.now().Before(s.obtained.Add(s.ttl - s.ttl/10))
}

// login replaces old with a new session and returns it. If another caller
// replaced old while this one waited its turn, that session is returned;
// if the token file still holds old's token, old is.
func (a *auth) login(ctx context.Context, old *session) (*session, error) {
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, &callError{sentinel: backend.ErrUnavailable, cause: ctx.Err(), msg: "waiting for a login in progress: no answer in time"}
	}
	defer func() { <-a.sem }()
	a.mu.Lock()
	cur := a.cur
	a.mu.Unlock()
	if cur != old {
		return cur, nil
	}
	g, err := a.method.login(ctx, a.anon)
	if err != nil {
		return nil, err
	}
	if old != nil && g.token == old.token {
		return old, nil
	}
	c, err := a.clients.client(g.token)
	if err != nil {
		return nil, err
	}
	now := a.now()
	s := &session{client: c, token: g.token, obtained: now, ttl: g.ttl, increment: g.ttl, renewable: g.renewable, known: g.known}
	if g.known {
		s.verified = now
	}
	a.mu.Lock()
	a.cur = s
	a.mu.Unlock()
	a.poke()
	return s, nil
}

// reauth is called after the server refused s with a 403. It returns a new
// session to retry the read with, or nil when a retry cannot help: the
// token file still holds the same token, or the server still accepts the
// token, so it is the policy that refuses this path.
func (a *auth) reauth(ctx context.Context, s *session) (*session, error) {
	if a.method.remote() {
		a.mu.Lock()
		replaced := a.cur != s
		fresh := !s.verified.IsZero() && a.now().Sub(s.verified) < a.minFresh
		a.mu.Unlock()
		if !replaced && (fresh || a.accepted(ctx, s)) {
			return nil, nil
		}
	}
	n, err := a.login(ctx, s)
	if err != nil || n == s {
		return nil, err
	}
	return n, nil
}

// accepted asks lookup-self, which the default policy allows every token,
// whether the server still accepts s's token. It is one cheap read, where a
// needless login would mint a token that lives in the server's storage until
// it expires.
func (a *auth) accepted(ctx context.Context, s *session) bool {
	if _, err := s.client.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		return false
	}
	a.mu.Lock()
	s.verified = a.now()
	a.mu.Unlock()
	return true
}

func (a *auth) now() time.Time { return a.clock.Now() }

// poke wakes the renewer without blocking.
func (a *auth) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// describe says which credential a refused read used, for the error line.
func (a *auth) describe() string {
	switch m := a.method.(type) {
	case *tokenFile:
		return fmt.Sprintf("the token in %s %q", setTokenFile, m.path)
	case *appRole:
		return fmt.Sprintf("the token from AppRole login at auth/%s", m.mount)
	case *jwtAuth:
		return fmt.Sprintf("the token from JWT login at auth/%s as role %q", m.mount, m.role)
	}
	return "the token"
}

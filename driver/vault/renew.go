package vault

import (
	"context"
	"encoding/json"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Renewer timing. A lease is renewed at two thirds of its life, which leaves
// a third for retries if the server is briefly away; a failed step is
// retried with exponential back-off.
const (
	stepTimeout = 10 * time.Second
	retryMin    = 500 * time.Millisecond
	retryMax    = 30 * time.Second
)

// run keeps the session alive until ctx ends: it logs in at once (so the
// first request finds a token), learns a file token's lease, renews each
// lease at two thirds of its life, and logs in again when renewal is refused
// or the max TTL leaves too little to renew. It runs in its own goroutine
// and closes done when it returns.
func (a *auth) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	retry := retryMin
	for {
		wait, ok := a.step(ctx)
		if ok {
			retry = retryMin
		} else {
			wait, retry = retry, min(2*retry, retryMax)
		}
		if !a.sleep(ctx, wait) {
			return
		}
	}
}

// sleep waits d (for ever if d < 0), or until the session changes. It
// returns false when ctx ends.
func (a *auth) sleep(ctx context.Context, d time.Duration) bool {
	var timeout <-chan time.Time
	if d >= 0 {
		c, stop := a.clock.NewTimer(d)
		defer stop()
		timeout = c
	}
	select {
	case <-ctx.Done():
		return false
	case <-a.wake:
	case <-timeout:
	}
	return true
}

// step does what is due now and says how long to wait for the next thing;
// ok is false when a call failed and should be retried after a back-off.
func (a *auth) step(ctx context.Context) (wait time.Duration, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	a.mu.Lock()
	s := a.cur
	a.mu.Unlock()
	if s == nil {
		_, err := a.login(ctx, nil)
		return 0, err == nil
	}
	if !s.known {
		return 0, a.lookup(ctx, s) == nil
	}
	a.mu.Lock()
	idle := s.ttl <= 0 || s.exhausted
	due := s.obtained.Add(s.ttl * 2 / 3)
	renew := s.renewable && !s.capped
	a.mu.Unlock()
	if idle {
		return -1, true
	}
	if d := due.Sub(a.now()); d > 0 {
		return d, true
	}
	if renew {
		err := a.renew(ctx, s)
		if err == nil {
			return 0, true
		}
		if statusOf(err) == 0 {
			return 0, false // no answer: try renewing again soon
		}
		// Refused (revoked, no longer renewable): log in instead.
	}
	n, err := a.login(ctx, s)
	if err != nil {
		return 0, false
	}
	if n == s {
		// The token file holds this very token: nothing can extend it.
		// Requests will notice a new file; the renewer waits to be woken.
		a.mu.Lock()
		s.exhausted = true
		a.mu.Unlock()
	}
	return 0, true
}

// renew extends s's lease by its original length. A lease that comes back
// shorter was capped by the max TTL: the next step logs in instead.
func (a *auth) renew(ctx context.Context, s *session) error {
	a.mu.Lock()
	inc := int(s.increment / time.Second)
	a.mu.Unlock()
	sec, err := s.client.Auth().Token().RenewSelfWithContext(ctx, inc)
	if err != nil {
		return readError(ctx, "renew token", err, s.token)
	}
	if sec == nil || sec.Auth == nil {
		// An answer without a lease cannot be scheduled: treat it as a
		// refusal, so the next step logs in.
		return &callError{sentinel: backend.ErrDenied, status: 200, msg: "renew token: the answer carries no lease"}
	}
	ttl, _ := sec.TokenTTL()
	renewable, _ := sec.TokenIsRenewable()
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	s.obtained, s.verified = now, now
	s.ttl, s.renewable = ttl, renewable
	s.capped = ttl < s.increment
	return nil
}

// lookup learns the lease of a token read from a file. If the server
// refuses to say (a revoked token, or a policy without lookup-self), the
// session is marked known with no lease: requests will meet the refusal.
func (a *auth) lookup(ctx context.Context, s *session) error {
	sec, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	now := a.now()
	if err != nil {
		err = readError(ctx, "look up token", err, s.token)
		if statusOf(err) == 0 {
			return err
		}
		a.mu.Lock()
		s.known = true
		a.mu.Unlock()
		return nil
	}
	ttl, _ := sec.TokenTTL()
	renewable, _ := sec.TokenIsRenewable()
	inc := ttl
	if sec != nil && sec.Data != nil {
		if n, ok := sec.Data["creation_ttl"].(json.Number); ok {
			if v, err := n.Int64(); err == nil && v > 0 {
				inc = time.Duration(v) * time.Second
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s.known, s.obtained, s.verified = true, now, now
	s.ttl, s.renewable, s.increment = ttl, renewable, inc
	return nil
}

package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// lockTTL is the writer lock's lease in seconds. A manager that dies
// holding the lock blocks other writers at most this long; a live one
// renews the lease every third of it, so a leader election (about a
// second) does not lose it.
const lockTTL = 15

// lockCtxKey marks a context whose holder owns a Medium's writer lock.
type lockCtxKey struct{}

type lockHold struct {
	m    *Medium
	mu   *concurrency.Mutex
	held atomic.Bool
}

// heldLock returns the mutex ctx holds on this medium, if any.
func (m *Medium) heldLock(ctx context.Context) *concurrency.Mutex {
	if h, ok := ctx.Value(lockCtxKey{}).(*lockHold); ok && h.m == m && h.held.Load() {
		return h.mu
	}
	return nil
}

// Lock takes the store-wide writer lock: this process's semaphore, then
// an etcd mutex (concurrency.Mutex: the oldest key under
// <prefix>.lock/ owns it) on a lease this Medium keeps alive. The store
// holds it around every read-modify-write and each step of a rekey, so
// that a writer always seals with the keyring's active key; that is what
// makes a rekey safe while other managers write. Compare-and-swap alone
// is not enough: a writer that read the keyring just before a rekey
// started could create a new record under the old key after the rekey
// listed the records, and the old key would then be dropped under it.
//
// Writes and deletes made with the returned context also check, in the
// same transaction, that the lock is still ours, so an expired lease
// (a long pause) cannot let two writers interleave. The returned func
// releases the lock; it is safe to call more than once.
//
// Lock honours ctx: if the lock is not ours by its deadline the call
// fails with backend.ErrUnavailable at once, and the abandoned attempt
// finishes and cleans up in the background.
func (m *Medium) Lock(ctx context.Context) (context.Context, func(), error) {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("wait for store lock: %w: %w", backend.ErrUnavailable, ctx.Err())
	}
	if m.closed.Load() {
		<-m.sem
		return nil, nil, fmt.Errorf("%s: %w: medium closed", m, backend.ErrUnavailable)
	}
	mu, err := m.acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	h := &lockHold{m: m, mu: mu}
	h.held.Store(true)
	var once sync.Once
	unlock := func() {
		once.Do(func() {
			h.held.Store(false)
			m.release(mu)
			<-m.sem
		})
	}
	return context.WithValue(ctx, lockCtxKey{}, h), unlock, nil
}

// acquire runs with the semaphore held and returns with it still held on
// success. On failure the semaphore is released, or handed to the
// goroutine finishing an abandoned attempt, which releases it.
func (m *Medium) acquire(ctx context.Context) (*concurrency.Mutex, error) {
	wctx, cancel := m.opCtx(ctx)
	defer cancel()
	renewed := false
	for attempt := 0; ; attempt++ {
		mu, err := m.tryLock(wctx)
		if mu != nil {
			return mu, nil
		}
		if errors.Is(err, errAbandoned) {
			return nil, m.fail(wctx, "lock store (held by another writer, or etcd unreachable)", wctx.Err())
		}
		switch {
		case !renewed && (errors.Is(err, concurrency.ErrSessionExpired) || errors.Is(err, rpctypes.ErrLeaseNotFound)):
			// The lease ran out (or was revoked) before our keep-alive
			// noticed: start over on a new one.
			m.dropSession()
			renewed = true
			continue
		case ambiguous(err) && !unreachable(err) && wctx.Err() == nil && attempt < maxResolve && pause(wctx, attempt) == nil:
			// A member died or lost leadership mid-request. Trying again
			// on the same session is safe: if our key landed, the mutex
			// finds and reuses it.
			continue
		}
		// Our key may have landed even though the request failed. Left
		// behind, it would hold the lock for every manager while we renew
		// the lease; revoking the lease removes it.
		m.dropSession()
		<-m.sem
		return nil, m.fail(wctx, "lock store", err)
	}
}

// errAbandoned: the caller's deadline passed while the mutex was still
// being acquired; the attempt now finishes in the background.
var errAbandoned = errors.New("lock attempt abandoned")

// tryLock makes one attempt at the etcd mutex on the current session.
func (m *Medium) tryLock(ctx context.Context) (*concurrency.Mutex, error) {
	sess, err := m.session(ctx)
	if err != nil {
		return nil, err
	}
	mu := concurrency.NewMutex(sess, m.lockPrefix)
	// Mutex.Lock, when its wait fails, removes its key with the client's
	// own context, which has no deadline. Run it aside so that our
	// caller's deadline holds whatever etcd does; the semaphore goes with
	// it, and is released when it is done.
	errc := make(chan error, 1)
	go func() { errc <- mu.Lock(ctx) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		go func() {
			if <-errc == nil {
				m.release(mu)
			} else {
				m.dropSession()
			}
			<-m.sem
		}()
		return nil, errAbandoned
	}
	if err != nil {
		if sessionDone(sess) {
			err = errors.Join(err, concurrency.ErrSessionExpired)
		}
		return nil, err
	}
	return mu, nil
}

// release unlocks mu, retrying through a leader election (deleting our
// own key is idempotent). If that still fails, revoking the lease
// removes the key; failing that too, it goes when the lease expires,
// since we stop renewing it. The next Lock starts a new session.
func (m *Medium) release(mu *concurrency.Mutex) {
	if err := m.settle(mu.Unlock); err != nil {
		m.dropSession()
	}
}

// session returns the live lock session, granting a new lease if there
// is none or it expired. It runs with the semaphore held.
func (m *Medium) session(ctx context.Context) (*concurrency.Session, error) {
	if m.sess != nil {
		if !sessionDone(m.sess) {
			return m.sess, nil
		}
		m.sess = nil
	}
	// Grant here rather than in NewSession, which would wait with the
	// client's context instead of ours.
	resp, err := m.cli.Grant(ctx, lockTTL)
	if err != nil {
		return nil, err
	}
	s, err := concurrency.NewSession(m.cli, concurrency.WithLease(resp.ID), concurrency.WithTTL(lockTTL))
	if err != nil {
		return nil, err
	}
	m.sess = s
	return s, nil
}

// dropSession stops renewing the lease and revokes it, which deletes our
// lock key if it is still there. It runs with the semaphore held.
func (m *Medium) dropSession() {
	s := m.sess
	if s == nil {
		return
	}
	m.sess = nil
	s.Orphan()
	// If this fails, the lease expires by itself within lockTTL.
	m.settle(func(ctx context.Context) error {
		_, err := m.cli.Revoke(ctx, s.Lease())
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil
		}
		return err
	})
}

// settle runs an idempotent clean-up call until it succeeds or fails for
// a reason retrying cannot fix, for at most the dial timeout: about what
// a leader election takes. Clean-up has no caller deadline to honour,
// and giving up early would leave the lock held for every manager.
func (m *Medium) settle(call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), m.dialTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		err := call(ctx)
		if err == nil || !ambiguous(err) {
			return err
		}
		if pause(ctx, attempt) != nil {
			return err
		}
	}
}

func sessionDone(s *concurrency.Session) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

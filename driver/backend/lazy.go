package backend

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// openTimeout bounds one attempt to open a backend. The attempt runs
	// apart from the request that started it, so a slow open finishes for
	// the next request instead of being thrown away.
	openTimeout = 30 * time.Second
	// retryAfter is how long a failed open is remembered: requests in that
	// window get the same error at once instead of hammering the backend.
	retryAfter = 2 * time.Second
	// maxWarmRetry bounds the pause between background opens (Warm).
	maxWarmRetry = 30 * time.Second
)

// Lazy opens its backend on first use and again after a failure, so a
// store created after the plugin started, or a backend that comes back, is
// picked up without a restart. It is itself a Backend.
type Lazy struct {
	typ      string
	settings Settings

	// opened mirrors b for the request path, which reads it without
	// taking mu (every request of a warm plugin asks for it).
	opened atomic.Pointer[openBackend]

	mu      sync.Mutex
	b       Backend
	lastErr error
	lastTry time.Time
	opening chan struct{} // closed when the open in progress ends
	now     func() time.Time
}

// NewLazy returns a Lazy for an instance of type typ; nothing is opened yet.
func NewLazy(typ string, s Settings) *Lazy {
	return &Lazy{typ: typ, settings: s, now: time.Now}
}

type openBackend struct{ b Backend }

// get returns the open backend, or the error of the latest attempt.
func (l *Lazy) get(ctx context.Context) (Backend, error) {
	if o := l.opened.Load(); o != nil {
		return o.b, nil
	}
	l.mu.Lock()
	if l.b != nil {
		b := l.b
		l.mu.Unlock()
		return b, nil
	}
	if l.opening == nil {
		if l.lastErr != nil && l.now().Sub(l.lastTry) < retryAfter {
			err := l.lastErr
			l.mu.Unlock()
			return nil, err
		}
		l.opening = make(chan struct{})
		go l.open(l.opening)
	}
	wait := l.opening
	l.mu.Unlock()

	select {
	case <-wait:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: still opening: %w", ErrUnavailable, ctx.Err())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b != nil {
		return l.b, nil
	}
	return nil, l.lastErr
}

// Warm opens the backend in the background, without waiting, so the first
// request does not pay for it, and reports each attempt's outcome. A failed
// open is tried again, after retryAfter and then twice as long each time up
// to maxWarmRetry, until it succeeds or stop is closed: a backend that keeps
// state of its own once open (etcd's local replica of the whole store) must
// be open on every manager, also on a follower that no request reaches, or
// it has nothing to answer from when it leads through an outage. A store
// initialised after the plugin started is picked up that way too.
func (l *Lazy) Warm(stop <-chan struct{}, report func(error)) {
	go func() {
		wait := retryAfter
		for {
			ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
			_, err := l.get(ctx)
			cancel()
			report(err)
			if err == nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, maxWarmRetry)
		}
	}()
}

// Opened returns the backend if it is open now, without opening it.
func (l *Lazy) Opened() (Backend, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b, l.b != nil
}

func (l *Lazy) open(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	b, err := Open(ctx, l.typ, l.settings)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastTry = l.now()
	if err != nil {
		l.lastErr = fmt.Errorf("%w: %w", ErrCannotOpen, err)
	} else {
		l.b, l.lastErr = b, nil
		l.opened.Store(&openBackend{b})
	}
	l.opening = nil
	close(done)
}

// Get opens the backend if needed and asks it.
func (l *Lazy) Get(ctx context.Context, ref Ref) (Secret, error) {
	b, err := l.get(ctx)
	if err != nil {
		return Secret{}, err
	}
	return b.Get(ctx, ref)
}

// GetFromMemory is [MemoryGetter]: the open backend's answer from memory,
// if it is open and can give one.
func (l *Lazy) GetFromMemory(ref Ref) (Secret, bool) {
	if o := l.opened.Load(); o != nil {
		if m, ok := o.b.(MemoryGetter); ok {
			return m.GetFromMemory(ref)
		}
	}
	return Secret{}, false
}

// Close closes the backend if it was opened.
func (l *Lazy) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b == nil {
		return nil
	}
	l.opened.Store(nil)
	err := l.b.Close()
	l.b = nil
	return err
}

package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// isUnavailable reports whether err means the backend could not answer,
// as opposed to an answer. Only these failures are served from copies and
// open the circuit.
func isUnavailable(err error) bool {
	switch {
	case err == nil:
		return false
	case isOpenFailure(err):
		return true
	case errors.Is(err, backend.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return !errors.Is(err, backend.ErrNotFound) && !errors.Is(err, backend.ErrInvalidRef) &&
		!errors.Is(err, backend.ErrDenied) && !errors.Is(err, backend.ErrCorrupt)
}

// isOpenFailure recognises the driver's lazy opener failing to open the
// backend. Such an error may wrap ErrNotFound (no store yet) or ErrCorrupt
// (wrong key), yet it says nothing about the value: the backend is simply
// not there, which is what copies are for.
func isOpenFailure(err error) bool {
	return errors.Is(err, backend.ErrCannotOpen)
}

// circuit remembers that the backend is failing, so that for RetryAfter
// requests are answered from copies without waiting on it; then a single
// request probes it. Guarded by Cache.mu.
type circuit struct {
	retryAfter time.Duration
	failing    bool
	until      time.Time // no call before this while failing
	probing    bool
	// last is the failure that opened it, of a call for lastKey at
	// lastAt. Backend errors name the secret asked for, so last is the
	// cause of lastKey's answers only, never of another key's.
	last    error
	lastKey key
	lastAt  time.Time
}

// admit says whether a backend call may start now, and whether it is the
// probe that decides if the circuit closes.
func (c *circuit) admit(now time.Time) (ok, probe bool) {
	switch {
	case !c.failing:
		return true, false
	case now.Before(c.until), c.probing:
		return false, false
	}
	c.probing = true
	return true, true
}

// report records the outcome of a call for k. Any answer, even not found
// or denied, shows the backend works; a caller giving up shows nothing.
func (c *circuit) report(now time.Time, k key, probe bool, err error, gaveUp bool) {
	if probe {
		c.probing = false
	}
	switch {
	case err != nil && gaveUp:
	case isUnavailable(err):
		c.failing, c.until = true, now.Add(c.retryAfter)
		c.last, c.lastKey, c.lastAt = err, k, now
	default:
		c.failing, c.last = false, nil
	}
}

// cause says why the backend is not being called for k: with the failure
// that opened the circuit only if that was k's own call. Another secret's
// failure names that secret and is its cause, not k's: an error for k
// only says when the backend last failed.
func (c *circuit) cause(now time.Time, k key) error {
	if c.last == nil {
		return errors.New("backend failing")
	}
	next := "retry in progress"
	if wait := c.until.Sub(now); wait > 0 {
		next = "next try in " + short(wait)
	}
	if k != c.lastKey {
		return fmt.Errorf("backend failing (a call for another secret failed %s ago), %s", short(max(now.Sub(c.lastAt), 0)), next)
	}
	return fmt.Errorf("backend failing, %s: %w", next, c.last)
}

// copyLocked returns e as a stale answer, with a clone of its value, or the
// error that says why it cannot serve it, built with cause only then (it is
// formatted, and serving a copy must stay as cheap as a hit). A copy found
// past MaxStale is wiped: it can never be served again.
func (c *Cache) copyLocked(e *entry, now time.Time, cause func() error) (backend.Secret, error) {
	if e == nil || e.kind != positive {
		return backend.Secret{}, noCopy(cause())
	}
	if c.o.MaxStale <= 0 {
		return backend.Secret{}, unavailable(cause())
	}
	age := now.Sub(e.at)
	if age > c.o.MaxStale || e.wiped {
		if !e.wiped {
			at := e.at
			e.wipe()
			e.wiped, e.at = true, at
		}
		return backend.Secret{}, tooOld(age, c.o.MaxStale, cause())
	}
	s := e.s
	s.Value = bytes.Clone(e.s.Value)
	s.Stale, s.Age, s.Varies = true, max(age, 0), false
	return s, nil
}

// unavailable makes sure err says the backend is unavailable.
func unavailable(err error) error {
	if errors.Is(err, backend.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", backend.ErrUnavailable, err)
}

func noCopy(cause error) error {
	return fmt.Errorf("%w and there is no last-known-good copy: %w", backend.ErrUnavailable, cause)
}

func tooOld(age, maxStale time.Duration, cause error) error {
	return fmt.Errorf("%w and the last-known-good copy is %s old (max stale %s): %w",
		backend.ErrUnavailable, short(age), short(maxStale), cause)
}

// short formats d for people: "2h0m", "1m30s", "250ms".
func short(d time.Duration) string {
	switch {
	case d >= time.Hour:
		d = d.Round(time.Minute)
	case d >= time.Second:
		d = d.Round(time.Second)
	default:
		d = d.Round(time.Millisecond)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}

package vault

import "time"

// clock is the time the session bookkeeping and the renewer go by. The
// backend uses the system clock; tests drive a fake one, so a lease of an
// hour is renewed without waiting for it.
type clock interface {
	Now() time.Time
	// NewTimer returns a channel that receives once d has passed, and a
	// func that stops the timer.
	NewTimer(d time.Duration) (<-chan time.Time, func() bool)
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

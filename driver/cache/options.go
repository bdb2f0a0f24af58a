package cache

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Recommended settings. New applies the first four to zero fields. Zero
// turns NegativeTTL and MaxStale off instead, so callers that want them
// (see DefaultOptions) pass them explicitly.
const (
	DefaultTTL         = 30 * time.Second
	DefaultMaxEntries  = 10000
	DefaultTimeout     = 2 * time.Second
	DefaultRetryAfter  = 2 * time.Second
	DefaultNegativeTTL = 5 * time.Second
	DefaultMaxStale    = time.Hour
)

// Options configure a Cache. Durations must not be negative.
type Options struct {
	// TTL is how long an answer is fresh: served without a backend call.
	// Zero means DefaultTTL.
	TTL time.Duration
	// NegativeTTL is how long a not-found answer is remembered. Zero
	// disables negative caching.
	NegativeTTL time.Duration
	// MaxEntries bounds the entries kept, positive and negative, evicting
	// the least recently used, and the copies waiting to be written to the
	// LKG. Zero means DefaultMaxEntries.
	MaxEntries int
	// MaxStale is how old a last-known-good copy may be and still be
	// served when the backend fails. Zero disables stale serving (and so
	// the LKG).
	MaxStale time.Duration
	// Timeout bounds one backend call, well under the driver's request
	// deadline so a stale copy can still be served after it. A call made
	// for one request gets min(its deadline, Timeout); a call shared by
	// coalesced requests gets Timeout, so the first caller giving up does
	// not cut it short for the others. Zero means DefaultTimeout.
	Timeout time.Duration
	// RetryAfter is how long after an unavailable failure the cache
	// answers from copies without calling the backend (an open circuit).
	// Zero means DefaultRetryAfter.
	RetryAfter time.Duration
	// LKG, when set (and MaxStale is not zero), keeps last-known-good
	// copies on disk so they survive a restart.
	LKG LKG
	// Prefetcher, when set, returns the backend's prefetch side and true
	// once it is open (see [Cache.Prefetch]), nil and true for an open
	// backend that cannot prefetch; Prefetch is how often the loop
	// started by New runs it, 0 for never. Both need an LKG.
	Prefetcher func() (backend.Prefetcher, bool)
	Prefetch   time.Duration
	// PrefetchDone, when set, hears each round's outcome (for the log).
	PrefetchDone func(saved, listed int, err error)
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// DefaultOptions returns the recommended settings, without an LKG.
func DefaultOptions() Options {
	return Options{
		TTL: DefaultTTL, NegativeTTL: DefaultNegativeTTL, MaxEntries: DefaultMaxEntries,
		MaxStale: DefaultMaxStale, Timeout: DefaultTimeout, RetryAfter: DefaultRetryAfter,
	}
}

func (o *Options) check() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ttl", o.TTL}, {"negative ttl", o.NegativeTTL}, {"max stale", o.MaxStale},
		{"timeout", o.Timeout}, {"retry after", o.RetryAfter},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("cache %s must not be negative, got %s", d.name, d.v))
		}
	}
	if o.MaxEntries < 0 {
		errs = append(errs, fmt.Errorf("cache size must not be negative, got %d", o.MaxEntries))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxStale == 0 {
		// A disk copy could never be served: do not pay for writing it.
		o.LKG = nil
	}
	return nil
}

// Stats are the cache's counters since New. They never shrink.
type Stats struct {
	Hits          uint64 // answered from a fresh entry
	Misses        uint64 // cacheable requests no fresh entry answered
	Coalesced     uint64 // misses that joined a call already in flight
	BackendCalls  uint64 // calls made to the backend
	BackendErrors uint64 // backend calls that failed, other than not found
	NegativeHits  uint64 // not-found answers served from memory
	StaleServed   uint64 // answers served from a last-known-good copy
	Evictions     uint64 // entries evicted to stay within MaxEntries
	LKGWrites     uint64 // copies written to the LKG
	LKGErrors     uint64 // LKG loads, writes or removals that failed, and copies dropped unwritten
	Prefetched    uint64 // documents a prefetch saved as last-known-good copies
	PrefetchStale uint64 // stale answers taken from a prefetched document
}

// counters are Stats, updated without the cache's lock.
type counters struct {
	hits, misses, coalesced, calls, callErrors, negHits, stale, evictions, lkgWrites, lkgErrors atomic.Uint64
	prefetched, prefetchStale                                                                   atomic.Uint64
}

func (n *counters) snapshot() Stats {
	return Stats{
		Hits: n.hits.Load(), Misses: n.misses.Load(), Coalesced: n.coalesced.Load(),
		BackendCalls: n.calls.Load(), BackendErrors: n.callErrors.Load(), NegativeHits: n.negHits.Load(),
		StaleServed: n.stale.Load(), Evictions: n.evictions.Load(),
		LKGWrites: n.lkgWrites.Load(), LKGErrors: n.lkgErrors.Load(),
		Prefetched: n.prefetched.Load(), PrefetchStale: n.prefetchStale.Load(),
	}
}

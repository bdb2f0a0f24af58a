package server

import (
	"context"
	"sync"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// A store's digest reads and MAC-checks every record, and /health is read
// every couple of seconds by the agent on every manager: computing it on
// each call would make the plugin read its whole store that often. So the
// digest is kept per store and recomputed only when the store says it
// changed (its change stamp moved), or when the kept one is older than
// digestMaxAge, which bounds how long a change the stamp does not see (a
// file edited by other hands, a store with no stamp) goes unshown.
const digestMaxAge = 30 * time.Second

// digestTimeout bounds one digest computation.
const digestTimeout = 5 * time.Second

// changeStamper is implemented by store backends that can say cheaply
// whether they changed (store.storeBackend, through the file store's
// shared change counter).
type changeStamper interface {
	ChangeStamp() (stamp uint64, ok bool)
}

// computeDigest computes one store's digest; tests count calls with it.
var computeDigest = func(ctx context.Context, d backend.Digester) (backend.StoreDigest, error) {
	return d.Digest(ctx)
}

// digestCache keeps each store's latest digest. One mutex: concurrent
// /health calls wait for one computation instead of each starting one.
type digestCache struct {
	mu   sync.Mutex
	now  func() time.Time
	kept map[string]keptDigest
}

type keptDigest struct {
	d       backend.StoreDigest
	at      time.Time
	stamp   uint64
	stamped bool
	opened  backend.Backend // the opened backend it was computed from
}

func newDigestCache() *digestCache {
	return &digestCache{now: time.Now, kept: map[string]keptDigest{}}
}

// get returns name's digest from b, computing it only if b changed since
// the kept one, or the kept one is too old; ok is false if it fails.
func (c *digestCache) get(name string, b backend.Backend, d backend.Digester) (backend.StoreDigest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var stamp uint64
	stamped := false
	if cs, ok := b.(changeStamper); ok {
		stamp, stamped = cs.ChangeStamp()
	}
	now := c.now()
	if k, ok := c.kept[name]; ok && k.opened == b && now.Sub(k.at) < digestMaxAge &&
		k.stamped == stamped && k.stamp == stamp {
		return k.d, true
	}
	// The stamp is read before the records: a write that lands while they
	// are read moves it again, so the next call recomputes.
	ctx, cancel := context.WithTimeout(context.Background(), digestTimeout)
	sd, err := computeDigest(ctx, d)
	cancel()
	if err != nil {
		delete(c.kept, name)
		return backend.StoreDigest{}, false
	}
	c.kept[name] = keptDigest{d: sd, at: now, stamp: stamp, stamped: stamped, opened: b}
	return sd, true
}

// storeDigests fingerprints the opened backends that can say what they
// serve; a backend that fails is left out (its readiness says why).
func (s *Server) storeDigests() map[string]backend.StoreDigest {
	out := map[string]backend.StoreDigest{}
	for name, l := range s.lazies {
		b, ok := l.Opened()
		if !ok {
			continue
		}
		d, ok := b.(backend.Digester)
		if !ok {
			continue
		}
		if sd, ok := s.digests.get(name, b, d); ok {
			out[name] = sd
		}
	}
	return out
}

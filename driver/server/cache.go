package server

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/cache"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// lkgOpenTimeout bounds opening a last-known-good store at start. It is
// local disk (plus argon2id with a passphrase), so seconds are plenty.
const lkgOpenTimeout = 10 * time.Second

// KeySource is the plugin's own key, which also seals last-known-good
// copies: they are values like any other and get the same protection.
func (c Config) KeySource() store.KeySource {
	if c.PassphraseFile != "" {
		return store.PassphraseFile(c.PassphraseFile)
	}
	return store.KeyFile(c.KeyFile)
}

// CacheOptions are the cache options of an instance's settings, without
// the last-known-good store.
func (b BackendConfig) CacheOptions() cache.Options {
	return cache.Options{
		TTL: b.Cache.TTL, NegativeTTL: b.Cache.NegativeTTL, MaxEntries: b.Cache.MaxEntries,
		MaxStale: b.Cache.MaxStale, Timeout: b.Cache.Timeout, RetryAfter: b.Cache.RetryAfter,
	}
}

// wrapCache puts a cache in front of a remote instance: the swarm leader
// waits on every answer, so a slow or stopped backend must cost at most one
// backend timeout per key, and a stopped one is answered from encrypted
// last-known-good copies within max_stale. It returns inner itself, and no
// cache, when the cache cannot be built.
func wrapCache(key store.KeySource, b BackendConfig, inner backend.Backend, opened func() (backend.Backend, bool), log logrus.FieldLogger) (backend.Backend, *cache.Cache) {
	o := b.CacheOptions()
	o.Prefetcher = func() (backend.Prefetcher, bool) {
		be, ok := opened()
		if !ok {
			return nil, false
		}
		p, _ := be.(backend.Prefetcher)
		return p, true // open; p is nil for a type that cannot prefetch
	}
	o.Prefetch = b.Cache.Prefetch
	var lastPrefetchErr string
	o.PrefetchDone = func(saved, listed int, err error) {
		// One goroutine calls this: no lock for lastPrefetchErr.
		switch {
		case err != nil && err.Error() != lastPrefetchErr:
			log.Warnf("prefetch (every manager's copies for a backend outage): %v; %d of %d listed documents saved; "+
				"fix: grant the plugin's Vault policy list on the metadata path (see the README), or set prefetch=off", err, saved, listed)
		case err == nil && lastPrefetchErr != "":
			log.Infof("prefetch works again: %d listed, %d saved", listed, saved)
		case err == nil && saved > 0:
			log.Debugf("prefetch: %d listed, %d saved", listed, saved)
		}
		lastPrefetchErr = ""
		if err != nil {
			lastPrefetchErr = err.Error()
		}
	}
	var lkg *store.Store
	if o.MaxStale > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), lkgOpenTimeout)
		s, err := cache.OpenLKGStore(ctx, b.Cache.LKGDir, key)
		cancel()
		if err != nil {
			// Serving without copies on disk beats not serving: memory
			// copies still cover short outages.
			log.Warnf("last-known-good copies off, only memory copies will cover outages: %v", err)
		} else {
			lkg = s
			o.LKG = cache.NewStoreLKG(s)
		}
	}
	c, err := cache.New(inner, o)
	if err != nil {
		// The settings were validated; this is a programming error, and
		// the backend still answers uncached.
		log.Errorf("cache off: %v", err)
		if lkg != nil {
			lkg.Close()
		}
		return inner, nil
	}
	return &cachedBackend{Cache: c, lkg: lkg}, c
}

// cachedBackend closes the last-known-good store after the cache.
type cachedBackend struct {
	*cache.Cache
	lkg *store.Store
}

func (c *cachedBackend) Close() error {
	err := c.Cache.Close()
	if c.lkg != nil && !errors.Is(err, cache.ErrStillWriting) {
		// With a write stuck on a failing disk, closing the store would
		// wait for it: the process exits instead, and the kernel drops
		// the store's lock.
		err = errors.Join(err, c.lkg.Close())
	}
	return err
}

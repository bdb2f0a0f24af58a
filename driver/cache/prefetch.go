package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Prefetch: every plugin keeps every document of a backend that can list
// (a [backend.Prefetcher]) as a last-known-good copy, in the same encrypted
// LKG as the copies of answers, so that a plugin that was never asked for a
// name (only the swarm leader's plugin is asked) still serves it through an
// outage. A document's copy is keyed by its address, apart from the copies
// of answers (which are keyed by the whole request); a request that finds
// no copy of its own is answered from its document's copy, stale, within
// MaxStale, never while the backend answers.

// prefetchRetry is how soon a round that could not run (backend not open
// yet, list refused) is tried again, until one succeeds.
const prefetchRetry = 30 * time.Second

// errNotOpen: the backend is not open yet (the plugin is starting); the
// loop tries again within a second, and says nothing.
var errNotOpen = fmt.Errorf("prefetch: %w: the backend is not open yet", backend.ErrUnavailable)

// prefetchListTimeout bounds one listing, which may take several requests.
const prefetchListTimeout = time.Minute

type prefetcher struct {
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex // serialises rounds; guards saved and swept
	saved map[string]savedDoc
	// swept: the copies an earlier run saved, which saved does not
	// know, were checked against a listing (see sweepDocs).
	swept bool
}

type savedDoc struct {
	sum [sha256.Size]byte
	at  time.Time
}

// docKey is the LKG key of the document at addr; its own domain keeps it
// apart from every request key, and its prefix lets an LKG list the
// document copies apart from the copies of answers ([docLister]).
func docKey(addr string) string {
	sum := sha256.Sum256([]byte("swarmkeep prefetch v1\x00" + addr))
	return docKeyPrefix + hex.EncodeToString(sum[:])
}

// docKeyPrefix starts every document copy's key.
const docKeyPrefix = "prefetch/"

// docLister is implemented by an LKG that can list the keys of the
// document copies it holds, including those an earlier run saved.
type docLister interface {
	docKeys(ctx context.Context) ([]string, error)
}

func (c *Cache) startPrefetch() {
	if c.o.Prefetcher == nil || c.lkg == nil {
		return
	}
	c.pf = &prefetcher{stop: make(chan struct{}), done: make(chan struct{}), saved: map[string]savedDoc{}}
	if c.o.Prefetch <= 0 {
		close(c.pf.done)
		return
	}
	go c.prefetchLoop()
}

func (c *Cache) stopPrefetch() {
	if c.pf == nil {
		return
	}
	select {
	case <-c.pf.stop:
	default:
		close(c.pf.stop)
	}
	<-c.pf.done
}

// prefetchLoop runs a round at start, then every Prefetch; a round that
// fails is retried sooner.
func (c *Cache) prefetchLoop() {
	defer close(c.pf.done)
	wait := time.Duration(0)
	for {
		t := time.NewTimer(wait)
		select {
		case <-c.pf.stop:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.pf.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		saved, listed, err := c.Prefetch(ctx)
		cancel()
		if errors.Is(err, errNotOpen) {
			wait = time.Second
			continue
		}
		if c.o.PrefetchDone != nil {
			c.o.PrefetchDone(saved, listed, err)
		}
		wait = c.o.Prefetch
		if err != nil && wait > prefetchRetry {
			wait = prefetchRetry
		}
	}
}

// Prefetch lists the backend and saves every document it holds as a
// last-known-good copy, skipping those unchanged since a save less than
// MaxStale/2 ago, and removes the copies of documents no longer listed
// (at the first round also those an earlier run saved, see sweepDocs). It
// returns how many it saved and listed; an error says what failed (the
// backend not open yet, the list refused, a read), and does not stop the
// other documents.
func (c *Cache) Prefetch(ctx context.Context) (saved, listed int, err error) {
	if c.pf == nil {
		return 0, 0, errors.New("prefetch: no last-known-good store, or a backend that cannot list")
	}
	p, ok := c.o.Prefetcher()
	switch {
	case !ok:
		return 0, 0, errNotOpen
	case p == nil:
		return 0, 0, nil // this backend cannot list: nothing to do
	}
	c.pf.mu.Lock()
	defer c.pf.mu.Unlock()
	lctx, cancel := context.WithTimeout(ctx, prefetchListTimeout)
	addrs, err := p.List(lctx)
	cancel()
	if err != nil {
		return 0, len(addrs), fmt.Errorf("prefetch: %w", err)
	}
	listed = len(addrs)
	var firstErr error
	seen := make(map[string]bool, len(addrs))
	for _, addr := range addrs {
		if ctx.Err() != nil {
			return saved, listed, ctx.Err()
		}
		seen[addr] = true
		fctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
		s, err := p.Fetch(fctx, addr)
		cancel()
		switch {
		case errors.Is(err, backend.ErrNotFound):
			// Deleted since the listing (or a deleted latest version).
			seen[addr] = false
			continue
		case err != nil:
			if firstErr == nil {
				firstErr = fmt.Errorf("prefetch %s: %w", addr, err)
			}
			continue
		}
		now := c.o.Now()
		sum := c.sum(s)
		if prev, ok := c.pf.saved[addr]; ok && prev.sum == sum && now.Sub(prev.at) < c.o.MaxStale/2 {
			clear(s.Value)
			continue
		}
		sctx, cancel := c.lkgContext()
		err = c.lkg.Save(sctx, docKey(addr), s, now)
		cancel()
		clear(s.Value)
		if err != nil {
			c.n.lkgErrors.Add(1)
			if firstErr == nil {
				firstErr = fmt.Errorf("prefetch %s: save the copy: %w", addr, err)
			}
			continue
		}
		c.pf.saved[addr] = savedDoc{sum: sum, at: now}
		c.n.prefetched.Add(1)
		saved++
	}
	if !c.pf.swept {
		if err := c.sweepDocs(ctx, seen); err != nil {
			if firstErr == nil {
				firstErr = err
			}
		} else {
			c.pf.swept = true
		}
	}
	if fg, ok := c.lkg.(Forgetter); ok {
		for addr := range c.pf.saved {
			if seen[addr] {
				continue
			}
			fctx, cancel := c.lkgContext()
			if err := fg.Forget(fctx, docKey(addr)); err == nil || errors.Is(err, backend.ErrNotFound) {
				delete(c.pf.saved, addr)
			}
			cancel()
		}
	}
	return saved, listed, firstErr
}

// sweepDocs forgets every document copy in the LKG whose address this
// round did not list (or found deleted), also those an earlier run saved:
// saved starts empty at each start, so without this a document deleted
// while the plugin was down kept its copy, and an outage served it, a
// revoked credential, up to MaxStale. It runs until one sweep succeeds.
func (c *Cache) sweepDocs(ctx context.Context, seen map[string]bool) error {
	dl, ok := c.lkg.(docLister)
	fg, ok2 := c.lkg.(Forgetter)
	if !ok || !ok2 {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, prefetchListTimeout)
	keys, err := dl.docKeys(lctx)
	cancel()
	keep := make(map[string]bool, len(seen))
	for addr, ok := range seen {
		if ok {
			keep[docKey(addr)] = true
		}
	}
	for _, k := range keys {
		if keep[k] {
			continue
		}
		fctx, cancel := c.lkgContext()
		ferr := fg.Forget(fctx, k)
		cancel()
		if ferr != nil && err == nil {
			err = ferr
		}
	}
	if err != nil {
		return fmt.Errorf("prefetch: forget the copies of documents no longer listed: %w", err)
	}
	return nil
}

// prefetchedCopy answers ref from the prefetched copy of its document, with
// the time that copy was fetched.
func (c *Cache) prefetchedCopy(ref backend.Ref) (backend.Secret, time.Time, error) {
	if c.pf == nil {
		return backend.Secret{}, time.Time{}, backend.ErrNotFound
	}
	p, ok := c.o.Prefetcher()
	if !ok || p == nil {
		return backend.Secret{}, time.Time{}, backend.ErrNotFound
	}
	addr, ok := p.Address(ref)
	if !ok {
		return backend.Secret{}, time.Time{}, backend.ErrNotFound
	}
	ctx, cancel := c.lkgContext()
	doc, saved, err := c.lkg.Load(ctx, docKey(addr))
	cancel()
	if err != nil {
		return backend.Secret{}, time.Time{}, err
	}
	s, err := p.FromDocument(ref, doc)
	if err != nil {
		return backend.Secret{}, time.Time{}, err
	}
	c.n.prefetchStale.Add(1)
	return s, saved, nil
}

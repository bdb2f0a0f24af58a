package store

import (
	"container/list"
	"sync"
)

// cacheBytes bounds the record cache. A typical record (one small value)
// accounts for about 300 bytes, so this holds a 100,000-name store whole:
// Swarm asks for any name at any time (every task, every failover), and a
// miss costs a file read, a MAC check and a parse. The memory is used only
// as records are read; a 10,000-name store keeps the plugin near 20 MiB RSS.
const cacheBytes = 48 << 20

// recordCache keeps parsed, MAC-checked records keyed by name, each with
// the medium revision it was read at. A Get that finds the same revision
// skips the read, the MAC and the parse: it costs one Stat and one AEAD
// open. It holds only ciphertext, never a plaintext value.
//
// Eviction is least recently used, by total encoded size.
type recordCache struct {
	mu    sync.Mutex
	max   int
	used  int
	order *list.List // of *cacheEntry, most recent first
	byKey map[string]*list.Element
}

type cacheEntry struct {
	name string
	rev  Revision
	rec  *record
	size int
}

func newRecordCache(max int) *recordCache {
	return &recordCache{max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

// get returns the cached record for name if it was read at rev.
func (c *recordCache) get(name string, rev Revision) *record {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[name]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if e.rev != rev {
		// Stale: the record changed on the medium. Drop it now rather
		// than let it hold memory until evicted.
		c.removeLocked(el)
		return nil
	}
	c.order.MoveToFront(el)
	return e.rec
}

// put caches rec, read at rev. A record larger than a quarter of the
// cache is not kept: it would evict everything else.
func (c *recordCache) put(name string, rev Revision, rec *record) {
	size := rec.size() + len(name) + 128
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[name]; ok {
		c.removeLocked(el)
	}
	if size > c.max/4 {
		return
	}
	c.byKey[name] = c.order.PushFront(&cacheEntry{name: name, rev: rev, rec: rec, size: size})
	c.used += size
	for c.used > c.max {
		c.removeLocked(c.order.Back())
	}
}

// drop forgets name; writers call it so this process never serves a
// record it has just replaced.
func (c *recordCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[name]; ok {
		c.removeLocked(el)
	}
}

func (c *recordCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order.Init()
	clear(c.byKey)
	c.used = 0
}

func (c *recordCache) removeLocked(el *list.Element) {
	e := c.order.Remove(el).(*cacheEntry)
	delete(c.byKey, e.name)
	c.used -= e.size
}

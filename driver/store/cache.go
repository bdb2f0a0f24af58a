package store

import (
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// Bounds of the record cache. Swarm asks for a name when a task starts, so
// the working set is the names of the services that run, not the whole
// store: 16,384 names keep every name of a 10,000-name store and the hot
// part of a larger one, in about 3.5 MB (each entry is about 210 bytes:
// the slot, the map entry, the ID and the sealed value). A miss costs a
// file read, a MAC check and a parse, a few microseconds. The byte bound
// keeps a few large values from holding memory that small ones would use
// better; a value over a sixty-fourth of it is never cached.
const (
	cacheEntries = 16384
	cacheBytes   = 4 << 20
)

// cachedVersion is the latest version of a record, as the cache keeps it:
// all that Get needs to open it, in two words and one allocation.
type cachedVersion struct {
	key     *dataKey
	num     uint64
	created int64
	sealed  []byte // nonce || ciphertext, its own allocation
}

func (v cachedVersion) size() int { return len(v.sealed) }

// record returns v as a one-version record of name.
func (v cachedVersion) record(name string) *record {
	const n = chacha20poly1305.NonceSizeX
	return &record{name: name, key: v.key, slim: true, versions: []sealedVersion{{
		num: v.num, created: v.created, nonce: v.sealed[:n:n], ct: v.sealed[n:],
	}}}
}

// cachedLatest copies the latest version of r for the cache; false if r
// has none.
func cachedLatest(r *record) (cachedVersion, bool) {
	if len(r.versions) == 0 {
		return cachedVersion{}, false
	}
	v := r.versions[len(r.versions)-1]
	buf := make([]byte, len(v.nonce)+len(v.ct))
	copy(buf, v.nonce)
	copy(buf[len(v.nonce):], v.ct)
	return cachedVersion{key: r.key, num: v.num, created: v.created, sealed: buf}, true
}

// recordCache keeps the latest version of recently read records, MAC-checked,
// keyed by an ID: the record's name when the store checks revisions with
// Stat, or the medium's ID for the key when a watch reports changes. It
// holds only ciphertext, never a plaintext value.
//
// Entries live in one slice linked into a least-recently-used list by
// index, so an entry costs no allocation besides its ID and sealed value.
//
// gen counts invalidations. A reader that missed notes it before reading
// the medium and caches what it read only if no invalidation came in
// between: otherwise a change reported while it was reading could be
// overwritten by the older record it read.
type recordCache struct {
	mu         sync.Mutex
	maxEntries int
	maxBytes   int
	used       int
	byID       map[string]int32
	slots      []cacheSlot
	free       []int32
	head, tail int32 // most and least recently used; -1 when empty
	gen        uint64
}

type cacheSlot struct {
	id         string
	rev        Revision
	v          cachedVersion
	prev, next int32
}

func newRecordCache(maxEntries, maxBytes int) *recordCache {
	return &recordCache{maxEntries: maxEntries, maxBytes: maxBytes, byID: map[string]int32{}, head: -1, tail: -1}
}

// get returns the cached version for id if it was read at rev, and the
// generation to pass to put after a miss.
func (c *recordCache) get(id string, rev Revision) (cachedVersion, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.byID[id]
	if !ok {
		return cachedVersion{}, false, c.gen
	}
	if c.slots[i].rev != rev {
		// Stale: the record changed on the medium. Drop it now rather
		// than let it hold memory until evicted.
		c.removeLocked(i)
		return cachedVersion{}, false, c.gen
	}
	c.unlinkLocked(i)
	c.pushFrontLocked(i)
	return c.slots[i].v, true, c.gen
}

// put caches v for id, read at rev, unless something was invalidated
// since gen was returned by get.
func (c *recordCache) put(id string, rev Revision, v cachedVersion, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.maxEntries <= 0 {
		return
	}
	if i, ok := c.byID[id]; ok {
		c.removeLocked(i)
	}
	if v.size() > c.maxBytes/64 {
		return
	}
	for c.tail >= 0 && (len(c.byID) >= c.maxEntries || c.used+v.size() > c.maxBytes) {
		c.removeLocked(c.tail)
	}
	var i int32
	if n := len(c.free); n > 0 {
		i, c.free = c.free[n-1], c.free[:n-1]
	} else {
		c.slots = append(c.slots, cacheSlot{})
		i = int32(len(c.slots) - 1)
	}
	c.slots[i] = cacheSlot{id: id, rev: rev, v: v}
	c.byID[id] = i
	c.used += v.size()
	c.pushFrontLocked(i)
}

// drop forgets id: a writer in this process, or a watch, reports it
// changed.
func (c *recordCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if i, ok := c.byID[id]; ok {
		c.removeLocked(i)
	}
}

// reset forgets everything.
func (c *recordCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.byID)
	c.slots, c.free = nil, nil
	c.head, c.tail, c.used = -1, -1, 0
}

func (c *recordCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID)
}

func (c *recordCache) removeLocked(i int32) {
	c.unlinkLocked(i)
	delete(c.byID, c.slots[i].id)
	c.used -= c.slots[i].v.size()
	c.slots[i] = cacheSlot{}
	c.free = append(c.free, i)
}

func (c *recordCache) unlinkLocked(i int32) {
	s := &c.slots[i]
	if s.prev >= 0 {
		c.slots[s.prev].next = s.next
	} else {
		c.head = s.next
	}
	if s.next >= 0 {
		c.slots[s.next].prev = s.prev
	} else {
		c.tail = s.prev
	}
}

func (c *recordCache) pushFrontLocked(i int32) {
	s := &c.slots[i]
	s.prev, s.next = -1, c.head
	if c.head >= 0 {
		c.slots[c.head].prev = i
	}
	c.head = i
	if c.tail < 0 {
		c.tail = i
	}
}

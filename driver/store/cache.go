package store

import (
	"encoding/binary"
	"hash/maphash"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/unix"
)

// cacheBytes bounds the record cache. Swarm asks for a name when a task
// starts, so the working set is the names of the services that run, not
// the whole store. An entry of a typical value (a few dozen bytes) takes
// about 150 bytes, so 12 MiB keeps every name of a store of up to about
// 85,000 names; a miss costs a file read, a MAC check and a parse, a few
// tens of microseconds. Measured with 100,000 names: 10 MiB gave a c=1
// p50 1.15-1.25x the 10-name store's, 12 MiB 1.11-1.14x at 35 MiB of RSS
// (bound 40), 14 MiB 1.08x at 37 MiB. The ring is mapped outside the Go
// heap and its pages are touched only as entries fill them, so a small
// store pays only for what it holds. A value over a sixty-fourth of it
// (192 KiB) is never cached.
const cacheBytes = 12 << 20

// cachedVersion is the latest version of a record, as the cache gives it
// back: all that Get needs to open it.
type cachedVersion struct {
	keyID   uint32
	num     uint64
	created int64
	sealed  []byte // nonce || ciphertext, a copy of the caller's own
}

// record returns v as a one-version record of name, sealed with key.
func (v cachedVersion) record(name string, key *dataKey) *record {
	const n = chacha20poly1305.NonceSizeX
	return &record{name: name, key: key, slim: true, versions: []sealedVersion{{
		num: v.num, created: v.created, nonce: v.sealed[:n:n], ct: v.sealed[n:],
	}}}
}

// cachedLatest returns the latest version of r for the cache; false if r
// has none.
func cachedLatest(r *record) (cachedVersion, bool) {
	if len(r.versions) == 0 {
		return cachedVersion{}, false
	}
	v := r.versions[len(r.versions)-1]
	sealed := make([]byte, 0, len(v.nonce)+len(v.ct))
	sealed = append(append(sealed, v.nonce...), v.ct...)
	return cachedVersion{keyID: r.key.id, num: v.num, created: v.created, sealed: sealed}, true
}

// recordCache keeps the latest version of recently read records, MAC-checked,
// keyed by an ID: the record's name when the store checks revisions with
// Stat, or the medium's ID for the key when a watch reports changes. It
// holds only ciphertext, never a plaintext value.
//
// Entries are packed one after another into a ring of cacheBytes, written
// at the head and evicted from the tail (first in, first out; an entry hit
// while in the oldest quarter is written again at the head, so the names
// in use stay). The ring is mapped outside the Go heap: it holds no
// pointers, the garbage collector neither scans it nor counts it when it
// sizes the heap, and only the part written so far is resident. The
// index maps a hash of the ID to the entry's offset (the entry keeps the
// ID, so a collision is a miss, never a wrong record). About 150 bytes an
// entry in all, where a Go object per record cost 370 bytes of RSS.
//
// gen counts invalidations. A reader that missed notes it before reading
// the medium and caches what it read only if no invalidation came in
// between: otherwise a change reported while it was reading could be
// overwritten by the older record it read.
type recordCache struct {
	mu    sync.Mutex
	ring  []byte
	heap  bool // ring is a Go slice (mmap failed, or tests)
	head  int  // where the next entry goes
	tail  int  // the oldest entry
	used  int  // bytes from tail to head, skipped ends included
	index map[uint64]uint32
	seed  maphash.Seed
	gen   uint64
}

// Entry layout: total length (4, the whole entry, padded to 8), key ID
// (4), version (8), created (8), ID length (2), revision length (2), then
// ID, revision, nonce and ciphertext, and the length of those last two
// (4). A total with skipFlag set marks the skipped end of the ring.
const (
	cacheHeader = 28
	skipFlag    = 1 << 31
)

func newRecordCache(size int) *recordCache {
	c := &recordCache{index: map[uint64]uint32{}, seed: maphash.MakeSeed()}
	size &^= 7
	if size <= 0 {
		return c
	}
	if b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err == nil {
		c.ring = b
	} else {
		c.ring, c.heap = make([]byte, size), true
	}
	return c
}

func (c *recordCache) hash(id string) uint64 { return maphash.String(c.seed, id) }

// get returns the cached version for id if it was read at rev, and the
// generation to pass to put after a miss.
func (c *recordCache) get(id string, rev Revision) (cachedVersion, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hash(id)
	off, ok := c.index[h]
	if !ok || c.ring == nil {
		return cachedVersion{}, false, c.gen
	}
	e := c.ring[off:]
	total := int(binary.LittleEndian.Uint32(e))
	idLen, revLen := int(binary.LittleEndian.Uint16(e[24:])), int(binary.LittleEndian.Uint16(e[26:]))
	body := e[cacheHeader:total]
	if string(body[:idLen]) != id {
		return cachedVersion{}, false, c.gen // another ID with the same hash
	}
	if string(body[idLen:idLen+revLen]) != string(rev) {
		// Stale: the record changed on the medium.
		delete(c.index, h)
		return cachedVersion{}, false, c.gen
	}
	v := cachedVersion{
		keyID:   binary.LittleEndian.Uint32(e[4:]),
		num:     binary.LittleEndian.Uint64(e[8:]),
		created: int64(binary.LittleEndian.Uint64(e[16:])),
	}
	sealedLen := int(binary.LittleEndian.Uint32(body[len(body)-4:]))
	v.sealed = append([]byte(nil), body[idLen+revLen:idLen+revLen+sealedLen]...)
	if (int(off)-c.tail+len(c.ring))%len(c.ring) < len(c.ring)/4 {
		c.putLocked(h, id, rev, v) // about to be evicted, yet in use
	}
	return v, true, c.gen
}

// put caches v for id, read at rev, unless something was invalidated
// since gen was returned by get.
func (c *recordCache) put(id string, rev Revision, v cachedVersion, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.ring == nil {
		return
	}
	c.putLocked(c.hash(id), id, rev, v)
}

func (c *recordCache) putLocked(h uint64, id string, rev Revision, v cachedVersion) {
	delete(c.index, h)
	// The sealed length goes last, so the body can be read from its end.
	total := (cacheHeader + len(id) + len(rev) + len(v.sealed) + 4 + 7) &^ 7
	if total > len(c.ring)/64 || len(id) > 0xffff || len(rev) > 0xffff {
		return
	}
	if c.head+total > len(c.ring) {
		// No room before the end: skip it and start again at 0.
		skip := len(c.ring) - c.head
		c.makeRoom(skip)
		binary.LittleEndian.PutUint32(c.ring[c.head:], uint32(skip)|skipFlag)
		c.head, c.used = 0, c.used+skip
	}
	c.makeRoom(total)
	e := c.ring[c.head : c.head+total]
	binary.LittleEndian.PutUint32(e, uint32(total))
	binary.LittleEndian.PutUint32(e[4:], v.keyID)
	binary.LittleEndian.PutUint64(e[8:], v.num)
	binary.LittleEndian.PutUint64(e[16:], uint64(v.created))
	binary.LittleEndian.PutUint16(e[24:], uint16(len(id)))
	binary.LittleEndian.PutUint16(e[26:], uint16(len(rev)))
	n := cacheHeader
	n += copy(e[n:], id)
	n += copy(e[n:], rev)
	copy(e[n:], v.sealed)
	binary.LittleEndian.PutUint32(e[total-4:], uint32(len(v.sealed)))
	c.index[h] = uint32(c.head)
	c.head += total
	c.used += total
	if c.head == len(c.ring) {
		c.head = 0
	}
}

// makeRoom evicts the oldest entries until n bytes are free at the head.
func (c *recordCache) makeRoom(n int) {
	for len(c.ring)-c.used < n {
		e := c.ring[c.tail:]
		word := binary.LittleEndian.Uint32(e)
		total := int(word &^ skipFlag)
		if word&skipFlag == 0 {
			idLen := int(binary.LittleEndian.Uint16(e[24:]))
			h := c.hash(string(e[cacheHeader : cacheHeader+idLen]))
			if off, ok := c.index[h]; ok && int(off) == c.tail {
				delete(c.index, h)
			}
		}
		c.tail += total
		c.used -= total
		if c.tail == len(c.ring) {
			c.tail = 0
		}
	}
}

// drop forgets id: a writer in this process, or a watch, reports it
// changed.
func (c *recordCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.index, c.hash(id))
}

// reset forgets everything.
func (c *recordCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
}

func (c *recordCache) resetLocked() {
	c.gen++
	clear(c.index)
	c.head, c.tail, c.used = 0, 0, 0
}

// close forgets everything and unmaps the ring.
func (c *recordCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
	if c.ring != nil && !c.heap {
		unix.Munmap(c.ring)
	}
	c.ring = nil
}

func (c *recordCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.index)
}

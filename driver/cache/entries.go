package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// key identifies one answer: a SHA-256 over every Ref field that can change
// it. A digest rather than the fields themselves keeps entries small however
// many labels a secret has, and is stable across restarts, as LKG keys must
// be. Reuse is left out: a Reuse false reference is never cached.
type key [sha256.Size]byte

// keyDomain versions the encoding: a change to it must change every key,
// so old disk copies are simply never found.
const keyDomain = "swarmkeep cache key v1\x00"

func keyOf(ref backend.Ref) key {
	// One pass over a stack buffer: this runs on every hit.
	var buf [1024]byte
	b := append(buf[:0], keyDomain...)
	b = binary.BigEndian.AppendUint64(b, ref.Version)
	for _, s := range [...]string{ref.Name, ref.Path, ref.Field, ref.Stack, ref.Service, ref.Secret} {
		b = appendString(b, s)
	}
	return sha256.Sum256(appendLabels(b, ref.Labels))
}

// appendLabels encodes the labels in key order, each length-prefixed after
// their count, so no two different maps encode the same.
func appendLabels(b []byte, labels map[string]string) []byte {
	var arr [16]string
	keys := arr[:0]
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(labels)))
	for _, k := range keys {
		b = appendString(appendString(b, k), labels[k])
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// String is the key as the LKG sees it.
func (k key) String() string { return hex.EncodeToString(k[:]) }

type kind uint8

const (
	positive kind = iota // a value (or a wiped one, past MaxStale)
	negative             // not found
	varies               // the backend said Varies: fetch per request
)

// entry is one key's latest knowledge. It is updated in place, so what it
// knows about the LKG copy survives a refresh.
type entry struct {
	k key
	// name is the stored name asked for (Ref.Name), so Refresh can find
	// a name's entries, whose keys are digests.
	name string
	kind kind
	// s is the answer; s.Value is the cache's own copy, zeroed when
	// dropped. Callers only ever get clones of it.
	s backend.Secret
	// err is the backend's not-found error, for a negative entry.
	err error
	// at is when the backend gave this answer, or when the disk copy it
	// was loaded from was saved: ages are measured from it.
	at time.Time
	// fromLKG marks a copy loaded from disk: it is served only when the
	// backend fails, never as fresh.
	fromLKG bool
	// wiped marks a value zeroed past MaxStale: kept only to say how old
	// the newest copy was.
	wiped bool
	lkg   lkgState

	prev, next *entry // LRU list, most recent after the sentinel
}

// wipe zeroes and drops the value.
func (e *entry) wipe() {
	clear(e.s.Value)
	e.s = backend.Secret{}
	e.err = nil
	e.wiped = false
}

// lru holds the entries: a map for lookups and a circular list through a
// sentinel for recency. Not safe for concurrent use: the Cache's lock
// guards it.
type lru struct {
	m    map[key]*entry
	root entry
	max  int
}

func newLRU(max int) *lru {
	l := &lru{m: make(map[key]*entry), max: max}
	l.root.prev, l.root.next = &l.root, &l.root
	return l
}

func (l *lru) len() int { return len(l.m) }

// peek returns k's entry without making it recent.
func (l *lru) peek(k key) *entry { return l.m[k] }

// touch makes e the most recent.
func (l *lru) touch(e *entry) {
	l.unlink(e)
	l.pushFront(e)
}

// upsert returns k's entry, made most recent, creating it if needed. The
// caller fills it in. It returns how many entries it evicted (wiped) to
// stay within max.
func (l *lru) upsert(k key) (e *entry, evicted int) {
	if e = l.m[k]; e != nil {
		l.touch(e)
		return e, 0
	}
	e = &entry{k: k}
	l.m[k] = e
	l.pushFront(e)
	for len(l.m) > l.max && l.root.prev != e {
		l.remove(l.root.prev)
		evicted++
	}
	return e, evicted
}

// remove wipes e and forgets it.
func (l *lru) remove(e *entry) {
	l.unlink(e)
	delete(l.m, e.k)
	e.wipe()
}

// clear wipes and forgets every entry.
func (l *lru) clear() {
	for _, e := range l.m {
		e.wipe()
	}
	clear(l.m)
	l.root.prev, l.root.next = &l.root, &l.root
}

func (l *lru) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (l *lru) pushFront(e *entry) {
	e.prev, e.next = &l.root, l.root.next
	l.root.next.prev = e
	l.root.next = e
}

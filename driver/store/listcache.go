package store

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// The listing cache: what the last listing of a folder store read of each
// record, under the record file's ObjectID, so the next listing opens and
// parses only the records written since and stats the others (one system
// call per record instead of three, and no parse or MAC check). It is a
// cache: anything wrong with it (absent, another store's, another key's,
// damaged, a write that fails on a read-only folder) only costs a full
// read. Its format is in FORMAT.md ("Listing cache").
const (
	listCacheFile    = ".list-cache"
	listCacheMagic   = "swkC"
	listCacheVersion = 1
)

// listCacheMedium is a medium that can keep a listing cache (DirMedium).
type listCacheMedium interface {
	KnownScanner
	listCachePath() string
}

func (m *DirMedium) listCachePath() string { return filepath.Join(m.root, listCacheFile) }

// listed is one record as a listing read it.
type listed struct {
	obj   [sha256.Size]byte // the object file's name, decoded
	id    ObjectID
	entry Entry // no versions: a removed name, kept for its counter
}

// listCache is a cache as read: its records, and where each one is by
// object name.
type listCache struct {
	items []listed
	index map[[sha256.Size]byte]int
}

// listKnown is List on a medium with a listing cache.
func (s *Store) listKnown(ctx context.Context, m listCacheMedium, fn func(Entry) error) error {
	mac := s.listCacheKey()
	path := m.listCachePath()
	old := readListCache(path, s.id, mac)
	// seen[i]: old.items[i] is on the medium as remembered. Each object
	// is looked at once, by one worker: no two write the same element.
	seen := make([]bool, len(old.items))
	at := func(obj string) (int, bool) {
		key, ok := decodeObjectName(obj)
		if !ok {
			return 0, false
		}
		i, ok := old.index[key]
		return i, ok
	}
	known := Known{
		Remembered: func(obj string) (ObjectID, bool) {
			i, ok := at(obj)
			if !ok {
				return ObjectID{}, false
			}
			return old.items[i].id, true
		},
		Unchanged: func(obj string) {
			if i, ok := at(obj); ok {
				seen[i] = true
			}
		},
	}
	var (
		mu    sync.Mutex
		fresh []listed
		extra []Entry // read again after a keyring reload: listed, not kept
		bad   []error
	)
	err := m.ScanKnown(ctx, recordPrefix, known, func(obj string, id ObjectID, key string, blob []byte) error {
		rec, reread, err := s.recordOf(ctx, key, blob)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			bad = append(bad, err)
		case rec == nil: // removed while listed
		case reread:
			// Read again after a keyring reload: what it holds may not
			// be what id names, so it is listed but not remembered.
			extra = append(extra, rec.entry())
		default:
			name, _ := decodeObjectName(obj)
			fresh = append(fresh, listed{obj: name, id: id, entry: rec.entry()})
		}
		return nil
	})
	// Damaged object files are reported with the rest, as eachRecord
	// does: the listing and its cache go on without them.
	var objs badObjects
	if errors.As(err, &objs) {
		for _, o := range objs {
			bad = append(bad, fmt.Errorf("%s: %w", o.where, o.err))
		}
		err = nil
	}
	s.listRead.Store(int64(len(fresh) + len(extra) + len(bad)))
	if err != nil {
		return err
	}
	kept := make([]listed, 0, len(old.items)+len(fresh))
	for i := range old.items {
		if seen[i] {
			kept = append(kept, old.items[i])
		}
	}
	if len(kept) != len(old.items) || len(fresh) > 0 {
		kept = append(kept, fresh...)
		// A cache: a failed write costs the next listing time only.
		_ = writeListCache(path, s.id, mac, kept)
	}
	entries := extra
	for i := range kept {
		if len(kept[i].entry.Versions) > 0 {
			entries = append(entries, kept[i].entry)
		}
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	for _, e := range entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return errors.Join(bad...)
}

// decodeObjectName is hex.Decode of an object file name, without the
// allocation of a []byte conversion: it runs once per record listed.
func decodeObjectName(obj string) (out [sha256.Size]byte, ok bool) {
	if len(obj) != 2*sha256.Size {
		return out, false
	}
	for i := range out {
		hi, ok1 := fromHex(obj[2*i])
		lo, ok2 := fromHex(obj[2*i+1])
		if !ok1 || !ok2 {
			return out, false
		}
		out[i] = hi<<4 | lo
	}
	return out, true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// listCacheKey authenticates the listing cache: only a holder of the
// store's key can make one that is used.
func (s *Store) listCacheKey() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	key, err := hkdf.Key(sha256.New, s.kek, s.id, "swarmkeep mac key: list cache", 32)
	if err != nil {
		return nil
	}
	return key
}

// readListCache returns the cache at path; it is empty unless this store
// and key made it.
func readListCache(path string, storeID, mac []byte) listCache {
	var none listCache
	b, err := os.ReadFile(path)
	if err != nil || mac == nil || len(b) < len(listCacheMagic)+1+len(storeID)+sha256.Size {
		return none
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	h := hmac.New(sha256.New, mac)
	h.Write(body)
	if !hmac.Equal(h.Sum(nil), sum) {
		return none
	}
	if string(body[:4]) != listCacheMagic || body[4] != listCacheVersion || !bytes.Equal(body[5:5+len(storeID)], storeID) {
		return none
	}
	d := decoder{b: body[5+len(storeID):]}
	n := d.uvarint()
	if n > uint64(len(d.b))/sha256.Size { // every entry starts with an object name
		return none
	}
	c := listCache{items: make([]listed, n), index: make(map[[sha256.Size]byte]int, n)}
	// One backing array for every entry's versions: a listing of 100,000
	// names would otherwise make 100,000 small slices for the collector.
	var versions []VersionInfo
	for i := range c.items {
		l := &c.items[i]
		copy(l.obj[:], d.bytes(sha256.Size))
		l.id = ObjectID{Ino: d.uvarint(), Size: d.varint(), Mtime: d.varint(), Ctime: d.varint()}
		l.entry.Name = string(d.bytes(int(min(d.uvarint(), maxNameLen+1))))
		nv := d.uvarint()
		if d.err || nv > uint64(len(d.b)) || ValidateName(l.entry.Name) != nil {
			return none
		}
		if cap(versions)-len(versions) < int(nv) {
			versions = make([]VersionInfo, 0, max(int(nv), 4096))
		}
		start := len(versions)
		for range nv {
			versions = append(versions, VersionInfo{Version: d.uvarint(), Created: time.Unix(0, d.varint()), Size: int(d.uvarint())})
		}
		l.entry.Versions = versions[start:len(versions):len(versions)]
		if d.err {
			return none
		}
		c.index[l.obj] = i
	}
	if len(d.b) != 0 || len(c.index) != len(c.items) {
		return none
	}
	return c
}

// writeListCache replaces the cache at path with entries, atomically.
func writeListCache(path string, storeID, mac []byte, entries []listed) error {
	if mac == nil {
		return errors.New("no key for the listing cache")
	}
	b := make([]byte, 0, 64+80*len(entries))
	b = append(b, listCacheMagic...)
	b = append(b, listCacheVersion)
	b = append(b, storeID...)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for i := range entries {
		l := &entries[i]
		b = append(b, l.obj[:]...)
		b = binary.AppendUvarint(b, l.id.Ino)
		b = binary.AppendVarint(b, l.id.Size)
		b = binary.AppendVarint(b, l.id.Mtime)
		b = binary.AppendVarint(b, l.id.Ctime)
		b = binary.AppendUvarint(b, uint64(len(l.entry.Name)))
		b = append(b, l.entry.Name...)
		b = binary.AppendUvarint(b, uint64(len(l.entry.Versions)))
		for _, v := range l.entry.Versions {
			b = binary.AppendUvarint(b, v.Version)
			b = binary.AppendVarint(b, v.Created.UnixNano())
			b = binary.AppendUvarint(b, uint64(v.Size))
		}
	}
	h := hmac.New(sha256.New, mac)
	h.Write(b)
	b = h.Sum(b)
	var suffix [8]byte
	rand.Read(suffix[:])
	tmp := path + ".tmp-" + hex.EncodeToString(suffix[:])
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// decoder reads the cache's varints; err sticks once anything is short.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if n < 0 || n > len(d.b) {
		d.err = true
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// VersionInfo describes one kept version, without its value.
type VersionInfo struct {
	Version uint64
	Created time.Time
	Size    int // bytes of the value
}

// Entry describes one stored name: its kept versions, oldest first.
type Entry struct {
	Name     string
	Versions []VersionInfo
}

// Get returns the value of name at version, or the latest for 0. It is
// the hot path (Swarm calls it for every task): with the record cached it
// costs one AEAD open and, on a medium that reports changes (see
// [Watcher]), a look at its change counter (DirMedium: one load from
// shared memory while nothing changed), else one Stat. A value written by
// another swarmkeep process is seen by the next Get either way; a file
// changed by other hands, which moves no change counter, is seen with Stat
// at once and with a watch only once the runtime's poller wakes up (see
// FORMAT.md, "Change counter").
//
// Errors name the record and wrap backend.ErrNotFound, ErrInvalidRef,
// ErrCorrupt or ErrUnavailable.
func (s *Store) Get(ctx context.Context, name string, version uint64) (backend.Secret, error) {
	if err := ValidateName(name); err != nil {
		return backend.Secret{}, err
	}
	rec, err := s.load(ctx, name, true)
	if err != nil {
		return backend.Secret{}, err
	}
	v, err := rec.find(version)
	if err != nil && rec.slim {
		// The cache keeps only the latest version: read a pinned older one.
		if rec, err = s.load(ctx, name, false); err != nil {
			return backend.Secret{}, err
		}
		v, err = rec.find(version)
	}
	if err != nil {
		return backend.Secret{}, recordErr(name, err)
	}
	value, err := rec.open(s.id, v)
	if err != nil {
		return backend.Secret{}, recordErr(name, err)
	}
	return backend.Secret{Value: value, Version: v.num, Created: time.Unix(0, v.created)}, nil
}

// getFromMemory answers Get(name, version) from the record cache, while a
// watch reports changes, with no I/O: it is Get's answer when the record is
// cached, and false when Get would have to look at the medium (not cached,
// no watch, an older version, a key dropped by a rekey, any error).
func (s *Store) getFromMemory(name string, version uint64) (backend.Secret, bool) {
	if s.closed.Load() || ValidateName(name) != nil {
		return backend.Secret{}, false
	}
	w := s.watching()
	if w == nil {
		return backend.Secret{}, false // revisions are checked with Stat: I/O
	}
	v, ok, _ := s.cache.get(w.ID(recordKey(name)), "")
	if !ok {
		return backend.Secret{}, false
	}
	key := s.ringNow().keys[v.keyID]
	if key == nil {
		return backend.Secret{}, false
	}
	rec := v.record(name, key)
	sv, err := rec.find(version)
	if err != nil {
		return backend.Secret{}, false
	}
	value, err := rec.open(s.id, sv)
	if err != nil {
		return backend.Secret{}, false
	}
	return backend.Secret{Value: value, Version: sv.num, Created: time.Unix(0, sv.created)}, true
}

// load returns name's record, parsed and MAC-checked, from the cache when
// its revision still matches. A record sealed with a key we do not know
// makes us reload the keyring and read again: that is how a reader
// follows a rekey run by another process.
func (s *Store) load(ctx context.Context, name string, useCache bool) (*record, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, recordErr(name, fmt.Errorf("%w: %w", backend.ErrUnavailable, err))
	}
	key := recordKey(name)
	for attempt := 0; ; attempt++ {
		var id string
		var rev Revision
		var gen uint64
		if useCache {
			rec, cid, crev, cgen, err := s.cachedRecord(ctx, name)
			if err != nil {
				return nil, recordErr(name, plainNotFound(err))
			}
			if rec != nil {
				return rec, nil
			}
			id, rev, gen = cid, crev, cgen
		}
		blob, readRev, err := s.m.Read(ctx, key)
		if err != nil {
			return nil, recordErr(name, plainNotFound(err))
		}
		rec, err := s.parse(blob, name, s.ringNow())
		var uk unknownKeyError
		if errors.As(err, &uk) && attempt < keyReloads {
			if _, err := s.refreshRing(ctx); err != nil {
				return nil, recordErr(name, err)
			}
			continue
		}
		if err != nil {
			return nil, recordErr(name, err)
		}
		if useCache {
			if rev != "" {
				// Checked by Stat: cache under the revision of the very
				// file read, which may be newer than the one Stat saw.
				rev = readRev
			}
			if v, ok := cachedLatest(rec); ok {
				s.cache.put(id, rev, v, gen)
			}
		}
		return rec, nil
	}
}

// plainNotFound drops the medium's detail from a not-found error: the
// record name says it all ("record "x": not found").
func plainNotFound(err error) error {
	if errors.Is(err, backend.ErrNotFound) {
		return backend.ErrNotFound
	}
	return err
}

func (s *Store) parse(blob []byte, name string, ring *keyring) (*record, error) {
	return parseRecord(blob, name, s.id, func(id uint32) *dataKey { return ring.keys[id] })
}

// Info describes name's kept versions without decrypting anything. It
// reads the medium: the cache keeps only the latest version.
func (s *Store) Info(ctx context.Context, name string) (Entry, error) {
	if err := ValidateName(name); err != nil {
		return Entry{}, err
	}
	rec, err := s.load(ctx, name, false)
	if err != nil {
		return Entry{}, err
	}
	if len(rec.versions) == 0 {
		return Entry{}, recordErr(name, backend.ErrNotFound)
	}
	return rec.entry(), nil
}

// List calls fn with every stored name, in name order. It checks the MAC
// of each record it reads but never decrypts a value; on a folder store it
// reads only the records written since the last listing (listcache.go). Damaged records do not stop
// the listing: they are reported together in the returned error
// (wrapping backend.ErrCorrupt). An error from fn stops it.
func (s *Store) List(ctx context.Context, fn func(Entry) error) error {
	if m, ok := s.m.(listCacheMedium); ok && !s.closed.Load() {
		return s.listKnown(ctx, m, fn)
	}
	var bad []error
	var entries []Entry
	err := s.eachRecord(ctx, func(name string, rec *record, err error) error {
		if err != nil {
			bad = append(bad, err)
			return nil
		}
		if len(rec.versions) == 0 {
			return nil // removed; kept only for its version counter
		}
		entries = append(entries, rec.entry())
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	for _, e := range entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return errors.Join(bad...)
}

// eachRecord loads every record on the medium, bypassing the cache so a
// listing does not evict the records Get needs. Objects whose name cannot
// be recovered are passed with name set to their location. fn is called
// by one goroutine at a time, in no particular order.
func (s *Store) eachRecord(ctx context.Context, fn func(name string, rec *record, err error) error) error {
	if s.closed.Load() {
		return errClosed
	}
	var err error
	if sc, ok := s.m.(Scanner); ok {
		err = s.scanRecords(ctx, sc, fn)
	} else {
		err = s.m.List(ctx, recordPrefix, func(key string) error {
			name := nameOfKey(key)
			if ValidateName(name) != nil {
				return fn(name, nil, corrupt("object %q has no valid record name", key))
			}
			rec, err := s.load(ctx, name, false)
			if errors.Is(err, backend.ErrNotFound) {
				return nil // removed since listed
			}
			return fn(name, rec, err)
		})
	}
	var objs badObjects
	if errors.As(err, &objs) {
		for _, o := range objs {
			if err := fn(o.where, nil, fmt.Errorf("%s: %w", o.where, o.err)); err != nil {
				return err
			}
		}
		return nil
	}
	return err
}

// scanRecords is eachRecord on a Scanner: each object is read once, and
// records are MAC-checked and parsed on the scan's goroutines.
func (s *Store) scanRecords(ctx context.Context, sc Scanner, fn func(name string, rec *record, err error) error) error {
	var mu sync.Mutex
	return sc.Scan(ctx, recordPrefix, func(key string, blob []byte) error {
		rec, _, err := s.recordOf(ctx, key, blob)
		if rec == nil && err == nil {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		return fn(nameOfKey(key), rec, err)
	})
}

// recordOf parses a scanned record object. A record sealed by a rekey this
// store has not seen yet is read again after a keyring reload (reread);
// nil and no error: it was removed meanwhile.
func (s *Store) recordOf(ctx context.Context, key string, blob []byte) (rec *record, reread bool, err error) {
	name := nameOfKey(key)
	if ValidateName(name) != nil {
		return nil, false, corrupt("object %q has no valid record name", key)
	}
	rec, err = s.parse(blob, name, s.ringNow())
	var uk unknownKeyError
	switch {
	case err == nil:
		return rec, false, nil
	case errors.As(err, &uk):
		rec, err = s.load(ctx, name, false)
		if errors.Is(err, backend.ErrNotFound) {
			return nil, true, nil
		}
		return rec, true, err
	default:
		return nil, false, recordErr(name, err)
	}
}

// Verify opens every version of every record, calling fn (if not nil)
// with each record's name and nil or the reason it failed. It returns how
// many records opened and how many did not; err is for failures that stop
// the check (the medium cannot be listed), not for bad records.
func (s *Store) Verify(ctx context.Context, fn func(name string, err error)) (ok, bad int, err error) {
	err = s.eachRecord(ctx, func(name string, rec *record, err error) error {
		if err == nil {
			err = s.openAll(name, rec)
		}
		if err == nil && len(rec.versions) == 0 {
			return nil
		}
		if err != nil {
			bad++
		} else {
			ok++
		}
		if fn != nil {
			fn(name, err)
		}
		return nil
	})
	return ok, bad, err
}

func (s *Store) openAll(name string, rec *record) error {
	for i := range rec.versions {
		pt, err := rec.open(s.id, &rec.versions[i])
		if err != nil {
			return recordErr(name, err)
		}
		clear(pt)
	}
	return nil
}

// Count returns the number of record objects: one small medium listing, no
// key, no decryption. Names removed but kept for their version counter
// count too, and a damaged object is counted rather than reported.
func (s *Store) Count(ctx context.Context) (int, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	n := 0
	err := s.m.List(ctx, recordPrefix, func(string) error { n++; return nil })
	if err != nil && !errors.Is(err, backend.ErrCorrupt) {
		return 0, err
	}
	return n, nil
}

package store

import (
	"context"
	"errors"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Put stores value as a new version of name and returns its number.
// Numbers start at 1 and are never reused, even after Remove. Versions
// beyond the store's MaxVersions are pruned, oldest first.
func (s *Store) Put(ctx context.Context, name string, value []byte) (uint64, error) {
	if err := ValidateName(name); err != nil {
		return 0, err
	}
	if err := checkValue(value); err != nil {
		return 0, recordErr(name, err)
	}
	var num uint64
	err := s.modify(ctx, name, true, func(ring *keyring, rec *record) error {
		num = rec.next
		rec.next++
		rec.versions = append(rec.versions, rec.seal(s.id, num, time.Now(), value))
		rec.prune(ring.maxVersions)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return num, nil
}

// Remove removes one version of name, or with version 0 the whole name.
// A removed name keeps a small tombstone that remembers its version
// counter, so a later Put does not reuse numbers; a damaged record is
// deleted outright, since it cannot be read to keep one.
func (s *Store) Remove(ctx context.Context, name string, version uint64) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if version == 0 {
		err := s.modify(ctx, name, false, func(_ *keyring, rec *record) error {
			if len(rec.versions) == 0 {
				return backend.ErrNotFound
			}
			rec.versions = nil
			return nil
		})
		var d damagedError
		if !errors.As(err, &d) {
			return err
		}
		return s.deleteDamaged(ctx, name)
	}
	return s.modify(ctx, name, false, func(_ *keyring, rec *record) error {
		for i := range rec.versions {
			if rec.versions[i].num == version {
				rec.versions = append(rec.versions[:i:i], rec.versions[i+1:]...)
				return nil
			}
		}
		return errVersionNotFound(version)
	})
}

// damagedError marks a record that failed to parse or open, as opposed
// to a failure of the keyring or the medium.
type damagedError struct{ err error }

func (e damagedError) Error() string { return e.err.Error() }
func (e damagedError) Unwrap() error { return e.err }

// deleteDamaged removes a record that does not open, after checking again
// with the lock held that it still does not.
func (s *Store) deleteDamaged(ctx context.Context, name string) error {
	key := recordKey(name)
	errRepaired := errors.New("repaired")
	err := s.update(ctx, func(ctx context.Context) error {
		ring, err := s.refreshRing(ctx)
		if err != nil {
			return err
		}
		rev, err := s.m.Stat(ctx, key)
		if err != nil {
			return err
		}
		blob, _, err := s.m.Read(ctx, key)
		if err == nil {
			var rec *record
			if rec, err = s.parse(blob, name, ring); err == nil {
				err = s.openAll(name, rec)
			}
			if err == nil {
				return errRepaired
			}
		}
		if !errors.Is(err, backend.ErrCorrupt) {
			return err
		}
		return s.m.Delete(ctx, key, rev)
	})
	s.cache.drop(s.cacheID(name))
	if errors.Is(err, errRepaired) {
		return s.Remove(ctx, name, 0) // rewritten meanwhile: remove it normally
	}
	if err != nil {
		return recordErr(name, err)
	}
	return nil
}

// modify is every record read-modify-write. With the writer lock held it
// refreshes the keyring, reads and checks the record (a new one if absent
// and create is set), applies change, seals the result under the active
// key and writes it back with compare-and-swap. Sealing everything under
// the active key is what lets Rekey finish: once a rekey has started, no
// writer produces a record under an old key.
func (s *Store) modify(ctx context.Context, name string, create bool, change func(*keyring, *record) error) error {
	key := recordKey(name)
	err := s.update(ctx, func(ctx context.Context) error {
		ring, err := s.refreshRing(ctx)
		if err != nil {
			return err
		}
		rec, rev, err := s.current(ctx, ring, name, create)
		if err != nil {
			return err
		}
		if err := change(ring, rec); err != nil {
			return err
		}
		_, err = s.m.Write(ctx, key, rec.marshal(s.id), rev)
		return err
	})
	s.cache.drop(s.cacheID(name))
	if err != nil {
		return recordErr(name, err)
	}
	return nil
}

// current reads name's record for a writer holding the lock, sealed under
// the active key; a new empty one if absent and create is set.
func (s *Store) current(ctx context.Context, ring *keyring, name string, create bool) (*record, Revision, error) {
	blob, rev, err := s.m.Read(ctx, recordKey(name))
	var rec *record
	switch {
	case errors.Is(err, backend.ErrNotFound) && create:
		return &record{name: name, key: ring.keys[ring.active], next: 1}, "", nil
	case errors.Is(err, backend.ErrCorrupt):
		return nil, "", damagedError{err}
	case err != nil:
		return nil, "", err
	}
	if rec, err = s.parse(blob, name, ring); err != nil {
		return nil, "", damagedError{err}
	}
	if rec, err = s.resealed(rec, ring.keys[ring.active]); err != nil {
		return nil, "", damagedError{err}
	}
	return rec, rev, nil
}

// resealed returns rec with every version sealed under key: decrypted
// with the old key and encrypted again, since the key ID is part of each
// value's associated data. Plaintexts are wiped as soon as they are
// re-sealed.
func (s *Store) resealed(rec *record, key *dataKey) (*record, error) {
	if rec.key == key {
		return rec, nil
	}
	out := &record{name: rec.name, key: key, next: rec.next, versions: make([]sealedVersion, len(rec.versions))}
	for i := range rec.versions {
		v := &rec.versions[i]
		pt, err := rec.open(s.id, v)
		if err != nil {
			return nil, err
		}
		out.versions[i] = out.seal(s.id, v.num, time.Unix(0, v.created), pt)
		clear(pt)
	}
	return out, nil
}

// SetMaxVersions changes how many versions of each name are kept. Records
// are pruned to the new bound on their next Put.
func (s *Store) SetMaxVersions(ctx context.Context, n int) error {
	if err := checkMaxVersions(n); err != nil {
		return err
	}
	return s.update(ctx, func(ctx context.Context) error {
		ring, err := s.refreshRing(ctx)
		if err != nil {
			return err
		}
		nr := ring.clone()
		nr.maxVersions = n
		s.mu.RLock()
		kek := s.kek
		s.mu.RUnlock()
		return s.writeRing(ctx, nr, kek, ring.rev)
	})
}

// ChangeKEK re-wraps the data keys under the key from k, in one atomic
// keyring write; records are untouched. Other processes holding the old
// key keep working until they need to reload the keyring (after a Rekey),
// so restart them with the new key first.
func (s *Store) ChangeKEK(ctx context.Context, k KeySource) error {
	// Derive outside the lock: argon2id takes a while.
	params, err := k.fresh()
	if err != nil {
		return err
	}
	kek, err := k.kek(params)
	if err != nil {
		return err
	}
	err = s.update(ctx, func(ctx context.Context) error {
		ring, err := s.refreshRing(ctx)
		if err != nil {
			return err
		}
		nr := ring.clone()
		nr.kdf = params
		return s.writeRing(ctx, nr, kek, ring.rev)
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.src = k
	s.mu.Unlock()
	return nil
}

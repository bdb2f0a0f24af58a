package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// RekeyStats reports what a Rekey did.
type RekeyStats struct {
	Records int // records re-sealed under the new data key
	OldKeys int // data keys dropped from the keyring
}

// Rekey replaces the data key: it adds a new key, re-seals every record
// under it, then drops the old keys. Readers in other processes keep
// working throughout: one that meets a record sealed with the new key
// reloads the keyring, which holds both keys until every record is done.
//
// The three steps are each crash-safe, and Rekey is resumable: if a
// keyring already holds more than one key (a rekey was interrupted), this
// call finishes that rekey with its active key rather than adding another.
//
// A record that cannot be opened stops the rekey before any key is
// dropped; remove or restore it and run Rekey again.
func (s *Store) Rekey(ctx context.Context) (RekeyStats, error) {
	var st RekeyStats
	target, err := s.rekeyStart(ctx)
	if err != nil {
		return st, fmt.Errorf("rekey: %w", err)
	}
	if st.Records, err = s.rekeyRecords(ctx, target); err != nil {
		return st, fmt.Errorf("rekey: %w", err)
	}
	if st.OldKeys, err = s.rekeyFinish(ctx, target); err != nil {
		return st, fmt.Errorf("rekey: %w", err)
	}
	return st, nil
}

// rekeyStart is step 1: write a keyring holding the old keys and a new,
// active one. From then on every writer seals with the new key (writers
// refresh the keyring under the lock) and every reader can open both.
func (s *Store) rekeyStart(ctx context.Context) (uint32, error) {
	var target uint32
	err := s.update(ctx, func(ctx context.Context) error {
		ring, err := s.refreshRing(ctx)
		if err != nil {
			return err
		}
		if len(ring.keys) > 1 {
			target = ring.active // resume an interrupted rekey
			return nil
		}
		nr := ring.clone()
		nr.addKey()
		target = nr.active
		s.mu.RLock()
		kek := s.kek
		s.mu.RUnlock()
		return s.writeRing(ctx, nr, kek, ring.rev)
	})
	return target, err
}

// rekeyRecords is step 2: re-seal, one compare-and-swap write per record,
// every record not yet under target. Records created meanwhile already
// are. Objects that cannot be attributed to any name are skipped: they
// are unreadable with any key, and Verify reports them.
func (s *Store) rekeyRecords(ctx context.Context, target uint32) (int, error) {
	var names []string
	err := s.m.List(ctx, recordPrefix, func(key string) error {
		names = append(names, nameOfKey(key))
		return nil
	})
	var objs badObjects
	if err != nil && !errors.As(err, &objs) {
		return 0, err
	}
	n := 0
	for _, name := range names {
		if ValidateName(name) != nil {
			continue
		}
		done, err := s.rekeyRecord(ctx, name, target)
		if err != nil {
			return n, fmt.Errorf("%w (remove or restore it, then run rekey again)", err)
		}
		if done {
			n++
		}
	}
	return n, nil
}

// rekeyRecord re-seals one record under target, reporting whether it had
// to. It holds the writer lock only for this record, so writers are never
// blocked for long.
func (s *Store) rekeyRecord(ctx context.Context, name string, target uint32) (bool, error) {
	key := recordKey(name)
	done := false
	err := s.update(ctx, func(ctx context.Context) error {
		done = false
		ring, err := s.refreshRing(ctx)
		if err != nil {
			return err
		}
		if ring.active != target {
			return errRekeySuperseded
		}
		blob, rev, err := s.m.Read(ctx, key)
		if err != nil {
			if errors.Is(err, backend.ErrNotFound) {
				return nil // removed since listed
			}
			return err
		}
		rec, err := s.parse(blob, name, ring)
		if err != nil {
			return err
		}
		if rec.key.id == target {
			return nil
		}
		if rec, err = s.resealed(rec, ring.keys[target]); err != nil {
			return err
		}
		if _, err := s.m.Write(ctx, key, rec.marshal(s.id), rev); err != nil {
			return err
		}
		done = true
		return nil
	})
	s.cache.drop(s.cacheID(name))
	if err != nil {
		return false, recordErr(name, err)
	}
	return done, nil
}

// rekeyFinish is step 3: write the keyring with only the target key. No
// record is sealed with another one any more (step 2, and writers seal
// with the active key), so nothing becomes unreadable.
func (s *Store) rekeyFinish(ctx context.Context, target uint32) (int, error) {
	dropped := 0
	err := s.update(ctx, func(ctx context.Context) error {
		ring, err := s.refreshRing(ctx)
		if err != nil {
			return err
		}
		if ring.active != target {
			return errRekeySuperseded
		}
		dropped = len(ring.keys) - 1
		if dropped == 0 {
			return nil // another process finished this rekey
		}
		nr := ring.clone()
		nr.keys = map[uint32]*dataKey{target: ring.keys[target]}
		s.mu.RLock()
		kek := s.kek
		s.mu.RUnlock()
		return s.writeRing(ctx, nr, kek, ring.rev)
	})
	return dropped, err
}

// errRekeySuperseded: another process started a newer rekey while ours
// ran. Ours must stop, since its target key is no longer the active one;
// the newer rekey will re-seal everything.
var errRekeySuperseded = errors.New("another rekey replaced the data key meanwhile; run rekey again")

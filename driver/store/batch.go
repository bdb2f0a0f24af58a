package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors of PutMany that mean something was written: the batch was
// committed but the writer could not finish it (the next writer, or the
// next process to open the store, does), or, on a medium that is no
// BatchWriter, some records were written before the failure.
var (
	ErrBatchCommitted = errors.New("the batch is committed but not finished (the next store command finishes it)")
	ErrPartlyWritten  = errors.New("stopped part way")
)

// Pair is one value to store under a name, for PutMany.
type Pair struct {
	Name  string
	Value []byte
}

// BatchWrite is one object of a [BatchWriter] batch: like a Medium.Write,
// blob under key if the key is still at revision Prev.
type BatchWrite struct {
	Key  string
	Blob []byte
	Prev Revision
}

// BatchWriter is implemented by media that write many objects as one
// unit: after a crash either every object of the batch is written or
// none. DirMedium is one.
type BatchWriter interface {
	// WriteBatch writes every object if each is still at its Prev
	// revision, else it writes none and returns an error wrapping
	// ErrConflict. A key may appear only once.
	WriteBatch(ctx context.Context, writes []BatchWrite) error
}

// PutMany stores each pair's value as a new version of its name, like Put,
// in one read-modify-write under the writer lock. A name given twice gets
// two versions, in order. It returns the version each pair got.
//
// On a medium that is a [BatchWriter] (the file medium) the batch is all or
// nothing, even across a crash, and costs one flush for the whole batch
// instead of a few fsyncs per value; an error wrapping ErrBatchCommitted
// means all of it will be there. On other media each record is written on
// its own, in order, and an error wrapping ErrPartlyWritten says how many
// were written before the failure.
//
// Every name and value is checked before anything is written; an error
// names the pair (by index and name), never its value.
func (s *Store) PutMany(ctx context.Context, pairs []Pair) ([]uint64, error) {
	for i, p := range pairs {
		if err := ValidateName(p.Name); err != nil {
			return nil, fmt.Errorf("pair %d: %w", i+1, err)
		}
		if err := checkValue(p.Value); err != nil {
			return nil, fmt.Errorf("pair %d: %w", i+1, recordErr(p.Name, err))
		}
	}
	nums := make([]uint64, len(pairs))
	var names []string
	err := s.update(ctx, func(ctx context.Context) error {
		ring, err := s.refreshRing(ctx)
		if err != nil {
			return err
		}
		type pending struct {
			rec *record
			rev Revision
		}
		recs := make(map[string]*pending, len(pairs))
		names = names[:0]
		now := time.Now()
		for i, p := range pairs {
			pr := recs[p.Name]
			if pr == nil {
				rec, rev, err := s.current(ctx, ring, p.Name, true)
				if err != nil {
					return recordErr(p.Name, err)
				}
				pr = &pending{rec, rev}
				recs[p.Name] = pr
				names = append(names, p.Name)
			}
			nums[i] = pr.rec.next
			pr.rec.next++
			pr.rec.versions = append(pr.rec.versions, pr.rec.seal(s.id, nums[i], now, p.Value))
		}
		writes := make([]BatchWrite, len(names))
		for i, name := range names {
			pr := recs[name]
			pr.rec.prune(ring.maxVersions)
			writes[i] = BatchWrite{Key: recordKey(name), Blob: pr.rec.marshal(s.id), Prev: pr.rev}
		}
		if bw, ok := s.m.(BatchWriter); ok {
			return bw.WriteBatch(ctx, writes)
		}
		for i, w := range writes {
			if _, err := s.m.Write(ctx, w.Key, w.Blob, w.Prev); err != nil {
				if i > 0 {
					return fmt.Errorf("%w, %d of %d records written: %w", ErrPartlyWritten, i, len(writes), recordErr(names[i], err))
				}
				return recordErr(names[i], err)
			}
		}
		return nil
	})
	for _, name := range names {
		s.cache.drop(s.cacheID(name))
	}
	if err != nil {
		return nil, err
	}
	return nums, nil
}

package configstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// change is one head whose blob a pass copies (nil blob: a tombstone).
type change struct {
	key   string
	blob  []byte
	index uint64
}

// pass copies every head changed since the last pass; moved reports a head
// whose chunks were superseded while it was read. It fetches every changed
// blob before it writes any, then writes them as one batch (see
// writeChanges): a catch-up of thousands of names, a missed rekey among
// them, reaches the folder at once instead of one fsync at a time.
func (m *Mirror) pass(ctx context.Context, local *store.DirMedium) (index uint64, moved bool, err error) {
	heads, err := ListHeads(ctx, m.API, m.Prefix)
	if err != nil {
		return 0, false, err
	}
	var localKeys []string
	if err := local.List(ctx, "", func(k string) error { localKeys = append(localKeys, k); return nil }); err != nil && !errors.Is(err, backend.ErrCorrupt) {
		return 0, false, fmt.Errorf("listing %s: %w", m.Dir, err)
	}
	live := map[string]bool{}
	for _, h := range heads {
		index = max(index, h.Version.Index)
		if !isTombstone(h) {
			live[string(h.Spec.Data)] = true
		}
	}
	if !live["keyring"] {
		if len(localKeys) > 0 {
			// Never wipe a folder for a store that is not there: a wrong
			// prefix, or a file store on a manager that does not use the
			// replicated store.
			return 0, false, fmt.Errorf("%w %q, and %s holds a store: left as it is", ErrNoStore, m.Prefix, m.Dir)
		}
		m.swarmID = ""
	}
	// The keyring alone first: a folder refused costs one head, not the
	// whole store's blobs on every event.
	isRing := func(k string) bool { return k == "keyring" }
	changes, moved, err := m.fetch(ctx, heads, isRing)
	if err != nil {
		return 0, false, err
	}
	if live["keyring"] {
		if m.swarmID == "" {
			return index, true, nil // the keyring moved while read: look again
		}
		if err := m.claim(ctx, local, m.swarmID); err != nil {
			return 0, false, err
		}
	}
	recs, movedRecs, err := m.fetch(ctx, heads, func(k string) bool { return !isRing(k) })
	if err != nil {
		return 0, false, err
	}
	changes, moved = append(changes, recs...), moved || movedRecs
	if err := m.writeChanges(ctx, local, changes, localKeys); err != nil {
		return 0, false, err
	}
	for _, c := range changes {
		m.applied[c.key] = c.index
	}
	for _, k := range localKeys {
		if !live[k] {
			if err := apply(ctx, local, k, nil); err != nil {
				return 0, false, err
			}
			m.wrote()
		}
	}
	return index, moved, nil
}

// fetch reads the blob of every head changed since the last pass whose
// key is picked, and notes the swarm keyring's store ID.
func (m *Mirror) fetch(ctx context.Context, heads []swarm.Config, pick func(key string) bool) (changes []change, moved bool, err error) {
	var todo []swarm.Config
	for _, h := range heads {
		key := string(h.Spec.Data)
		if pick(key) && headName(m.Prefix, key) == h.Spec.Name && m.applied[key] < h.Version.Index {
			todo = append(todo, h)
		}
	}
	// Many changed heads (a start, a catch-up): one listing of the data
	// configs beats an inspect per chunk (11 ms each, measured).
	var data map[string][]byte
	if len(todo) > bulkFetch {
		cs, err := m.API.ConfigList(ctx, swarm.ConfigListOptions{Filters: filters.NewArgs(
			filters.Arg("label", LabelStore+"="+m.Prefix), filters.Arg("label", LabelKind+"="+kindData))})
		if err != nil {
			return nil, false, engineErr("list data configs", err)
		}
		data = make(map[string][]byte, len(cs))
		for _, c := range cs {
			data[c.ID] = c.Spec.Data
		}
	}
	for _, h := range todo {
		c := change{key: string(h.Spec.Data), index: h.Version.Index}
		if !isTombstone(h) {
			c.blob, err = Assemble(h, func(id string) ([]byte, error) {
				if b, ok := data[id]; ok {
					return b, nil
				}
				c, _, err := m.API.ConfigInspectWithRaw(ctx, id)
				if err != nil {
					return nil, err
				}
				return c.Spec.Data, nil
			})
			if err != nil {
				if c.key == "keyring" {
					m.swarmID = ""
				}
				moved = true
				continue
			}
			if c.key == "keyring" {
				m.swarmID = storeIDOf(c.blob)
			}
		}
		changes = append(changes, c)
	}
	return changes, moved, nil
}

// batchAttempts bounds the retries of a batch a stray writer conflicts with.
const batchAttempts = 3

// writeChanges writes the changed blobs as one batch (one syncfs, then
// renames: see store.DirMedium.WriteBatch), then removes the tombstoned
// keys. The keyring goes where a reader of the folder can open what it
// meets: first when it only brings keys (records sealed with a new key
// need it), last when records of this batch replace ones sealed with a key
// that none of the new records uses, i.e. a rekey the folder missed whose
// new keyring drops that key. A reader that loaded the old keyring keeps
// reading the old records until the keyring is replaced, and finds the new
// records' keys in it when the swarm kept them. (A folder that missed a
// whole rekey holds no keyring with both keys; the batch's renames, not
// fsyncs, bound how long the two are mixed.)
func (m *Mirror) writeChanges(ctx context.Context, local *store.DirMedium, changes []change, localKeys []string) error {
	for range batchAttempts {
		var ring *store.BatchWrite
		var writes []store.BatchWrite
		var dels []string
		oldKeys, newKeys := map[uint32]bool{}, map[uint32]bool{}
		for _, c := range changes {
			if c.blob == nil {
				dels = append(dels, c.key)
				continue
			}
			cur, rev, err := local.Read(ctx, c.key)
			if errors.Is(err, backend.ErrNotFound) {
				cur, rev, err = nil, "", nil
			}
			if err != nil {
				return fmt.Errorf("mirror %s: %w", c.key, err)
			}
			if bytes.Equal(cur, c.blob) {
				continue
			}
			w := store.BatchWrite{Key: c.key, Blob: c.blob, Prev: rev}
			if c.key == "keyring" {
				ring = &w
				continue
			}
			if id, ok := recordKeyID(cur); ok {
				oldKeys[id] = true
			}
			if id, ok := recordKeyID(c.blob); ok {
				newKeys[id] = true
			}
			writes = append(writes, w)
		}
		if ring != nil {
			for id := range newKeys {
				delete(oldKeys, id)
			}
			if len(oldKeys) > 0 {
				// A key still sealing a record the batch leaves alone is
				// in the new keyring (the swarm's records all open with
				// it): that keyring only adds one (a rekey's first step).
				if err := stillUsed(ctx, local, changes, localKeys, oldKeys); err != nil {
					return err
				}
			}
			if len(oldKeys) > 0 {
				writes = append(writes, *ring)
			} else {
				writes = append([]store.BatchWrite{*ring}, writes...)
			}
		}
		var err error
		switch len(writes) {
		case 0:
		case 1: // one fsync beats a batch's two syncfs
			_, err = local.Write(ctx, writes[0].Key, writes[0].Blob, writes[0].Prev)
		default:
			err = local.WriteBatch(ctx, writes)
		}
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mirror %d objects: %w", len(writes), err)
		}
		m.wrote()
		for _, k := range dels {
			if err := apply(ctx, local, k, nil); err != nil {
				return err
			}
			m.wrote()
		}
		return nil
	}
	return fmt.Errorf("mirror: the folder keeps changing under the mirror; is another writer using it?")
}

// stillUsed removes from ids the keys that seal a local record which
// changes does not touch. It reads those records, which a pass does only
// when the keyring changes.
func stillUsed(ctx context.Context, local *store.DirMedium, changes []change, localKeys []string, ids map[uint32]bool) error {
	touched := make(map[string]bool, len(changes))
	for _, c := range changes {
		touched[c.key] = true
	}
	for _, k := range localKeys {
		if touched[k] || k == "keyring" {
			continue
		}
		blob, _, err := local.Read(ctx, k)
		if errors.Is(err, backend.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mirror %s: %w", k, err)
		}
		if id, ok := recordKeyID(blob); ok {
			delete(ids, id)
			if len(ids) == 0 {
				return nil
			}
		}
	}
	return nil
}

// recordKeyID returns the data key ID a record blob is sealed with, from
// its clear header (driver/store/FORMAT.md: magic "swkR", format version,
// key ID).
func recordKeyID(blob []byte) (uint32, bool) {
	if len(blob) < 9 || string(blob[:4]) != "swkR" {
		return 0, false
	}
	return binary.BigEndian.Uint32(blob[5:9]), true
}

// apply makes key hold blob in the folder (nil: absent), writing only what
// differs. The mirror is the folder's only writer; CAS guards a stray one.
func apply(ctx context.Context, local *store.DirMedium, key string, blob []byte) error {
	for range 3 {
		cur, rev, err := local.Read(ctx, key)
		if errors.Is(err, backend.ErrNotFound) {
			cur, rev, err = nil, "", nil
		}
		if err != nil {
			return fmt.Errorf("mirror %s: %w", key, err)
		}
		switch {
		case blob == nil && rev == "", blob != nil && bytes.Equal(cur, blob):
			return nil
		case blob == nil:
			err = local.Delete(ctx, key, rev)
		default:
			_, err = local.Write(ctx, key, blob, rev)
		}
		if !errors.Is(err, store.ErrConflict) {
			if err != nil {
				return fmt.Errorf("mirror %s: %w", key, err)
			}
			return nil
		}
	}
	return fmt.Errorf("mirror %s: the folder keeps changing under the mirror; is another writer using it?", key)
}

package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// storeLKG keeps copies in an encrypted store: each copy is one record,
// named after a hash of the cache key (see lkgName), holding an envelope with the
// answer's metadata and the time it was saved.
type storeLKG struct {
	s *store.Store
}

var (
	_ LKG       = (*storeLKG)(nil)
	_ Forgetter = (*storeLKG)(nil)
)

// NewStoreLKG keeps last-known-good copies in s, sealed like any record.
// The store should keep one version per name (see OpenLKGStore), or old
// copies linger on disk. The caller closes s, after the Cache.
func NewStoreLKG(s *store.Store) LKG {
	return &storeLKG{s: s}
}

// OpenLKGStore opens the LKG store in dir with the key from k, creating it,
// with one version per name, if it does not exist yet.
func OpenLKGStore(ctx context.Context, dir string, k store.KeySource) (*store.Store, error) {
	for range 2 {
		m, err := store.OpenDir(dir)
		if err != nil {
			return nil, fmt.Errorf("last-known-good store: %w", err)
		}
		s, err := store.Open(ctx, m, k)
		if errors.Is(err, backend.ErrNotFound) {
			s, err = store.Init(ctx, m, k, store.InitOptions{MaxVersions: 1})
			if errors.Is(err, store.ErrExists) {
				// Created by someone else meanwhile: open theirs.
				m.Close()
				continue
			}
		}
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("last-known-good store: %w", err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("last-known-good store %s: created and removed while opening: %w", dir, backend.ErrUnavailable)
}

// lkgName maps a cache key to a valid store name, whatever the key holds.
// A document's copy (see [docKey]) keeps its key, already a hash, under a
// folder of its own, so [storeLKG.docKeys] can list them.
func lkgName(key string) string {
	if h, ok := strings.CutPrefix(key, docKeyPrefix); ok {
		return docNamePrefix + h
	}
	sum := sha256.Sum256([]byte(key))
	return "lkg/" + hex.EncodeToString(sum[:])
}

// docNamePrefix names the store records of document copies.
const docNamePrefix = "doc/"

var _ docLister = (*storeLKG)(nil)

// docKeys lists the keys of the document copies in the store, also those
// saved by an earlier run. Records that cannot be read are left out and
// reported in the error.
func (l *storeLKG) docKeys(ctx context.Context) ([]string, error) {
	var keys []string
	err := l.s.List(ctx, func(e store.Entry) error {
		if h, ok := strings.CutPrefix(e.Name, docNamePrefix); ok {
			keys = append(keys, docKeyPrefix+h)
		}
		return nil
	})
	if err != nil {
		return keys, fmt.Errorf("list the prefetched copies: %w", err)
	}
	return keys, nil
}

// Envelope layout, big-endian, then the value:
//
//	[1] format  [1] flags  [8] saved (Unix ns)  [8] version  [8] created (Unix ns)
const (
	envFormat     = 1
	envHasCreated = 1 << 0
	envHeader     = 1 + 1 + 8 + 8 + 8
)

func (l *storeLKG) Save(ctx context.Context, key string, s backend.Secret, saved time.Time) error {
	buf := make([]byte, envHeader, envHeader+len(s.Value))
	buf[0] = envFormat
	binary.BigEndian.PutUint64(buf[2:], uint64(saved.UnixNano()))
	binary.BigEndian.PutUint64(buf[10:], s.Version)
	if !s.Created.IsZero() {
		buf[1] |= envHasCreated
		binary.BigEndian.PutUint64(buf[18:], uint64(s.Created.UnixNano()))
	}
	buf = append(buf, s.Value...)
	defer clear(buf)
	if _, err := l.s.Put(ctx, lkgName(key), buf); err != nil {
		return fmt.Errorf("save last-known-good copy: %w", err)
	}
	return nil
}

func (l *storeLKG) Load(ctx context.Context, key string) (backend.Secret, time.Time, error) {
	got, err := l.s.Get(ctx, lkgName(key), 0)
	if err != nil {
		return backend.Secret{}, time.Time{}, fmt.Errorf("load last-known-good copy: %w", err)
	}
	b := got.Value
	if len(b) < envHeader || b[0] != envFormat || b[1]&^envHasCreated != 0 {
		clear(b)
		return backend.Secret{}, time.Time{}, fmt.Errorf("load last-known-good copy: %w: unknown envelope", backend.ErrCorrupt)
	}
	s := backend.Secret{Version: binary.BigEndian.Uint64(b[10:]), Value: b[envHeader:]}
	if b[1]&envHasCreated != 0 {
		s.Created = time.Unix(0, int64(binary.BigEndian.Uint64(b[18:])))
	}
	return s, time.Unix(0, int64(binary.BigEndian.Uint64(b[2:]))), nil
}

// Forget removes key's copy (leaving the store's small tombstone).
func (l *storeLKG) Forget(ctx context.Context, key string) error {
	err := l.s.Remove(ctx, lkgName(key), 0)
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("forget last-known-good copy: %w", err)
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// A store backup holds the store's medium objects exactly as stored: the
// keyring (data keys sealed by the key file or passphrase) and every
// record (values sealed by a data key, the record MACed). Nothing in it is
// plaintext, and it is useless without the key, like the store itself.
//
// Format, version 1 (integers big-endian):
//
//	magic "swkB" (4) | version 1 (1) | object count N (4)
//	N times: key length (2, 1..1024) | key | blob length (4, at most 32 MiB) | blob
//	SHA-256 of every preceding byte (32)
//
// The keys are the medium's: "keyring" first, then "r/<name>" in byte
// order. The checksum catches a truncated or damaged file before anything
// is parsed further; the keyring's AEAD and the records' MACs, checked by
// opening every record with the key, catch everything else.
const (
	backupMagic    = "swkB"
	backupVersion  = 1
	backupMaxKey   = 1024
	backupMaxBlob  = 32 << 20
	backupKeyring  = "keyring"
	backupRecPrefx = "r/"
)

type backupObject struct {
	key  string
	blob []byte
}

func encodeBackup(w io.Writer, objs []backupObject) error {
	h := sha256.New()
	mw := io.MultiWriter(w, h)
	var hdr [9]byte
	copy(hdr[:], backupMagic)
	hdr[4] = backupVersion
	binary.BigEndian.PutUint32(hdr[5:], uint32(len(objs)))
	if _, err := mw.Write(hdr[:]); err != nil {
		return err
	}
	for _, o := range objs {
		var kl [2]byte
		var bl [4]byte
		binary.BigEndian.PutUint16(kl[:], uint16(len(o.key)))
		binary.BigEndian.PutUint32(bl[:], uint32(len(o.blob)))
		for _, b := range [][]byte{kl[:], []byte(o.key), bl[:], o.blob} {
			if _, err := mw.Write(b); err != nil {
				return err
			}
		}
	}
	_, err := w.Write(h.Sum(nil))
	return err
}

// decodeBackup checks the checksum and the structure; it does not need
// the key.
func decodeBackup(b []byte) ([]backupObject, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("not a usable store backup: "+format, a...)
	}
	if len(b) < 9+32 || string(b[:4]) != backupMagic {
		return nil, bad("no swarmkeep backup header")
	}
	if b[4] != backupVersion {
		return nil, bad("format version %d, this swarmkeep reads version %d", b[4], backupVersion)
	}
	body, sum := b[:len(b)-32], b[len(b)-32:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, bad("checksum mismatch: the file is truncated or damaged")
	}
	n := binary.BigEndian.Uint32(body[5:9])
	rest := body[9:]
	objs := make([]backupObject, 0, min(int(n), 1<<16))
	seen := map[string]bool{}
	for i := uint32(0); i < n; i++ {
		if len(rest) < 2 {
			return nil, bad("object %d: cut short", i+1)
		}
		kl := int(binary.BigEndian.Uint16(rest))
		if kl == 0 || kl > backupMaxKey || len(rest) < 2+kl+4 {
			return nil, bad("object %d: bad key length", i+1)
		}
		key := string(rest[2 : 2+kl])
		bl := int(binary.BigEndian.Uint32(rest[2+kl:]))
		rest = rest[2+kl+4:]
		if bl > backupMaxBlob || len(rest) < bl {
			return nil, bad("object %d: bad blob length", i+1)
		}
		switch {
		case i == 0 && key != backupKeyring:
			return nil, bad("the first object is not the keyring")
		case i > 0 && !strings.HasPrefix(key, backupRecPrefx):
			return nil, bad("object %d is not a record", i+1)
		case seen[key]:
			return nil, bad("object %d: key given twice", i+1)
		}
		if i > 0 {
			if err := store.ValidateName(strings.TrimPrefix(key, backupRecPrefx)); err != nil {
				return nil, bad("object %d: %v", i+1, err)
			}
		}
		seen[key] = true
		objs = append(objs, backupObject{key: key, blob: rest[:bl:bl]})
		rest = rest[bl:]
	}
	if len(objs) == 0 {
		return nil, bad("no keyring")
	}
	if len(rest) != 0 {
		return nil, bad("%d bytes after the last object", len(rest))
	}
	return objs, nil
}

// memMedium holds a backup's objects in memory, so that the store code
// itself can open and verify them before anything is written to disk.
type memMedium struct {
	mu   sync.Mutex
	objs map[string][]byte
	rev  map[string]int
	n    int
}

func newMemMedium(objs []backupObject) *memMedium {
	m := &memMedium{objs: map[string][]byte{}, rev: map[string]int{}}
	for _, o := range objs {
		m.n++
		m.objs[o.key], m.rev[o.key] = o.blob, m.n
	}
	return m
}

func (m *memMedium) String() string { return "the backup" }

func (m *memMedium) Read(_ context.Context, key string) ([]byte, store.Revision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return nil, "", fmt.Errorf("%s: %w", key, backend.ErrNotFound)
	}
	return bytes.Clone(b), store.Revision(strconv.Itoa(m.rev[key])), nil
}

func (m *memMedium) Stat(ctx context.Context, key string) (store.Revision, error) {
	_, rev, err := m.Read(ctx, key)
	return rev, err
}

// Write and Delete are never called by verification; they refuse, so a
// bug cannot silently change what is restored.
func (m *memMedium) Write(context.Context, string, []byte, store.Revision) (store.Revision, error) {
	return "", errors.New("the backup is read only")
}

func (m *memMedium) Delete(context.Context, string, store.Revision) error {
	return errors.New("the backup is read only")
}

func (m *memMedium) List(_ context.Context, prefix string, fn func(string) error) error {
	m.mu.Lock()
	keys := make([]string, 0, len(m.objs))
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	m.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

func (m *memMedium) Close() error { return nil }

package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// backendType is the name the file backend is registered under.
const backendType = "file"

// Settings keys of the file backend.
const (
	settingDir            = "dir"
	settingKeyFile        = "key_file"
	settingPassphraseFile = "passphrase_file"
)

func init() {
	backend.Register(backend.Type{
		Name: backendType, Open: openBackend, Defaults: fileDefaults,
		Caps: backend.Capabilities{Writable: true, Sealed: true, Local: true, Versioned: true},
	})
	RegisterMedium(backendType, openFileMedium)
}

// fileDefaults gives an instance without a folder or a key the plugin's
// store folder and key, so the one-store setup needs no BACKENDS entry.
func fileDefaults(s backend.Settings, d backend.Defaults) {
	if s[settingDir] == "" {
		s[settingDir] = d.StoreDir
	}
	SealedDefaults(s, d)
}

// SealedDefaults gives a store-backed instance without key settings the
// plugin's key: the same key seals every store the plugin reads.
func SealedDefaults(s backend.Settings, d backend.Defaults) {
	if s[settingKeyFile] != "" || s[settingPassphraseFile] != "" {
		return
	}
	if d.PassphraseFile != "" {
		s[settingPassphraseFile] = d.PassphraseFile
	} else {
		s[settingKeyFile] = d.KeyFile
	}
}

// openBackend opens the store in Settings "dir" with exactly one of
// "key_file" and "passphrase_file". The store must already exist: the
// plugin never creates one (run swarmkeep init).
func openBackend(ctx context.Context, set backend.Settings) (backend.Backend, error) {
	known := []string{settingDir, settingKeyFile, settingPassphraseFile}
	for k := range set {
		if !slices.Contains(known, k) {
			return nil, fmt.Errorf("file backend: unknown setting %q (known: dir, key_file, passphrase_file)", k)
		}
	}
	dir, kf, pf := set[settingDir], set[settingKeyFile], set[settingPassphraseFile]
	if dir == "" {
		return nil, fmt.Errorf("file backend: setting %q is required", settingDir)
	}
	var src KeySource
	switch {
	case kf != "" && pf != "":
		return nil, fmt.Errorf("file backend: set %q or %q, not both", settingKeyFile, settingPassphraseFile)
	case kf != "":
		src = KeyFile(kf)
	case pf != "":
		src = PassphraseFile(pf)
	default:
		return nil, fmt.Errorf("file backend: one of %q or %q is required", settingKeyFile, settingPassphraseFile)
	}
	m, err := OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("file backend: %w", err)
	}
	s, err := Open(ctx, m, src)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("file backend: %w", err)
	}
	return NewBackend(s, "file"), nil
}

// NewBackend adapts s to backend.Backend for a backend type whose values are
// store records (file, etcd). Closing the backend closes s.
func NewBackend(s *Store, typ string) backend.Backend { return storeBackend{s, typ} }

type storeBackend struct {
	s   *Store
	typ string
}

// Get reads ref.Name at ref.Version. Paths and fields address values in
// Vault-like backends; a store has neither, and ignoring them would hand a
// service a value other than the one its labels ask for.
func (b storeBackend) Get(ctx context.Context, ref backend.Ref) (backend.Secret, error) {
	if ref.Path != "" || ref.Field != "" {
		return backend.Secret{}, fmt.Errorf("%w: the %s backend has no paths or fields (drop the %s and %s labels; %s picks the stored name)",
			backend.ErrInvalidRef, b.typ, backend.LabelPath, backend.LabelField, backend.LabelName)
	}
	return b.s.Get(ctx, ref.Name, ref.Version)
}

// GetFromMemory is backend.MemoryGetter: a cached record, while a watch
// reports changes (see Store.getFromMemory).
func (b storeBackend) GetFromMemory(ref backend.Ref) (backend.Secret, bool) {
	if ref.Path != "" || ref.Field != "" {
		return backend.Secret{}, false
	}
	return b.s.getFromMemory(ref.Name, ref.Version)
}

var _ backend.MemoryGetter = storeBackend{}

func (b storeBackend) Close() error { return b.s.Close() }

// Count is backend.Counter: the number of stored names, for the metrics.
func (b storeBackend) Count(ctx context.Context) (int, error) { return b.s.Count(ctx) }

var _ backend.Counter = storeBackend{}

// MediumOpener opens where a writable backend type keeps its records and
// the key that opens them, for the operator commands (init needs the
// medium before a store exists). The caller owns the medium.
type MediumOpener func(ctx context.Context, s backend.Settings) (Medium, KeySource, error)

var (
	mediaMu sync.RWMutex
	media   = map[string]MediumOpener{}
)

// RegisterMedium makes a writable backend type's medium reachable by the
// operator commands; a type registered with Capabilities.Writable must
// register one too. It panics on a duplicate.
func RegisterMedium(typ string, open MediumOpener) {
	mediaMu.Lock()
	defer mediaMu.Unlock()
	if _, dup := media[typ]; dup {
		panic("store: medium registered twice: " + typ)
	}
	media[typ] = open
}

// OpenMedium opens the medium of an instance of type typ, or says that
// swarmkeep does not write to that type.
func OpenMedium(ctx context.Context, typ string, s backend.Settings) (Medium, KeySource, error) {
	mediaMu.RLock()
	open, ok := media[typ]
	mediaMu.RUnlock()
	if !ok {
		return nil, nil, fmt.Errorf("backends of type %s are written with their own tools; swarmkeep's store commands manage writable types only", typ)
	}
	return open(ctx, s)
}

// HasMedium tells whether a medium is registered for type typ, so a test
// can check that every type registered as Writable has one.
func HasMedium(typ string) bool {
	mediaMu.RLock()
	defer mediaMu.RUnlock()
	_, ok := media[typ]
	return ok
}

// openFileMedium is the file type's MediumOpener.
func openFileMedium(_ context.Context, s backend.Settings) (Medium, KeySource, error) {
	m, err := OpenDir(s[settingDir])
	if err != nil {
		return nil, nil, err
	}
	if p := s[settingPassphraseFile]; p != "" {
		return m, PassphraseFile(p), nil
	}
	return m, KeyFile(s[settingKeyFile]), nil
}

// Digest is backend.Digester: the store's ID and a fingerprint of every
// name's latest version. It reads every record (MAC-checked, nothing
// decrypted): O(names), like Count.
func (b storeBackend) Digest(ctx context.Context) (backend.StoreDigest, error) {
	return b.s.Digest(ctx)
}

var _ backend.Digester = storeBackend{}

// ChangeStamp is a number that moves whenever one of swarmkeep's writers
// finishes a write to the store, anywhere on this host (the folder's shared
// change counter, see changesFile), so a caller can keep a Digest until it
// moves; ok is false when the medium has no such counter. Changes made by
// other hands do not move it: callers bound how long they keep a Digest.
func (b storeBackend) ChangeStamp() (stamp uint64, ok bool) {
	if c, isDir := b.s.m.(*DirMedium); isDir && c.changes != nil {
		return c.changes.load()
	}
	return 0, false
}

// Digest fingerprints what the store serves: its ID, and every name with
// its latest version, so copies of one store that answer the same
// versions have the same digest.
func (s *Store) Digest(ctx context.Context) (backend.StoreDigest, error) {
	h := sha256.New()
	n := 0
	err := s.List(ctx, func(e Entry) error {
		n++
		fmt.Fprintf(h, "%s\x00%d\n", e.Name, e.Versions[len(e.Versions)-1].Version)
		return nil
	})
	if err != nil {
		return backend.StoreDigest{}, err
	}
	return backend.StoreDigest{ID: s.ID(), Names: n, Digest: hex.EncodeToString(h.Sum(nil))[:16]}, nil
}

package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/swarmkeep/swarmkeep/driver"
)

// backendType is the name the file backend is registered under.
const backendType = "file"

// Settings keys of the file backend.
const (
	settingDir            = "dir"
	settingKeyFile        = "key_file"
	settingPassphraseFile = "passphrase_file"
)

func init() { driver.Register(backendType, openBackend) }

// openBackend opens the store in Settings "dir" with exactly one of
// "key_file" and "passphrase_file". The store must already exist: the
// plugin never creates one (run swarmkeep init).
func openBackend(ctx context.Context, set driver.Settings) (driver.Backend, error) {
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

// NewBackend adapts s to driver.Backend for a backend type whose values are
// store records (file, etcd). Closing the backend closes s.
func NewBackend(s *Store, typ string) driver.Backend { return storeBackend{s, typ} }

type storeBackend struct {
	s   *Store
	typ string
}

// Get reads ref.Name at ref.Version. Paths and fields address values in
// Vault-like backends; a store has neither, and ignoring them would hand a
// service a value other than the one its labels ask for.
func (b storeBackend) Get(ctx context.Context, ref driver.Ref) (driver.Secret, error) {
	if ref.Path != "" || ref.Field != "" {
		return driver.Secret{}, fmt.Errorf("%w: the %s backend has no paths or fields (drop the %s and %s labels; %s picks the stored name)",
			driver.ErrInvalidRef, b.typ, driver.LabelPath, driver.LabelField, driver.LabelName)
	}
	return b.s.Get(ctx, ref.Name, ref.Version)
}

func (b storeBackend) Close() error { return b.s.Close() }

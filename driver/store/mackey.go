package store

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// MACKey derives a 32-byte key that authenticates a local copy of a
// store's sealed objects (etcdstore's replica), from the KEK that opens
// keyringBlob: only a holder of the plugin's key can make or alter a copy
// that passes. It opens the keyring to check that k is the right key, so a
// wrong key is reported as such (ErrWrongKey) rather than as a damaged
// copy. purpose separates the uses of one KEK. With a passphrase this costs
// one argon2id derivation: callers keep the result for as long as the
// keyring's derivation parameters do not change.
func MACKey(k KeySource, keyringBlob []byte, purpose string) ([]byte, error) {
	sealed, err := parseKeyring(keyringBlob)
	if err != nil {
		return nil, err
	}
	kek, err := k.kek(sealed.r.kdf)
	if err != nil {
		return nil, err
	}
	defer clear(kek)
	ring, err := sealed.open(kek)
	if errors.Is(err, ErrWrongKey) {
		return nil, wrongKeyError{src: k.String()}
	}
	if err != nil {
		return nil, err
	}
	ring.wipe()
	key, err := hkdf.Key(sha256.New, kek, sealed.r.id[:], "swarmkeep mac key: "+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("derive mac key: %w", err)
	}
	return key, nil
}

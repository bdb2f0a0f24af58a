package store

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"golang.org/x/crypto/argon2"
)

// A KeySource supplies the key-encryption key (KEK) that wraps the
// store's data keys: a [KeyFile] or a [PassphraseFile]. The set is closed
// because the keyring format names the derivation it used.
type KeySource interface {
	// String names the source for messages ("key file /run/k"); it never
	// includes key material.
	String() string
	// fresh returns derivation parameters for a newly written keyring
	// (a new salt, for a passphrase).
	fresh() (kdfParams, error)
	// kek derives the KEK for a keyring written with params p.
	kek(p kdfParams) ([]byte, error)
}

// Derivations, as recorded in the keyring.
const (
	kdfKeyFile  byte = 1
	kdfArgon2id byte = 2
)

// kdfParams are the KEK derivation parameters stored in the keyring, so
// they can be raised later without breaking existing stores.
type kdfParams struct {
	kind    byte
	time    uint32 // argon2id passes
	memory  uint32 // argon2id memory, KiB
	threads uint8
	salt    []byte
}

// Defaults and bounds for argon2id. The bounds apply to parameters read
// from a keyring and are checked before any derivation, so a tampered
// keyring cannot make an open (plugin start, a keyring reload) cost more
// than 4 default derivations. They are the defaults, which are all that
// swarmkeep init writes, with a margin of 2 in passes and in memory for
// raising the defaults later.
const (
	argonTime       = 3
	argonMemory     = 64 << 10 // 64 MiB
	argonThreads    = 2
	saltSize        = 16
	maxArgonTime    = 2 * argonTime
	maxArgonMem     = 2 * argonMemory // 128 MiB
	maxArgonThreads = 8
	maxKeyFile      = 4096
)

// KeyFile returns a KeySource reading a 32-byte key from path, written as
// base64 text by [GenerateKeyFile] (raw 32-byte files are accepted too).
func KeyFile(path string) KeySource { return keyFile{path} }

type keyFile struct{ path string }

func (k keyFile) String() string { return "key file " + k.path }

func (k keyFile) fresh() (kdfParams, error) { return kdfParams{kind: kdfKeyFile}, nil }

func (k keyFile) kek(p kdfParams) ([]byte, error) {
	if p.kind != kdfKeyFile {
		return nil, wrongKeyError{src: k.String(), why: "the store is sealed with a passphrase"}
	}
	b, err := readSmall(k.path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	defer clear(b)
	if len(b) == 32 {
		return bytes.Clone(b), nil
	}
	// Decode into a buffer sized for the input: Decode writes past a
	// short one.
	text := bytes.TrimSpace(b)
	key := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(key, text)
	if err != nil || n != 32 {
		clear(key)
		// Never quote the file: it is key material, even when malformed.
		return nil, fmt.Errorf("%s: does not hold a swarmkeep key, 32 bytes as base64 text (use the key file swarmkeep init wrote for this store; for a new store, swarmkeep init --key-file NEW_FILE writes one)", k)
	}
	return key[:32:32], nil
}

// PassphraseFile returns a KeySource reading a passphrase from path (one
// trailing newline is trimmed; an empty passphrase is refused) and
// stretching it with argon2id, using the parameters and salt stored in
// the keyring.
func PassphraseFile(path string) KeySource {
	return &passphraseFile{path: path, time: argonTime, memory: argonMemory, threads: argonThreads}
}

// passphraseFile's cost fields are the ones fresh uses for a new keyring;
// tests lower them.
type passphraseFile struct {
	path    string
	time    uint32
	memory  uint32
	threads uint8
}

func (k *passphraseFile) String() string { return "passphrase file " + k.path }

func (k *passphraseFile) fresh() (kdfParams, error) {
	salt := make([]byte, saltSize)
	rand.Read(salt)
	return kdfParams{kind: kdfArgon2id, time: k.time, memory: k.memory, threads: k.threads, salt: salt}, nil
}

func (k *passphraseFile) kek(p kdfParams) ([]byte, error) {
	if p.kind != kdfArgon2id {
		return nil, wrongKeyError{src: k.String(), why: "the store is sealed with a key file"}
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	pass, err := readSmall(k.path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	defer clear(pass)
	trimmed := bytes.TrimSuffix(pass, []byte("\n"))
	trimmed = bytes.TrimSuffix(trimmed, []byte("\r"))
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%s: passphrase is empty", k)
	}
	key := argon2.IDKey(trimmed, p.salt, p.time, p.memory, p.threads, 32)
	// argon2 just touched p.memory KiB; hand it back to the OS now, since
	// the plugin runs under a small memory limit.
	debug.FreeOSMemory()
	return key, nil
}

// check bounds argon2id parameters read from a keyring.
func (p kdfParams) check() error {
	if p.time < 1 || p.time > maxArgonTime || p.threads < 1 || p.threads > maxArgonThreads ||
		p.memory < 8*uint32(p.threads) || p.memory > maxArgonMem ||
		len(p.salt) < saltSize || len(p.salt) > 64 {
		return fmt.Errorf("keyring: %w: argon2id parameters t=%d m=%dKiB p=%d salt=%dB out of range (t 1-%d, m up to %dKiB, p 1-%d, salt %d-64B): damaged or tampered (restore the keyring from a backup)",
			backend.ErrCorrupt, p.time, p.memory, p.threads, len(p.salt), maxArgonTime, maxArgonMem, maxArgonThreads, saltSize)
	}
	return nil
}

// readSmall reads a key or passphrase file, refusing one that group or
// others may access, and anything too large to be one (a mistyped path to
// a big file).
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := checkKeyFileMode(path, f); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFile {
		clear(b)
		return nil, errors.New("file is too large")
	}
	return b, nil
}

// GenerateKeyFile writes a new random key to path as base64 text, with
// mode 0400, creating the parent directory (0700) if needed. It refuses
// to overwrite an existing file: that would orphan the store it opens.
func GenerateKeyFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("key file %s already exists, refusing to overwrite it: %w", path, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	text := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	clear(key)
	_, err = f.Write(text)
	clear(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("key file %s: %w", path, err)
	}
	return nil
}

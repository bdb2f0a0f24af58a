package store

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"maps"
	"slices"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// Keyring format constants (see FORMAT.md).
const (
	keyringMagic  = "swkK"
	formatVersion = 1
	storeIDSize   = 16
	dataKeySize   = 32
	maxDataKeys   = 16
	keyringLabel  = "swarmkeep/v1/keyring\x00"
)

// dataKey is one DEK with the two subkeys derived from it. Deriving them
// with HKDF keeps the value cipher and the record MAC from ever sharing a
// key.
type dataKey struct {
	id   uint32
	raw  []byte      // the DEK itself, kept only to rewrite the keyring
	aead cipher.AEAD // XChaCha20-Poly1305 for values
	mac  []byte      // HMAC-SHA256 key for whole records
	// macs holds HMAC states keyed with mac, reset between uses: a new
	// one hashes the key's two pads, which a listing of 100,000 records
	// would pay 100,000 times.
	macs sync.Pool
}

func newDataKey(id uint32, raw []byte) *dataKey {
	enc, err := hkdf.Key(sha256.New, raw, nil, "swarmkeep/v1 value key", 32)
	if err != nil {
		panic(err) // only fails for lengths we never ask for
	}
	mac, err := hkdf.Key(sha256.New, raw, nil, "swarmkeep/v1 record mac key", 32)
	if err != nil {
		panic(err)
	}
	aead, err := chacha20poly1305.NewX(enc)
	if err != nil {
		panic(err)
	}
	clear(enc)
	k := &dataKey{id: id, raw: raw, aead: aead, mac: mac}
	k.macs.New = func() any { return &macState{h: hmac.New(sha256.New, k.mac)} }
	return k
}

// macState is a pooled HMAC state and the buffer its sum goes to.
type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// keyring is the decrypted keyring plus the store's metadata.
type keyring struct {
	id          [storeIDSize]byte
	maxVersions int
	kdf         kdfParams
	active      uint32
	keys        map[uint32]*dataKey
	rev         Revision // of the blob this was read from or written as
}

// newKeyring makes the keyring of a new store: a random ID and one DEK.
func newKeyring(maxVersions int, kdf kdfParams) *keyring {
	r := &keyring{maxVersions: maxVersions, kdf: kdf, keys: map[uint32]*dataKey{}}
	rand.Read(r.id[:])
	r.addKey()
	return r
}

// addKey adds a fresh DEK and makes it active. IDs only grow, so a record
// sealed with a dropped key is never mistaken for one sealed with a new one.
func (r *keyring) addKey() {
	id := uint32(1)
	for k := range r.keys {
		id = max(id, k+1)
	}
	raw := make([]byte, dataKeySize)
	rand.Read(raw)
	r.keys[id] = newDataKey(id, raw)
	r.active = id
}

// clone copies the keyring so a writer can change it without touching
// the one concurrent readers use. Data keys are immutable and shared.
func (r *keyring) clone() *keyring {
	c := *r
	c.keys = maps.Clone(r.keys)
	c.rev = ""
	return &c
}

// header encodes everything before the nonce; it is the keyring AEAD's
// associated data, so none of it can change without the KEK.
func (r *keyring) header() []byte {
	b := make([]byte, 0, 64)
	b = append(b, keyringMagic...)
	b = append(b, formatVersion)
	b = append(b, r.id[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(r.maxVersions))
	b = append(b, r.kdf.kind)
	if r.kdf.kind == kdfArgon2id {
		b = binary.BigEndian.AppendUint32(b, r.kdf.time)
		b = binary.BigEndian.AppendUint32(b, r.kdf.memory)
		b = append(b, r.kdf.threads, byte(len(r.kdf.salt)))
		b = append(b, r.kdf.salt...)
	}
	return b
}

// marshal seals the data keys under kek.
func (r *keyring) marshal(kek []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, err
	}
	ids := slices.Sorted(maps.Keys(r.keys))
	payload := binary.BigEndian.AppendUint32(nil, r.active)
	payload = binary.BigEndian.AppendUint16(payload, uint16(len(ids)))
	for _, id := range ids {
		payload = binary.BigEndian.AppendUint32(payload, id)
		payload = append(payload, r.keys[id].raw...)
	}
	defer clear(payload)
	hdr := r.header()
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(nonce)
	out := append(hdr, nonce...)
	return aead.Seal(out, nonce, payload, append([]byte(keyringLabel), hdr...)), nil
}

// sealedKeyring is a parsed but still encrypted keyring: enough to know
// how to derive the KEK.
type sealedKeyring struct {
	r      keyring // header fields only
	ad     []byte
	nonce  []byte
	sealed []byte
}

func parseKeyring(b []byte) (*sealedKeyring, error) {
	c := cursor{b: b}
	if magic := c.bytes(4); string(magic) != keyringMagic {
		return nil, corrupt("keyring: not a swarmkeep keyring")
	}
	if v := c.u8(); v != formatVersion {
		return nil, corrupt("keyring: format version %d is not supported", v)
	}
	s := &sealedKeyring{}
	copy(s.r.id[:], c.bytes(storeIDSize))
	s.r.maxVersions = int(c.u32())
	s.r.kdf.kind = c.u8()
	switch s.r.kdf.kind {
	case kdfKeyFile:
	case kdfArgon2id:
		s.r.kdf.time = c.u32()
		s.r.kdf.memory = c.u32()
		s.r.kdf.threads = c.u8()
		s.r.kdf.salt = bytes.Clone(c.bytes(int(c.u8())))
	default:
		if !c.bad {
			return nil, corrupt("keyring: unknown key derivation %d", s.r.kdf.kind)
		}
	}
	hdrLen := c.off
	s.nonce = c.bytes(chacha20poly1305.NonceSizeX)
	s.sealed = c.rest()
	if c.bad || len(s.sealed) < chacha20poly1305.Overhead {
		return nil, corrupt("keyring: truncated")
	}
	s.ad = append([]byte(keyringLabel), b[:hdrLen]...)
	return s, nil
}

// open decrypts the data keys. A failure here is what a wrong key looks
// like, so it is reported as ErrWrongKey by the caller.
func (s *sealedKeyring) open(kek []byte) (*keyring, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, err
	}
	payload, err := aead.Open(nil, s.nonce, s.sealed, s.ad)
	if err != nil {
		return nil, ErrWrongKey
	}
	defer clear(payload)
	r := s.r.clone()
	r.keys = map[uint32]*dataKey{}
	c := cursor{b: payload}
	r.active = c.u32()
	n := int(c.u16())
	if n < 1 || n > maxDataKeys {
		return nil, corrupt("keyring: holds %d data keys", n)
	}
	for range n {
		id := c.u32()
		raw := c.bytes(dataKeySize)
		if c.bad {
			break
		}
		if _, dup := r.keys[id]; dup || id == 0 {
			return nil, corrupt("keyring: bad data key id %d", id)
		}
		r.keys[id] = newDataKey(id, bytes.Clone(raw))
	}
	if c.bad || len(c.rest()) != 0 {
		return nil, corrupt("keyring: malformed key list")
	}
	if r.keys[r.active] == nil {
		return nil, corrupt("keyring: active key %d is missing", r.active)
	}
	if r.maxVersions < 1 || r.maxVersions > maxVersionsLimit {
		return nil, corrupt("keyring: max versions %d out of range", r.maxVersions)
	}
	return r, nil
}

// wipe zeroes the raw DEKs (best effort: the ciphers keep their own copy).
func (r *keyring) wipe() {
	for _, k := range r.keys {
		clear(k.raw)
	}
}

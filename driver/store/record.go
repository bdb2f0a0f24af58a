package store

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"golang.org/x/crypto/chacha20poly1305"
)

// Record format constants (see FORMAT.md).
const (
	recordMagic      = "swkR"
	recordMACLabel   = "swarmkeep/v1/record\x00"
	valueADLabel     = "swarmkeep/v1/value\x00"
	macSize          = sha256.Size
	maxVersionsLimit = 1000
	maxRecordBytes   = 16 << 20
	// per version: number, created, nonce, ciphertext length.
	versionOverhead = 8 + 8 + chacha20poly1305.NonceSizeX + 4
	// magic, format, key id, name length, next, count.
	recordFixed = 4 + 1 + 4 + 2 + 8 + 2
)

// record is every kept version of one name, all sealed with one data key.
// Ciphertexts alias the blob the record was parsed from; plaintext is
// never kept.
type record struct {
	name     string
	key      *dataKey
	next     uint64 // the number the next Put gets; never goes down
	versions []sealedVersion
	// slim records hold only the latest version: what the cache keeps.
	slim bool
}

type sealedVersion struct {
	num     uint64
	created int64 // Unix nanoseconds
	nonce   []byte
	ct      []byte
}

// valueAD binds a ciphertext to its store, name, version, creation time
// and key, so it cannot be replayed anywhere else even by someone who can
// forge the record MAC.
func valueAD(storeID []byte, name string, v *sealedVersion, keyID uint32) []byte {
	b := make([]byte, 0, len(valueADLabel)+storeIDSize+2+len(name)+8+8+4)
	b = append(b, valueADLabel...)
	b = append(b, storeID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint64(b, v.num)
	b = binary.BigEndian.AppendUint64(b, uint64(v.created))
	return binary.BigEndian.AppendUint32(b, keyID)
}

// seal encrypts value as version num of r.
func (r *record) seal(storeID []byte, num uint64, created time.Time, value []byte) sealedVersion {
	v := sealedVersion{num: num, created: created.UnixNano()}
	v.nonce = make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(v.nonce)
	v.ct = r.key.aead.Seal(nil, v.nonce, value, valueAD(storeID, r.name, &v, r.key.id))
	return v
}

// open decrypts one version. The record MAC was checked at parse time;
// the AEAD check here is the second, independent line.
func (r *record) open(storeID []byte, v *sealedVersion) ([]byte, error) {
	pt, err := r.key.aead.Open(nil, v.nonce, v.ct, valueAD(storeID, r.name, v, r.key.id))
	if err != nil {
		return nil, corrupt("version %d does not decrypt (tampered, or moved from another name or store)", v.num)
	}
	return pt, nil
}

// find returns the given version, or the latest for 0.
func (r *record) find(num uint64) (*sealedVersion, error) {
	if len(r.versions) == 0 {
		return nil, backend.ErrNotFound
	}
	if num == 0 {
		return &r.versions[len(r.versions)-1], nil
	}
	for i := range r.versions {
		if r.versions[i].num == num {
			return &r.versions[i], nil
		}
	}
	return nil, errVersionNotFound(num)
}

func errVersionNotFound(num uint64) error {
	return fmt.Errorf("version %d: %w", num, backend.ErrNotFound)
}

// size is the encoded length, used to bound records and the cache.
func (r *record) size() int {
	n := recordFixed + len(r.name) + macSize
	for _, v := range r.versions {
		n += versionOverhead + len(v.ct)
	}
	return n
}

// prune drops the oldest versions beyond maxVersions, then any more that
// would push the record past maxRecordBytes; the newest always stays.
func (r *record) prune(maxVersions int) {
	if over := len(r.versions) - maxVersions; over > 0 {
		r.versions = r.versions[over:]
	}
	for len(r.versions) > 1 && r.size() > maxRecordBytes {
		r.versions = r.versions[1:]
	}
}

// marshal encodes the record and appends an HMAC over all of it (store ID
// included), so no byte of it can change, including the next-version
// counter and the version list, which the per-value AEAD does not cover.
func (r *record) marshal(storeID []byte) []byte {
	b := make([]byte, 0, r.size())
	b = append(b, recordMagic...)
	b = append(b, formatVersion)
	b = binary.BigEndian.AppendUint32(b, r.key.id)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.name)))
	b = append(b, r.name...)
	b = binary.BigEndian.AppendUint64(b, r.next)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.versions)))
	for _, v := range r.versions {
		b = binary.BigEndian.AppendUint64(b, v.num)
		b = binary.BigEndian.AppendUint64(b, uint64(v.created))
		b = append(b, v.nonce...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v.ct)))
		b = append(b, v.ct...)
	}
	return append(b, recordMAC(r.key, storeID, b)...)
}

func recordMAC(k *dataKey, storeID, body []byte) []byte {
	m := k.macs.Get().(*macState)
	defer k.macs.Put(m)
	return append([]byte(nil), m.compute(storeID, body)...)
}

// checkRecordMAC says whether mac is body's record MAC, without allocating:
// a listing checks every record.
func checkRecordMAC(k *dataKey, storeID, body, mac []byte) bool {
	m := k.macs.Get().(*macState)
	defer k.macs.Put(m)
	return hmac.Equal(mac, m.compute(storeID, body))
}

// compute returns the record MAC in m's own buffer.
func (m *macState) compute(storeID, body []byte) []byte {
	m.h.Reset()
	m.h.Write([]byte(recordMACLabel))
	m.h.Write(storeID)
	m.h.Write(body)
	return m.h.Sum(m.sum[:0])
}

// parseRecord checks and decodes the record stored for name. It finds the
// data key by ID with keyOf, verifies the MAC before looking at anything
// else, then checks every field. It never decrypts values.
func parseRecord(b []byte, name string, storeID []byte, keyOf func(uint32) *dataKey) (*record, error) {
	c := cursor{b: b}
	if string(c.bytes(4)) != recordMagic {
		return nil, corrupt("not a swarmkeep record")
	}
	if v := c.u8(); v != formatVersion {
		return nil, corrupt("record format version %d is not supported", v)
	}
	keyID := c.u32()
	if c.bad || len(b) < recordFixed+macSize {
		return nil, corrupt("truncated")
	}
	key := keyOf(keyID)
	if key == nil {
		return nil, unknownKeyError{keyID}
	}
	body, mac := b[:len(b)-macSize], b[len(b)-macSize:]
	if !checkRecordMAC(key, storeID, body, mac) {
		return nil, corrupt("authentication failed (tampered, truncated, or from another store)")
	}
	c.b = body
	r := &record{key: key}
	r.name = string(c.bytes(int(c.u16())))
	r.next = c.u64()
	n := int(c.u16())
	if !c.bad && r.name != name {
		return nil, corrupt("holds the record of another name")
	}
	if !c.bad && (r.next == 0 || n > maxVersionsLimit) {
		return nil, corrupt("bad header")
	}
	r.versions = make([]sealedVersion, 0, min(n, maxVersionsLimit))
	var last uint64
	for i := 0; i < n && !c.bad; i++ {
		v := sealedVersion{num: c.u64(), created: int64(c.u64())}
		v.nonce = c.bytes(chacha20poly1305.NonceSizeX)
		v.ct = c.bytes(int(c.u32()))
		if c.bad {
			break
		}
		if v.num <= last || v.num >= r.next || len(v.ct) <= chacha20poly1305.Overhead ||
			len(v.ct) > maxValueSize+chacha20poly1305.Overhead {
			return nil, corrupt("bad version entry %d", i)
		}
		last = v.num
		r.versions = append(r.versions, v)
	}
	if c.bad || len(c.rest()) != 0 {
		return nil, corrupt("malformed")
	}
	return r, nil
}

// entry describes the record without decrypting anything.
func (r *record) entry() Entry {
	e := Entry{Name: r.name, Versions: make([]VersionInfo, len(r.versions))}
	for i, v := range r.versions {
		e.Versions[i] = VersionInfo{
			Version: v.num,
			Created: time.Unix(0, v.created),
			Size:    len(v.ct) - chacha20poly1305.Overhead,
		}
	}
	return e
}

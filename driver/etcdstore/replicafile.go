package etcdstore

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// FORMAT of the replica file, <dir>/replica (version 1). All integers are
// big-endian.
//
//	magic    "SKRP"
//	version  u8 = 1
//	revision u64  etcd revision the copy holds every change up to
//	saved    i64  when it was written, Unix nanoseconds
//	count    u32  number of entries
//	entries  count times, sorted by key:
//	           keylen u16, key (without the prefix: "keyring" or "r/<name>"),
//	           modrev u64  (the key's etcd ModRevision),
//	           bloblen u32, blob (exactly as etcd holds it: sealed by the store)
//	mac      32 bytes HMAC-SHA256 over "swarmkeep etcd replica 1\x00",
//	         the prefix, "\x00", and every byte above
//
// The MAC key is derived from the KEK that opens the copy's own keyring
// (store.MACKey), so only the plugin's key makes or alters a copy that
// loads, and a copy of another prefix does not load. Nothing in the file is
// ever decrypted: the records are the sealed blobs, which the store opens
// and checks again on every read. The folder is 0700 and the file 0600, both
// owned by the plugin (root); it is replaced atomically (temporary file,
// fsync, rename, fsync of the folder). Deleting the folder is always safe:
// the next start lists the store again (but cannot serve with etcd down).
const (
	replicaFile    = "replica"
	replicaMagic   = "SKRP"
	replicaVersion = 1
	macPurpose     = "etcd replica"
	// maxReplicaFile refuses a file no store of etcd's size limits makes.
	maxReplicaFile = 8 << 30
)

// macCache keeps the MAC key of one keyring: deriving it costs an argon2id
// run with a passphrase, so it is redone only when the keyring changes.
type macCache struct {
	mu      sync.Mutex
	keyring []byte
	key     []byte
}

func (c *macCache) get(src store.KeySource, keyring []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key != nil && bytes.Equal(c.keyring, keyring) {
		return c.key, nil
	}
	k, err := store.MACKey(src, keyring, macPurpose)
	if err != nil {
		return nil, err
	}
	c.keyring, c.key = keyring, k
	return k, nil
}

func (r *Replica) sum(key, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("swarmkeep etcd replica 1\x00"))
	h.Write([]byte(r.m.prefix + "\x00"))
	h.Write(body)
	return h.Sum(nil)
}

// save writes the copy, if it has a keyring to derive the MAC key from.
func (r *Replica) save() error {
	r.mu.RLock()
	rev, kv := r.rev, make(map[string]item, len(r.kv))
	for k, v := range r.kv {
		kv[k] = v
	}
	r.mu.RUnlock()
	ring, ok := kv[keyringKey]
	if !ok {
		return nil // no store yet: nothing worth keeping
	}
	key, err := r.mac.get(r.src, ring.blob)
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString(replicaMagic)
	b.WriteByte(replicaVersion)
	b.Write(binary.BigEndian.AppendUint64(nil, uint64(rev)))
	b.Write(binary.BigEndian.AppendUint64(nil, uint64(r.now().UnixNano())))
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(keys))))
	for _, k := range keys {
		it := kv[k]
		b.Write(binary.BigEndian.AppendUint16(nil, uint16(len(k))))
		b.WriteString(k)
		b.Write(binary.BigEndian.AppendUint64(nil, uint64(it.rev)))
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(it.blob))))
		b.Write(it.blob)
	}
	b.Write(r.sum(key, b.Bytes()))
	return writeAtomic(r.dir, replicaFile, b.Bytes())
}

func writeAtomic(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	// MkdirAll keeps an existing folder's mode: the copy holds names.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+name+".*") // mode 0600
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replica: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	return nil
}

// load reads the saved copy into r. A missing file is no error; a file
// that fails its checks is refused whole (ErrCorrupt), never half used.
func (r *Replica) load() error {
	p := filepath.Join(r.dir, replicaFile)
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("replica %s: %w", p, err)
	}
	if !st.Mode().IsRegular() || st.Size() > maxReplicaFile {
		return fmt.Errorf("replica %s: %w: not a regular file of a sane size", p, backend.ErrCorrupt)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("replica %s: %w", p, err)
	}
	kv, rev, saved, err := r.decode(b)
	if err != nil {
		return fmt.Errorf("replica %s: %w (remove the file; it is listed again from etcd)", p, err)
	}
	r.mu.Lock()
	r.kv, r.rev, r.loadedAt = kv, rev, saved
	r.live, r.lastErr = false, errors.New("not yet confirmed by etcd")
	r.mu.Unlock()
	return nil
}

func (r *Replica) decode(b []byte) (map[string]item, int64, time.Time, error) {
	bad := func(why string) (map[string]item, int64, time.Time, error) {
		return nil, 0, time.Time{}, fmt.Errorf("%w: %s", backend.ErrCorrupt, why)
	}
	const head = 4 + 1 + 8 + 8 + 4
	if len(b) < head+sha256.Size || string(b[:4]) != replicaMagic {
		return bad("not a swarmkeep replica")
	}
	if b[4] != replicaVersion {
		return bad(fmt.Sprintf("format version %d is not supported", b[4]))
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	rev := int64(binary.BigEndian.Uint64(body[5:]))
	saved := time.Unix(0, int64(binary.BigEndian.Uint64(body[13:])))
	n := binary.BigEndian.Uint32(body[21:])
	kv := map[string]item{}
	c := body[head:]
	for range n {
		if len(c) < 2 {
			return bad("truncated")
		}
		kl := int(binary.BigEndian.Uint16(c))
		if len(c) < 2+kl+8+4 {
			return bad("truncated")
		}
		k := string(c[2 : 2+kl])
		mr := int64(binary.BigEndian.Uint64(c[2+kl:]))
		bl := int(binary.BigEndian.Uint32(c[2+kl+8:]))
		c = c[2+kl+12:]
		if len(c) < bl {
			return bad("truncated")
		}
		kv[k] = item{blob: bytes.Clone(c[:bl]), rev: mr}
		c = c[bl:]
	}
	if len(c) != 0 {
		return bad("trailing bytes")
	}
	ring, ok := kv[keyringKey]
	if !ok {
		return bad("no keyring")
	}
	key, err := r.mac.get(r.src, ring.blob)
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	if !hmac.Equal(sum, r.sum(key, body)) {
		return bad("its MAC does not match: altered, or not made with this key and prefix")
	}
	return kv, rev, saved, nil
}

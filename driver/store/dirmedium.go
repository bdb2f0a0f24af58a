package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"golang.org/x/sys/unix"
)

// Limits of the file medium. A key is at most a record prefix plus a
// 255-byte name; objects are bounded so a damaged or hostile file cannot
// make a reader allocate without limit.
const (
	maxKeyLen     = 1024
	maxObjectSize = 32 << 20
	tmpName       = ".tmp"
)

// DirMedium is a [Medium] on a local directory, laid out as described in
// FORMAT.md: each key lives in objects/<xx>/<sha256(key) in hex>, a file
// that starts with the key itself so List can recover it.
//
// Writes replace files with rename(2), so readers never see a partial
// file and take no lock. Writers serialise on an flock(2) of <root>/.lock,
// which also lets them clean up after a writer that was killed.
type DirMedium struct {
	root    string
	objects string
	lockf   *os.File
	lockFd  int
	// sem serialises writers inside this process: flock is per open file
	// description, so it only excludes other handles.
	sem chan struct{}
	// lastMtime makes the mtimes this process sets strictly increasing,
	// so a rewritten file never repeats a revision (see revision).
	lastMtime atomic.Int64
	closed    atomic.Bool
	// changes is the folder's change counter (see changesFile), bumped by
	// every writer; nil, with changesErr, when it cannot be opened (a
	// read-only folder): then this handle cannot write, since its writes
	// would go unannounced to readers that trust the counter.
	changes    *changeCounter
	changesErr error
	// noSync skips fsync; only tests that build large stores set it.
	noSync bool
}

var _ Medium = (*DirMedium)(nil)

// OpenDir opens the file medium rooted at root, creating root (mode 0700)
// and its layout if missing.
func OpenDir(root string) (*DirMedium, error) {
	if root == "" {
		return nil, errors.New("store directory not set")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("store directory %s: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, unavailable("create store directory", err)
	}
	if err := checkDirSafe("store directory", abs); err != nil {
		return nil, err
	}
	objects := filepath.Join(abs, "objects")
	if err := os.Mkdir(objects, 0o700); err == nil {
		if err := syncDir(abs); err != nil {
			return nil, unavailable("create store directory", err)
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, unavailable("create store directory", err)
	}
	if err := checkDirSafe("store directory", objects); err != nil {
		return nil, err
	}
	f, err := openLockFile(filepath.Join(abs, ".lock"))
	if err != nil {
		return nil, err
	}
	m := &DirMedium{
		root:    abs,
		objects: objects,
		lockf:   f,
		lockFd:  int(f.Fd()),
		sem:     make(chan struct{}, 1),
	}
	m.changes, m.changesErr = openChangeCounter(abs)
	if err := m.recoverAtOpen(); err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

// String returns the medium's root directory.
func (m *DirMedium) String() string { return m.root }

// path maps a key to its file and shard directory name. Hashing means
// names never need escaping, never show in a directory listing, and no
// directory grows beyond about n/256 entries.
func (m *DirMedium) path(key string) (file, shard string) {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(m.objects, h[:2], h), h[:2]
}

func notFound(key string) error { return fmt.Errorf("%s: %w", key, backend.ErrNotFound) }

// Stat is a single lstat(2).
func (m *DirMedium) Stat(ctx context.Context, key string) (Revision, error) {
	p, _ := m.path(key)
	rev, err := lstatRevision(p)
	if err != nil {
		return "", unavailable("stat "+key, err)
	}
	if rev == "" {
		return "", notFound(key)
	}
	return rev, nil
}

// Read returns the blob and the revision of the very file it read: files
// are never changed in place, so the pair is consistent.
func (m *DirMedium) Read(ctx context.Context, key string) ([]byte, Revision, error) {
	p, _ := m.path(key)
	// O_NOFOLLOW: an object is a regular file we wrote, never a link, and
	// Stat (lstat) would not see through one either.
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", notFound(key)
	}
	if err != nil {
		return nil, "", unavailable("read "+key, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, "", unavailable("read "+key, err)
	}
	if st.Size < 2 || st.Size > maxObjectSize {
		return nil, "", fmt.Errorf("%w: object file for %s has impossible size %d", backend.ErrCorrupt, key, st.Size)
	}
	buf := make([]byte, st.Size)
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, "", fmt.Errorf("%w: object file for %s: %w", backend.ErrCorrupt, key, err)
	}
	got, blob, ok := splitObject(buf)
	if !ok || got != key {
		return nil, "", fmt.Errorf("%w: object file for %s holds another key (moved or damaged)", backend.ErrCorrupt, key)
	}
	return blob, revision(&st), nil
}

// splitObject splits a file into its length-prefixed key and the blob.
func splitObject(b []byte) (key string, blob []byte, ok bool) {
	if len(b) < 2 {
		return "", nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if n == 0 || n > maxKeyLen || len(b) < 2+n {
		return "", nil, false
	}
	return string(b[2 : 2+n]), b[2+n:], true
}

// Write replaces key's file with a new one: temp file in the same
// directory, fsync, rename over the old one, fsync the directory.
func (m *DirMedium) Write(ctx context.Context, key string, blob []byte, prev Revision) (Revision, error) {
	if len(key) == 0 || len(key) > maxKeyLen {
		return "", fmt.Errorf("%w: key length %d", backend.ErrInvalidRef, len(key))
	}
	if 2+len(key)+len(blob) > maxObjectSize {
		return "", fmt.Errorf("%w: object for %s is larger than %d bytes", backend.ErrInvalidRef, key, maxObjectSize)
	}
	unlock, err := m.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	p, shard := m.path(key)
	cur, err := lstatRevision(p)
	if err != nil {
		return "", unavailable("write "+key, err)
	}
	if cur != prev {
		return "", fmt.Errorf("write %s: %w", key, ErrConflict)
	}
	dir := filepath.Join(m.objects, shard)
	if err := m.ensureDir(dir); err != nil {
		return "", unavailable("write "+key, err)
	}
	rev, err := m.replace(dir, shard, p, key, blob)
	if err != nil {
		return "", unavailable("write "+key, err)
	}
	return rev, nil
}

func (m *DirMedium) replace(dir, shard, p, key string, blob []byte) (Revision, error) {
	tmp := filepath.Join(dir, tmpName)
	// Note the temp file in the lock file first, so that if we are killed
	// the next writer knows what to remove.
	m.journal(shard)
	defer m.journalClear()
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	committed := false
	defer func() {
		f.Close()
		if !committed {
			os.Remove(tmp)
		}
	}()
	hdr := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(key)), uint16(len(key)))
	hdr = append(hdr, key...)
	if _, err := f.Write(hdr); err != nil {
		return "", err
	}
	if _, err := f.Write(blob); err != nil {
		return "", err
	}
	mt := m.uniqueTime()
	if err := os.Chtimes(tmp, mt, mt); err != nil {
		return "", err
	}
	if err := m.sync(f); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", err
	}
	committed = true
	if err := m.syncDirIf(dir); err != nil {
		return "", err
	}
	// fstat after the rename: rename may update ctime.
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	return revision(&st), nil
}

// Delete removes key's file if it is still at revision prev.
func (m *DirMedium) Delete(ctx context.Context, key string, prev Revision) error {
	unlock, err := m.acquire(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	p, shard := m.path(key)
	cur, err := lstatRevision(p)
	if err != nil {
		return unavailable("delete "+key, err)
	}
	if cur == "" {
		return notFound(key)
	}
	if cur != prev {
		return fmt.Errorf("delete %s: %w", key, ErrConflict)
	}
	if err := os.Remove(p); err != nil {
		return unavailable("delete "+key, err)
	}
	if err := m.syncDirIf(filepath.Join(m.objects, shard)); err != nil {
		return unavailable("delete "+key, err)
	}
	return nil
}

// List walks every shard directory. It opens each object to read its key,
// so it costs one small read per object; only listing pays that.
func (m *DirMedium) List(ctx context.Context, prefix string, fn func(key string) error) error {
	shards, err := os.ReadDir(m.objects)
	if err != nil {
		return unavailable("list", err)
	}
	var bad badObjects
	for _, sh := range shards {
		if !sh.IsDir() || !isHex(sh.Name(), 2) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return unavailable("list", err)
		}
		dir := filepath.Join(m.objects, sh.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			return unavailable("list", err)
		}
		for _, e := range entries {
			// Skips temp files and anything else that is not ours.
			if !isHex(e.Name(), 64) || !strings.HasPrefix(e.Name(), sh.Name()) {
				continue
			}
			key, err := readKey(filepath.Join(dir, e.Name()))
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted since ReadDir
			}
			loc := filepath.Join("objects", sh.Name(), e.Name())
			if err != nil {
				return unavailable("list", err)
			}
			if sum := sha256.Sum256([]byte(key)); key == "" || hex.EncodeToString(sum[:]) != e.Name() {
				bad = append(bad, badObject{loc, fmt.Errorf("%w: object file holds no key, or another key (moved or damaged)", backend.ErrCorrupt)})
				continue
			}
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			if err := fn(key); err != nil {
				return err
			}
		}
	}
	if len(bad) > 0 {
		return bad
	}
	return nil
}

// readKey reads only the key at the start of an object file. A file too
// short to hold one yields "".
func readKey(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 2+maxKeyLen)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	key, _, _ := splitObject(buf[:n])
	return key, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Close releases the lock file. It waits for a write in progress in this
// process to finish.
func (m *DirMedium) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	m.sem <- struct{}{}
	defer func() { <-m.sem }()
	return m.lockf.Close()
}

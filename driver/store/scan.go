package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"golang.org/x/sys/unix"
)

// Scanner is implemented by media that can read every object under a
// prefix in one pass, faster than List followed by a Read of each key.
type Scanner interface {
	// Scan calls fn with the key and blob of every object whose key
	// starts with prefix, in no particular order and from several
	// goroutines at once. blob is valid only until fn returns (Scan
	// reuses the memory). An error from fn stops the scan
	// and is returned. Objects whose key cannot be recovered are reported
	// together at the end, as List does.
	Scan(ctx context.Context, prefix string, fn func(key string, blob []byte) error) error
}

var _ Scanner = (*DirMedium)(nil)

// ObjectID identifies one version of an object file by what its revision
// is made of (FORMAT.md): inode, size, mtime and ctime. Every write makes a
// new file whose mtime the writer sets from a clock that never repeats, and
// a change in place moves the ctime, so an unchanged ID means unchanged
// content. A listing that remembers what it read under an ID reads only
// the objects whose ID moved (see listcache.go).
type ObjectID struct {
	Ino          uint64
	Size         int64
	Mtime, Ctime int64 // nanoseconds
}

// Known is what the caller of ScanKnown already holds: the ID under which
// it read object obj (its file name, 64 hex digits), if it did, and
// unchanged, told of each such object found with that very ID. Both are
// called from several goroutines at once, once per object.
type Known struct {
	Remembered func(obj string) (ObjectID, bool)
	Unchanged  func(obj string)
}

// KnownScanner is implemented by media whose object files have an
// [ObjectID], so a listing can skip the ones it already read.
type KnownScanner interface {
	// ScanKnown is Scan that skips the objects known holds unchanged
	// (one stat each) and passes the others to fn with their ID.
	ScanKnown(ctx context.Context, prefix string, known Known,
		fn func(obj string, id ObjectID, key string, blob []byte) error) error
}

var _ KnownScanner = (*DirMedium)(nil)

// scanWorkers is how many shard directories a Scan reads at once: enough
// to keep both the disk and the CPUs (MAC checks) busy.
const scanWorkers = 8

// Scan reads each object file once (List reads its key, then Read the
// whole file again), shard directories in parallel.
func (m *DirMedium) Scan(ctx context.Context, prefix string, fn func(key string, blob []byte) error) error {
	return m.ScanKnown(ctx, prefix, Known{}, func(_ string, _ ObjectID, key string, blob []byte) error { return fn(key, blob) })
}

// ScanKnown is KnownScanner: with a zero Known it reads every object, as Scan.
func (m *DirMedium) ScanKnown(ctx context.Context, prefix string, known Known,
	fn func(obj string, id ObjectID, key string, blob []byte) error) error {
	shards, err := os.ReadDir(m.objects)
	if err != nil {
		return unavailable("list", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		bad   badObjects
		first error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		cancel()
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range scanWorkers {
		wg.Go(func() {
			for shard := range work {
				b, err := m.scanShard(ctx, shard, prefix, known, fn)
				if err != nil {
					fail(err)
				}
				mu.Lock()
				bad = append(bad, b...)
				mu.Unlock()
			}
		})
	}
	for _, sh := range shards {
		if sh.IsDir() && isHex(sh.Name(), 2) && ctx.Err() == nil {
			work <- sh.Name()
		}
	}
	close(work)
	wg.Wait()
	if first != nil {
		return first
	}
	if err := ctx.Err(); err != nil {
		return unavailable("list", err)
	}
	if len(bad) > 0 {
		return bad
	}
	return nil
}

func (m *DirMedium) scanShard(ctx context.Context, shard, prefix string, known Known,
	fn func(string, ObjectID, string, []byte) error) (badObjects, error) {
	dir := filepath.Join(m.objects, shard)
	d, err := os.Open(dir)
	if err != nil {
		return nil, unavailable("list", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, unavailable("list", err)
	}
	var bad badObjects
	buf := make([]byte, scanReadSize)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return bad, nil // the caller reports why
		}
		if !isHex(name, 64) || !strings.HasPrefix(name, shard) {
			continue // temp files and anything else that is not ours
		}
		if known.Remembered != nil {
			if want, ok := known.Remembered(name); ok {
				id, err := statObjectAt(int(d.Fd()), name)
				if errors.Is(err, fs.ErrNotExist) {
					continue // deleted since listed
				} else if err != nil {
					return bad, unavailable("list", err)
				}
				if id == want {
					known.Unchanged(name)
					continue
				}
			}
		}
		obj, id, err := readObjectAt(int(d.Fd()), name, buf, known.Remembered != nil)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since listed
		}
		if err != nil {
			return bad, unavailable("list", err)
		}
		key, blob, ok := splitObject(obj)
		if !ok || !objectNameOf(key, name) {
			loc := filepath.Join("objects", shard, name)
			bad = append(bad, badObject{loc, fmt.Errorf("%w: object file holds no key, or another key (moved or damaged)", backend.ErrCorrupt)})
			continue
		}
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		if err := fn(name, id, key, blob); err != nil {
			return bad, err
		}
	}
	return bad, nil
}

// objectNameOf says whether name is the object file name of key, the hex
// SHA-256 of key, without allocating.
func objectNameOf(key, name string) bool {
	sum := sha256.Sum256([]byte(key))
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return string(h[:]) == name
}

// scanReadSize holds a typical record file in one read(2).
const scanReadSize = 4 << 10

// readObjectAt reads a whole object file relative to its open shard
// directory, with plain system calls: os.File would register every file
// with the runtime poller, and an absolute path costs a lookup of every
// component. A file that fits in one read costs openat, read and close;
// a short read of a regular file is its end (a torn read would fail the
// record's MAC, never pass as a value). With withID it also returns the
// file's ID, taken before the read: a change in place after it moves the
// ctime, so what was read is never remembered under a newer ID.
func readObjectAt(dirfd int, name string, buf []byte, withID bool) ([]byte, ObjectID, error) {
	fd, err := openObjectAt(dirfd, name)
	if err != nil {
		return nil, ObjectID{}, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	statted := false
	stat := func() error {
		if statted {
			return nil
		}
		statted = true
		if err := unix.Fstat(fd, &st); err != nil {
			return &fs.PathError{Op: "stat", Path: name, Err: err}
		}
		return nil
	}
	var id ObjectID
	if withID {
		if err := stat(); err != nil {
			return nil, id, err
		}
		id = ObjectID{Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
	}
	n, err := readRetry(fd, buf)
	if err != nil {
		return nil, id, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if n < len(buf) {
		return buf[:n], id, nil
	}
	if err := stat(); err != nil {
		return nil, id, err
	}
	if st.Size < 2 || st.Size > maxObjectSize {
		return nil, id, nil // splitObject reports it as damaged
	}
	buf = append(buf[:n:n], make([]byte, max(int(st.Size)-n, 0))...)
	for n < len(buf) {
		k, err := readRetry(fd, buf[n:])
		if err != nil {
			return nil, id, &fs.PathError{Op: "read", Path: name, Err: err}
		}
		if k == 0 {
			break
		}
		n += k
	}
	return buf[:n], id, nil
}

// openObjectAt is unix.Openat for an object file name (64 hex digits)
// with the NUL-terminated path built on the stack: unix.Openat allocates it,
// once per file of a listing.
func openObjectAt(dirfd int, name string) (int, error) {
	var p [2*sha256.Size + 1]byte
	if len(name) >= len(p) {
		return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	copy(p[:], name) // p[len(name)] stays 0
	for {
		fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&p[0])),
			uintptr(unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC), 0, 0, 0)
		switch e {
		case 0:
			return int(fd), nil
		case unix.EINTR:
			continue
		}
		return -1, e
	}
}

// statObjectAt is fstatat(2) of an object file name.
func statObjectAt(dirfd int, name string) (ObjectID, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ObjectID{}, err
		}
		return ObjectID{Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}, nil
	}
}

func readRetry(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}

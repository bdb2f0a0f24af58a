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

// scanWorkers is how many shard directories a Scan reads at once: enough
// to keep both the disk and the CPUs (MAC checks) busy.
const scanWorkers = 8

// Scan reads each object file once (List reads its key, then Read the
// whole file again), shard directories in parallel.
func (m *DirMedium) Scan(ctx context.Context, prefix string, fn func(key string, blob []byte) error) error {
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
				b, err := m.scanShard(ctx, shard, prefix, fn)
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

func (m *DirMedium) scanShard(ctx context.Context, shard, prefix string, fn func(string, []byte) error) (badObjects, error) {
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
		obj, err := readObjectAt(int(d.Fd()), name, buf)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since listed
		}
		loc := filepath.Join("objects", shard, name)
		if err != nil {
			return bad, unavailable("list", err)
		}
		key, blob, ok := splitObject(obj)
		if !ok || !objectNameOf(key, name) {
			bad = append(bad, badObject{loc, fmt.Errorf("%w: object file holds no key, or another key (moved or damaged)", backend.ErrCorrupt)})
			continue
		}
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		if err := fn(key, blob); err != nil {
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
// record's MAC, never pass as a value).
func readObjectAt(dirfd int, name string, buf []byte) ([]byte, error) {
	fd, err := openObjectAt(dirfd, name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	n, err := readRetry(fd, buf)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if n < len(buf) {
		return buf[:n], nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Size < 2 || st.Size > maxObjectSize {
		return nil, nil // splitObject reports it as damaged
	}
	buf = append(buf[:n:n], make([]byte, int(st.Size)-n)...)
	for n < len(buf) {
		k, err := readRetry(fd, buf[n:])
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		}
		if k == 0 {
			break
		}
		n += k
	}
	return buf[:n], nil
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

func readRetry(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}

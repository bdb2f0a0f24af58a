package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// changesFile is the store folder's change counter: 8 bytes that every
// writer increments, through a shared mapping, before it lets go of the
// writer lock. A reader that finds the counter where it last saw it knows
// that no writer has finished since, and skips the read(2) of its inotify
// queue: a cached Get costs one load from memory. Only swarmkeep's own
// writers count; a change made by other hands is reported by inotify alone
// (see dirWatch).
const changesFile = ".changes"

// changesSize is the counter file's size: one cache line.
const changesSize = 64

// changeCounter is a mapped change counter. A load or an increment faults if
// someone truncated the file while it was mapped (a copy over the folder,
// say); the fault is caught and the counter given up, so the reader goes
// back to reading its queue every time, and nothing crashes.
type changeCounter struct {
	p      *uint64
	broken atomic.Bool
}

var (
	countersMu sync.Mutex
	// counters holds one mapping per counter file (by device and inode)
	// for the life of the process: a watch may load from it at any time,
	// even while its medium closes, so it is never unmapped. A process
	// opens few store folders; one page each.
	counters = map[[2]uint64]*changeCounter{}
)

// openChangeCounter maps root's change counter, creating it if missing.
func openChangeCounter(root string) (*changeCounter, error) {
	p := filepath.Join(root, changesFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("change counter: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("change counter: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		return nil, fmt.Errorf("change counter %s: %w: it is not a regular file with one link (run rm %s; swarmkeep recreates it)", p, ErrUnsafePermissions, p)
	}
	if err := checkOwner("change counter", p, st.Uid); err != nil {
		return nil, err
	}
	if st.Size < changesSize {
		// Only ever grown: two processes creating it at once both
		// extend it to the same size, and its count stays.
		if err := f.Truncate(changesSize); err != nil {
			return nil, fmt.Errorf("change counter: %w", err)
		}
	}
	id := [2]uint64{uint64(st.Dev), st.Ino}
	countersMu.Lock()
	defer countersMu.Unlock()
	if c := counters[id]; c != nil {
		return c, nil
	}
	b, err := unix.Mmap(int(f.Fd()), 0, changesSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("change counter: %w", err)
	}
	c := &changeCounter{p: (*uint64)(unsafe.Pointer(&b[0]))}
	counters[id] = c
	return c, nil
}

var errCounterFault = errors.New("change counter truncated while mapped")

// load returns the count; ok is false once the counter is given up.
func (c *changeCounter) load() (n uint64, ok bool) {
	if c == nil || c.broken.Load() {
		return 0, false
	}
	err := c.guard(func() { n = atomic.LoadUint64(c.p) })
	return n, err == nil
}

// bump counts one finished write.
func (c *changeCounter) bump() {
	if c == nil || c.broken.Load() {
		return
	}
	c.guard(func() { atomic.AddUint64(c.p, 1) })
}

// guard runs f, turning a fault on the mapping into an error that gives the
// counter up.
func (c *changeCounter) guard(f func()) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			c.broken.Store(true)
			err = errCounterFault
		}
	}()
	f()
	return nil
}

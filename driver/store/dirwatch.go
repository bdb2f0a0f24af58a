package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

var _ Watcher = (*DirMedium)(nil)

// Events that mean an object file may have changed. The medium replaces
// files by rename (IN_MOVED_TO) and removes them (IN_DELETE); the others
// catch hands that edit, touch or move files in place.
const objectEvents = unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_CREATE |
	unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE

// Events on a watched folder itself: it was removed or moved away, so
// what its path names is another folder now.
const selfEvents = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_IGNORED

// Watch watches the store with inotify: the root folder (for objects/
// replaced), objects/ (for new shard folders) and every shard folder.
// Object files are named by the SHA-256 of their key, which is the ID.
func (m *DirMedium) Watch() (Watch, error) {
	if err := localFilesystem(m.root); err != nil {
		return nil, fmt.Errorf("watch %s: %w", m.root, err)
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", m.root, err)
	}
	w := &dirWatch{m: m, fd: fd, file: os.NewFile(uintptr(fd), "inotify"), shards: map[int32]string{}, buf: make([]byte, 64<<10)}
	fail := func(err error) (Watch, error) {
		w.file.Close()
		return nil, fmt.Errorf("watch %s: %w", m.root, err)
	}
	if w.rootWd, err = unix.InotifyAddWatch(fd, m.root, selfEvents|unix.IN_MOVED_FROM|unix.IN_MOVED_TO|unix.IN_DELETE|unix.IN_CREATE|unix.IN_ONLYDIR); err != nil {
		return fail(err)
	}
	if w.objWd, err = unix.InotifyAddWatch(fd, m.objects, selfEvents|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_DELETE|unix.IN_ONLYDIR); err != nil {
		return fail(err)
	}
	// Shards made after this point are reported by the objects/ watch.
	d, err := openDirNames(m.objects)
	if err != nil {
		return fail(err)
	}
	for _, name := range d {
		if isHex(name, 2) {
			if err := w.addShard(name); err != nil {
				return fail(err)
			}
		}
	}
	if m.changes != nil {
		rc, err := w.file.SyscallConn()
		if err != nil {
			return fail(err)
		}
		w.counter.Store(m.changes)
		w.polling.Store(true)
		startPoll(w, rc)
	}
	return w, nil
}

// dirWatch is a DirMedium's inotify watch. Sync reads the inotify queue
// without blocking: one read(2) that finds nothing in the steady state, a
// fraction of the lstat(2) of a three-level path it replaces; concurrent
// Syncs share one read (see Sync).
//
// With the folder's change counter (see changesFile) a Sync skips even that
// read while nothing happened: the counter is where the last drain saw it
// (no swarmkeep writer has finished since) and the poller has seen no event
// (nobody else has changed a file either). The counter is what keeps the
// guarantee: a writer increments it after its rename(2), whose event is
// queued by then, and before its Put returns, so the next Sync anywhere
// drains that event. The poller catches changes by other hands (an edited
// or restored file), within its wake-up, microseconds.
type dirWatch struct {
	m     *DirMedium
	begun atomic.Uint64 // drains started
	// seen is the change count read before the last complete drain, plus
	// one; 0 when unknown (no drain yet, or the watch broke).
	seen    atomic.Uint64
	pending atomic.Bool // the poller saw the queue readable since the last drain began
	polling atomic.Bool // the poller runs; without it every Sync drains
	counter atomic.Pointer[changeCounter]

	mu            sync.Mutex // guards the rest, and serialises drains
	fd            int
	file          *os.File // owns fd; the poller waits on it
	rootWd, objWd int
	shards        map[int32]string // watch descriptor -> shard name
	done          uint64           // drains finished
	err           error            // set once the watch is broken or closed
	buf           []byte
}

// startPoll starts w's poller; tests replace it.
var startPoll = func(w *dirWatch, rc syscall.RawConn) { go w.poll(rc) }

// poll waits, in the runtime's poller, for the queue to become readable and
// marks it pending; Sync reads it. It returns when the watch is closed.
func (w *dirWatch) poll(rc syscall.RawConn) {
	rc.Read(func(uintptr) bool {
		w.pending.Store(true)
		return false // wait for the next event
	})
	// Closed, or the poller cannot wait on this fd: drain every time.
	w.polling.Store(false)
	w.seen.Store(0)
}

// unchanged says, without a system call, that no change can have been
// queued since the last complete drain.
func (w *dirWatch) unchanged() bool {
	c := w.counter.Load()
	if c == nil || w.pending.Load() || !w.polling.Load() {
		return false
	}
	n, ok := c.load()
	return ok && n+1 == w.seen.Load()
}

func (w *dirWatch) addShard(name string) error {
	wd, err := unix.InotifyAddWatch(w.fd, filepath.Join(w.m.objects, name), objectEvents|selfEvents|unix.IN_ONLYDIR)
	if err != nil {
		return err
	}
	w.shards[int32(wd)] = name
	return nil
}

func (w *dirWatch) ID(key string) string { return sha256ID(key) }

// Sync drains the inotify queue. Every change completed before Sync was
// called has its event queued by then, so the drain passes it on. A Sync
// that finds that a whole drain ran while it waited for the lock returns
// at once: that drain began after this Sync was called.
func (w *dirWatch) Sync(changed func(id string), lost func()) error {
	if w.unchanged() {
		return nil
	}
	ticket := w.begun.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.done > ticket {
		return nil
	}
	w.begun.Add(1)
	defer func() { w.done++ }()
	// Both before the read: a change announced or polled after this point
	// makes the next Sync drain again.
	w.pending.Store(false)
	count, counted := w.counter.Load().load()
	for {
		n, err := unix.Read(w.fd, w.buf)
		if errors.Is(err, unix.EAGAIN) {
			if counted && w.counter.Load() != nil {
				w.seen.Store(count + 1)
			}
			return nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return w.breakLocked(fmt.Errorf("read inotify events: %w", err))
		}
		if err := w.handleLocked(w.buf[:n], changed, lost); err != nil {
			return w.breakLocked(err)
		}
	}
}

// handleLocked applies one read's worth of events.
func (w *dirWatch) handleLocked(b []byte, changed func(string), lost func()) error {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			return errors.New("short inotify event")
		}
		name := cString(b[unix.SizeofInotifyEvent:end])
		b = b[end:]
		wd, mask := int(ev.Wd), ev.Mask
		switch {
		case mask&unix.IN_Q_OVERFLOW != 0:
			lost() // events were dropped: any record may have changed
		case wd == w.rootWd:
			if mask&selfEvents != 0 || name == "objects" {
				return errors.New("the store folder or its objects folder was replaced")
			}
			if name == changesFile {
				// Removed or replaced: writers from now on count in
				// another file. Drain every time from now on.
				w.counter.Store(nil)
				w.seen.Store(0)
			}
		case wd == w.objWd:
			if mask&selfEvents != 0 {
				return errors.New("the objects folder was replaced")
			}
			if !isHex(name, 2) {
				continue
			}
			if mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
				// Files may have been written in it before it was
				// watched, and read since: forget everything. At most
				// 256 times in a store's life.
				if err := w.addShard(name); err != nil {
					return err
				}
			}
			lost()
		default:
			shard, ok := w.shards[int32(wd)]
			if !ok {
				continue // a shard watch already dropped
			}
			if mask&selfEvents != 0 {
				delete(w.shards, int32(wd))
				lost()
				continue
			}
			if isHex(name, 64) && name[:2] == shard {
				id, err := hex.DecodeString(name)
				if err == nil {
					changed(string(id))
				}
			}
		}
	}
	return nil
}

func (w *dirWatch) breakLocked(err error) error {
	if w.err == nil {
		w.err = fmt.Errorf("watch %s: %w", w.m.root, err)
		w.seen.Store(0)
		w.file.Close()
	}
	return w.err
}

func (w *dirWatch) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = errors.New("watch closed")
		w.seen.Store(0)
		return w.file.Close()
	}
	return nil
}

// cString is an inotify name without its NUL padding.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func openDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// localFilesystems are the filesystems whose every change goes through this
// host's kernel, so inotify sees it, by statfs f_type. On a network or FUSE
// filesystem (NFS, SMB, CephFS, GlusterFS, sshfs) another host's write
// raises no event, so a watched cache would serve an old value for good;
// there the store checks each record's revision instead (a stat per Get).
var localFilesystems = map[int64]string{
	0xEF53:     "ext4",
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x01021994: "tmpfs",
	0x858458F6: "ramfs",
	0x2FC12FC1: "zfs",
	0xF2F52010: "f2fs",
	0x794C7630: "overlayfs",
	0xCA451A4E: "bcachefs",
	0x3153464A: "jfs",
}

// statfs is unix.Statfs; tests replace it.
var statfs = unix.Statfs

// localFilesystem refuses a folder whose filesystem is not known to report
// every change to inotify.
func localFilesystem(dir string) error {
	var st unix.Statfs_t
	if err := statfs(dir, &st); err != nil {
		return err
	}
	if _, ok := localFilesystems[int64(st.Type)]; !ok {
		return fmt.Errorf("filesystem type %#x is not a local one inotify sees every change of", st.Type)
	}
	return nil
}

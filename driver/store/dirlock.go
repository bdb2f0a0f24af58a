package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"golang.org/x/sys/unix"
)

// lockCtxKey marks a context whose holder owns a DirMedium's writer lock.
type lockCtxKey struct{}

type lockToken struct {
	m    *DirMedium
	held atomic.Bool
}

// Lock takes the store-wide writer lock: first this process's semaphore,
// then an exclusive flock on <root>/.lock. flock is released by the kernel
// when the process dies, so a killed writer never blocks the store.
//
// flock cannot wait on a context, so we poll with LOCK_NB and a short
// backoff; contention only comes from concurrent writers, which are rare.
func (m *DirMedium) Lock(ctx context.Context) (context.Context, func(), error) {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("wait for store lock: %w: %w", backend.ErrUnavailable, ctx.Err())
	}
	if m.closed.Load() {
		<-m.sem
		return nil, nil, fmt.Errorf("store %s: %w: medium closed", m.root, backend.ErrUnavailable)
	}
	if m.changesErr != nil {
		<-m.sem
		return nil, nil, unavailable("lock store", m.changesErr)
	}
	delay := 100 * time.Microsecond
	for {
		err := unix.Flock(m.lockFd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			<-m.sem
			return nil, nil, unavailable("lock store", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			<-m.sem
			return nil, nil, fmt.Errorf("store is locked by another writer: %w: %w", backend.ErrUnavailable, ctx.Err())
		}
		delay = min(2*delay, 5*time.Millisecond)
	}
	m.removeStray()
	// A batch left half-renamed must be finished before anyone writes,
	// or finishing it later would undo their writes.
	if err := m.recoverBatch(); err != nil {
		unix.Flock(m.lockFd, unix.LOCK_UN)
		<-m.sem
		return nil, nil, err
	}
	tok := &lockToken{m: m}
	tok.held.Store(true)
	var once sync.Once
	unlock := func() {
		once.Do(func() {
			tok.held.Store(false)
			// Announce the writes made under the lock (if any) before a
			// Put returns: a reader that sees the count drains its queue,
			// which holds their events since each rename(2) returned.
			m.changes.bump()
			unix.Flock(m.lockFd, unix.LOCK_UN)
			<-m.sem
		})
	}
	return context.WithValue(ctx, lockCtxKey{}, tok), unlock, nil
}

// acquire returns at once if ctx already carries this medium's lock (the
// store holds it around a read-modify-write), else takes the lock for the
// duration of one Write or Delete.
func (m *DirMedium) acquire(ctx context.Context) (func(), error) {
	if t, ok := ctx.Value(lockCtxKey{}).(*lockToken); ok && t.m == m && t.held.Load() {
		return func() {}, nil
	}
	_, unlock, err := m.Lock(ctx)
	return unlock, err
}

// journal records, in the lock file, the shard whose temp file we are
// about to write. Only the lock holder writes, so one slot is enough. It
// is not fsynced: after a power cut an unrecorded temp file can survive,
// but there is at most one per shard and the next write to that shard
// reuses its name (see FORMAT.md).
func (m *DirMedium) journal(shard string) {
	unix.Pwrite(m.lockFd, []byte(shard), 0)
}

func (m *DirMedium) journalClear() {
	unix.Ftruncate(m.lockFd, 0)
}

// removeStray removes the temp file a killed writer left behind. It runs with
// the lock held, so no live writer owns that file.
func (m *DirMedium) removeStray() {
	buf := make([]byte, 8)
	n, _ := unix.Pread(m.lockFd, buf, 0)
	if n <= 0 {
		return
	}
	// Trust only the exact shape we write: a damaged lock file must not
	// make us delete anything else.
	if shard := string(buf[:n]); isHex(shard, 2) {
		os.Remove(filepath.Join(m.objects, shard, tmpName))
	}
	m.journalClear()
}

// uniqueTime returns the mtime to stamp on a new file. The kernel's own
// timestamps are coarse (a clock tick), so two rewrites of the same size
// that reuse an inode could otherwise repeat a revision.
func (m *DirMedium) uniqueTime() time.Time {
	now := time.Now().UnixNano()
	for {
		last := m.lastMtime.Load()
		if now <= last {
			now = last + 1
		}
		if m.lastMtime.CompareAndSwap(last, now) {
			return time.Unix(0, now)
		}
	}
}

func (m *DirMedium) ensureDir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return m.syncDirIf(m.objects)
}

func (m *DirMedium) sync(f *os.File) error {
	if m.noSync {
		return nil
	}
	return f.Sync()
}

func (m *DirMedium) syncDirIf(dir string) error {
	if m.noSync {
		return nil
	}
	return syncDir(dir)
}

// syncDir makes a directory's entries (a rename, a new file) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lstatRevision is the one stat(2) behind Stat; absent gives "".
func lstatRevision(p string) (Revision, error) {
	var st unix.Stat_t
	err := unix.Lstat(p, &st)
	if errors.Is(err, unix.ENOENT) {
		return "", nil
	}
	if err != nil {
		return "", &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	return revision(&st), nil
}

// revision is inode, size, mtime and ctime in nanoseconds. Every write is
// a new file (new inode while the old one is open or cached), stamped
// with a unique mtime, so a changed file always has a changed revision.
func revision(st *unix.Stat_t) Revision {
	b := make([]byte, 0, 64)
	b = strconv.AppendUint(b, uint64(st.Ino), 16)
	b = append(b, '.')
	b = strconv.AppendInt(b, st.Size, 16)
	b = append(b, '.')
	b = strconv.AppendInt(b, st.Mtim.Nano(), 16)
	b = append(b, '.')
	b = strconv.AppendInt(b, st.Ctim.Nano(), 16)
	return Revision(b)
}

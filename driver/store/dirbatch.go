package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Files of a batch write (see FORMAT.md, "Batch writes"). The temp file of
// each object sits next to it, named after it plus batchSuffix, which List
// and Read ignore like every name that is not 64 hex digits.
const (
	batchPending = ".batch-pending" // the batch's objects, before its commit
	batchCommit  = ".batch"         // the same list, once the batch is committed
	batchSuffix  = ".batch"
)

var _ BatchWriter = (*DirMedium)(nil)

// WriteBatch writes every object of a batch as one unit. It writes all the
// temp files, makes them durable with one syncfs(2) rather than an fsync
// each (a migration of 100,000 values would otherwise wait on 100,000
// journal commits), then commits by renaming the pending list to .batch
// and only then renames the temp files over their objects. A writer killed
// before the commit leaves none of the batch, one killed after it leaves a
// .batch that the next lock holder (or OpenDir) rolls forward: all of it.
func (m *DirMedium) WriteBatch(ctx context.Context, writes []BatchWrite) error {
	unlock, err := m.acquire(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	hashes := make([]string, len(writes))
	seen := make(map[string]bool, len(writes))
	for i, w := range writes {
		if len(w.Key) == 0 || len(w.Key) > maxKeyLen || 2+len(w.Key)+len(w.Blob) > maxObjectSize {
			return fmt.Errorf("write %s: object too large or bad key", w.Key)
		}
		p, _ := m.path(w.Key)
		h := filepath.Base(p)
		if seen[h] {
			return fmt.Errorf("write %s: twice in one batch", w.Key)
		}
		seen[h] = true
		hashes[i] = h
		cur, err := lstatRevision(p)
		if err != nil {
			return unavailable("write "+w.Key, err)
		}
		if cur != w.Prev {
			return fmt.Errorf("write %s: %w", w.Key, ErrConflict)
		}
	}
	if err := ctx.Err(); err != nil {
		return unavailable("write batch", err)
	}
	if err := m.writeList(batchPending, hashes); err != nil {
		return unavailable("write batch", err)
	}
	committed := false
	defer func() {
		if !committed {
			m.dropBatch(batchPending, hashes)
		}
	}()
	dirs := m.shardDirs()
	defer dirs.close()
	for i, w := range writes {
		if err := m.writeTemp(dirs, hashes[i], w.Key, w.Blob); err != nil {
			return unavailable("write "+w.Key, err)
		}
	}
	if err := m.syncFS(); err != nil {
		return unavailable("write batch", err)
	}
	if err := ctx.Err(); err != nil {
		return unavailable("write batch", err)
	}
	// The commit point: from here on the batch is rolled forward.
	if err := os.Rename(filepath.Join(m.root, batchPending), filepath.Join(m.root, batchCommit)); err != nil {
		return unavailable("commit batch", err)
	}
	committed = true
	if err := m.syncDirIf(m.root); err != nil {
		return fmt.Errorf("%w: %w", ErrBatchCommitted, unavailable("commit batch", err))
	}
	if err := m.finishBatch(hashes); err != nil {
		return fmt.Errorf("%w: %w", ErrBatchCommitted, unavailable("finish batch", err))
	}
	return nil
}

func (m *DirMedium) tempOf(hash string) string {
	return filepath.Join(m.objects, hash[:2], hash+batchSuffix)
}

// shardDirs keeps the shard folders of a batch open, so each file is
// created, stamped and renamed relative to its folder: a lookup of one
// name instead of every component of an absolute path, several times per
// object.
type shardDirs struct {
	m   *DirMedium
	fds map[string]int
}

func (m *DirMedium) shardDirs() *shardDirs { return &shardDirs{m: m, fds: map[string]int{}} }

// open returns the folder of shard, creating it if create is set. A new
// folder is made durable by the batch's syncfs, not an fsync each.
func (d *shardDirs) open(shard string, create bool) (int, error) {
	if fd, ok := d.fds[shard]; ok {
		return fd, nil
	}
	dir := filepath.Join(d.m.objects, shard)
	if create {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return -1, err
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	d.fds[shard] = fd
	return fd, nil
}

func (d *shardDirs) close() {
	for _, fd := range d.fds {
		unix.Close(fd)
	}
	clear(d.fds)
}

// writeTemp writes one object's temp file, stamped with a unique mtime
// like every object (see revision). It uses the system calls directly:
// os.File would register each file with the runtime poller, a third of
// the cost of a small write.
func (m *DirMedium) writeTemp(dirs *shardDirs, hash, key string, blob []byte) error {
	dfd, err := dirs.open(hash[:2], true)
	if err != nil {
		return err
	}
	tmp := hash + batchSuffix
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &fs.PathError{Op: "open", Path: m.tempOf(hash), Err: err}
	}
	buf := make([]byte, 0, 2+len(key)+len(blob))
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(key)))
	buf = append(append(buf, key...), blob...)
	err = writeAll(fd, buf)
	if err == nil {
		mt := unix.NsecToTimespec(m.uniqueTime().UnixNano())
		err = unix.UtimesNanoAt(dfd, tmp, []unix.Timespec{mt, mt}, unix.AT_SYMLINK_NOFOLLOW)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &fs.PathError{Op: "write", Path: m.tempOf(hash), Err: err}
	}
	return nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// finishBatch renames the temp files of a committed batch over their
// objects, makes that durable, then removes the commit list. A temp file
// already gone was renamed before a crash; so finishing twice is harmless.
func (m *DirMedium) finishBatch(hashes []string) error {
	dirs := m.shardDirs()
	defer dirs.close()
	for _, h := range hashes {
		dfd, err := dirs.open(h[:2], false)
		if errors.Is(err, fs.ErrNotExist) {
			continue // no temp file can be there
		}
		if err != nil {
			return err
		}
		err = unix.Renameat(dfd, h+batchSuffix, dfd, h)
		if err != nil && err != unix.ENOENT {
			return &fs.PathError{Op: "rename", Path: m.tempOf(h), Err: err}
		}
	}
	if err := m.syncFS(); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(m.root, batchCommit)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return m.syncDirIf(m.root)
}

// dropBatch removes the temp files of a batch that was not committed, then
// its list.
func (m *DirMedium) dropBatch(list string, hashes []string) {
	for _, h := range hashes {
		os.Remove(m.tempOf(h))
	}
	os.Remove(filepath.Join(m.root, list))
}

// recoverBatch finishes or drops the batch of a writer that was killed.
// It runs with the writer lock held.
func (m *DirMedium) recoverBatch() error {
	if hashes, err := m.readList(batchCommit); err == nil {
		if err := m.finishBatch(hashes); err != nil {
			return unavailable("finish an interrupted batch write", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return unavailable("finish an interrupted batch write", err)
	}
	if hashes, err := m.readList(batchPending); err == nil {
		m.dropBatch(batchPending, hashes)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return unavailable("drop an interrupted batch write", err)
	}
	return nil
}

// recoverAtOpen rolls a committed batch forward when a store is opened,
// so a reader that starts after a crashed import sees all of it even if
// no writer came since. It waits for the lock only if there is a batch,
// and not for long: a holder is the batch's own writer, still at work,
// or will finish the batch itself when it took the lock.
func (m *DirMedium) recoverAtOpen() error {
	if _, err := os.Lstat(filepath.Join(m.root, batchCommit)); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, unlock, err := m.Lock(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer unlock()
	return m.recoverBatch()
}

// writeList writes a batch's object names, one per line. The pending list
// is not fsynced: after a power cut before the commit, its temp files may
// survive without it; nothing reads them, and a later batch of the same
// object truncates its temp file.
func (m *DirMedium) writeList(name string, hashes []string) error {
	var b strings.Builder
	b.Grow(len(hashes) * 65)
	for _, h := range hashes {
		b.WriteString(h)
		b.WriteByte('\n')
	}
	return os.WriteFile(filepath.Join(m.root, name), []byte(b.String()), 0o600)
}

// readList reads a batch list, trusting only lines of 64 hex digits: a
// damaged list must not make recovery touch anything else.
func (m *DirMedium) readList(name string) ([]string, error) {
	f, err := os.Open(filepath.Join(m.root, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hashes []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if h := sc.Text(); isHex(h, 64) {
			hashes = append(hashes, h)
		}
	}
	return hashes, sc.Err()
}

// syncFS flushes the filesystem holding the store: every temp file of the
// batch, or every rename, in one call.
func (m *DirMedium) syncFS() error {
	if m.noSync {
		return nil
	}
	return unix.Syncfs(m.lockFd)
}

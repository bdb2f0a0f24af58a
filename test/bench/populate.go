package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/store" // also registers the "file" backend
)

// maxVersions is `swarmkeep init`'s default.
const maxVersions = 10

// completeMark marks a store whose population finished; a store without it
// (an interrupted run with -keep) is rebuilt.
const completeMark = "bench-complete"

// stores creates, fills and caches the benchmark stores under dir: one per
// size, all sealed with one key file. Populated stores are reused for the
// rest of the run, and across runs with -keep.
type stores struct {
	dir     string
	key     string
	shm     string // scratch tmpfs for filling, "" to fill in place
	workers int
	log     func(format string, args ...any)

	mu     sync.Mutex
	made   map[int]string
	took   time.Duration // total time spent filling
	reused int           // stores kept from an earlier run
}

func newStores(dir string, workers int, shm bool, log func(string, ...any)) (*stores, error) {
	s := &stores{dir: dir, key: filepath.Join(dir, "key"), workers: workers, log: log, made: map[int]string{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.key); errors.Is(err, fs.ErrNotExist) {
		if err := store.GenerateKeyFile(s.key); err != nil {
			return nil, fmt.Errorf("key file: %w", err)
		}
	}
	if shm {
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			s.shm = "/dev/shm"
		}
	}
	return s, nil
}

// get returns the directory of a store holding names 0..n-1, filling it on
// first use.
func (s *stores) get(ctx context.Context, n int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.made[n]; ok {
		return d, nil
	}
	dir := filepath.Join(s.dir, fmt.Sprintf("store-%d", n))
	mark := filepath.Join(s.dir, fmt.Sprintf("store-%d.%s", n, completeMark))
	if b, err := os.ReadFile(mark); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(n) {
		s.log("reusing the %d-record store in %s", n, dir)
		s.reused++
		s.made[n] = dir
		return dir, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	start := time.Now()
	if err := s.fill(ctx, dir, n); err != nil {
		return "", fmt.Errorf("populate %d records: %w", n, err)
	}
	took := time.Since(start)
	s.took += took
	s.log("populated %d records in %s (%.0f puts/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	if err := os.WriteFile(mark, []byte(strconv.Itoa(n)+"\n"), 0o600); err != nil {
		return "", err
	}
	s.made[n] = dir
	return dir, nil
}

// fill writes the store. Every Put fsyncs and writers serialise on the
// store's lock, so filling 100,000 records on a disk is slow; with a tmpfs
// at hand the store is filled there (fsync is free) and then copied to
// dir, which is what a restore from backup does, so the store read by the
// benchmark lives on the same disk as in production.
func (s *stores) fill(ctx context.Context, dir string, n int) error {
	where := dir
	if s.shm != "" && roomFor(s.shm, n) {
		tmp, err := os.MkdirTemp(s.shm, "swarmkeep-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		where = filepath.Join(tmp, "store")
	}
	if err := s.put(ctx, where, n); err != nil {
		return err
	}
	if where == dir {
		return nil
	}
	out, err := exec.CommandContext(ctx, "cp", "-a", where, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy %s to %s: %v: %s", where, dir, err, out)
	}
	return nil
}

// put initialises a store in dir and puts names 0..n-1 from parallel
// workers, the way several operators or a provisioning script would.
func (s *stores) put(ctx context.Context, dir string, n int) error {
	m, err := store.OpenDir(dir)
	if err != nil {
		return err
	}
	defer m.Close()
	st, err := store.Init(ctx, m, store.KeyFile(s.key), store.InitOptions{MaxVersions: maxVersions})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, s.workers)
	stop := make(chan struct{})
	go s.progress(n, &done, stop)
	for w := range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			val := make([]byte, 0, valueBytes)
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				val = appendValue(val[:0], i)
				if _, err := st.Put(ctx, storedName(i), val); err != nil {
					errs[w] = fmt.Errorf("put %s: %w", storedName(i), err)
					cancel()
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	return errors.Join(errors.Join(errs...), st.Close())
}

// roomFor says whether dir's file system has room for n records, at a page
// each on tmpfs plus their shard directories, with a margin: a container's
// /dev/shm is often 64 MiB.
func roomFor(dir string, n int) bool {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return false
	}
	return fs.Bavail*uint64(fs.Bsize) > uint64(n)*8192+64<<20
}

// progress logs every 10 s while a long fill runs.
func (s *stores) progress(n int, done *atomic.Int64, stop chan struct{}) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.log("  ... %d of %d records", done.Load(), n)
		}
	}
}

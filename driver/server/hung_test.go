package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/store"
	"golang.org/x/sys/unix"
)

// osThreads is the process's OS thread count (/proc/self/status).
func osThreads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// objectFiles lists a file store's object files.
func objectFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	paths, err := filepath.Glob(filepath.Join(dir, "objects", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		out[p] = true
	}
	return out
}

// hungStore makes a file store with names records whose files are FIFOs:
// open() on them blocks in the kernel like a read from a hung disk or NFS
// mount. The returned function unblocks every reader.
func hungStore(t *testing.T, names []string) (dir, key string, release func()) {
	t.Helper()
	tmp := t.TempDir()
	dir, key = filepath.Join(tmp, "store"), filepath.Join(tmp, "key")
	if err := store.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	m, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Init(context.Background(), m, store.KeyFile(key), store.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keyring := objectFiles(t, dir)
	for _, n := range names {
		if _, err := s.Put(context.Background(), n, []byte("value-"+n)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	var fifos []string
	for p := range objectFiles(t, dir) {
		if keyring[p] {
			continue
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		fifos = append(fifos, p)
	}
	if len(fifos) != len(names) {
		t.Fatalf("%d record files for %d names", len(fifos), len(names))
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			// Replacing each FIFO by nothing would leave the blocked
			// readers; a writer that opens and closes it lets them go.
			for _, p := range fifos {
				fd, err := unix.Open(p, unix.O_WRONLY|unix.O_NONBLOCK, 0)
				if err == nil {
					unix.Close(fd)
				}
			}
		})
	}
	return dir, key, release
}

// A store whose reads block in open() must cost a bounded number of OS
// threads however many requests come, and past the bound answer
// "unavailable" at once instead of at the deadline. Before the bound each
// request left one thread blocked in open() behind, until the runtime
// died of thread exhaustion.
func TestHungStoreThreadsBounded(t *testing.T) {
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("rec%03d", i)
	}
	dir, key, release := hungStore(t, names)
	cfg, err := Load(envOf(map[string]string{
		EnvStoreDir: dir, EnvKeyFile: key, EnvRequestTimeout: "100ms", EnvAudit: "off",
		EnvPolicyFile: filepath.Join(t.TempDir(), "none.yaml"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		fast  int // unavailable answers well before the deadline
		total int
	)
	s, err := New(cfg, Options{Observer: func(ev driver.Event) {
		mu.Lock()
		defer mu.Unlock()
		total++
		if ev.Class == driver.ClassUnavailable && ev.Latency < cfg.Timeout/2 {
			fast++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		release()
		if !s.Driver().Drain(10 * time.Second) {
			t.Error("requests still in flight")
		}
		s.Close()
	})

	const (
		requests    = 600
		concurrency = 16
	)
	before := osThreads(t)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= requests; i = next.Add(1) {
				resp := s.Driver().Get(context.Background(), driver.Request{SecretName: names[int(i)%len(names)], ServiceName: "svc"})
				if resp.Err == "" {
					t.Errorf("a hung read was answered with a value")
				}
			}
		}()
	}
	wg.Wait()
	after := osThreads(t)
	stuck := s.Driver().Stuck("local")
	t.Logf("threads %d -> %d after %d requests; %d calls stuck; %d of %d answered unavailable at once",
		before, after, requests, stuck, fast, total)
	// The stuck reads and the live requests may each hold a thread; the
	// runtime adds a few of its own.
	if limit := before + driver.DefaultMaxStuck + concurrency + 32; after > limit {
		t.Errorf("threads grew from %d to %d over %d requests (limit %d): blocked reads are not bounded", before, after, requests, limit)
	}
	// The bound is checked when a call starts and counted when its
	// request gives up, so live requests can each overshoot it by one.
	if stuck > driver.DefaultMaxStuck+concurrency {
		t.Errorf("%d calls stuck, over the bound %d", stuck, driver.DefaultMaxStuck)
	}
	if min := requests - 2*(driver.DefaultMaxStuck+concurrency); fast < min {
		t.Errorf("only %d of %d answers were a quick unavailable, want at least %d", fast, total, min)
	}
}

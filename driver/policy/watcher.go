package policy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// PollInterval is how often a Watcher looks at its file. Polling, not
// inotify: the file usually sits on a bind mount into the plugin, where
// editors and config tools replace it by rename, which inotify on the old
// inode would miss.
const PollInterval = 2 * time.Second

// ErrFileRemoved is reported when the policy file disappears and the
// built-in default takes over again.
var ErrFileRemoved = errors.New("policy file removed; the built-in default policy applies")

// Watcher keeps the policy from a file current. Decide reads the active
// policy through an atomic pointer, so requests never wait for a reload.
type Watcher struct {
	path  string
	hooks Hooks
	cur   atomic.Pointer[Policy]

	stop chan struct{}
	done chan struct{}
	once sync.Once

	// Touched only by the polling goroutine after NewWatcher returns.
	last     fs.FileInfo // nil: no file
	lastHash string
	running  bool // false during the first load, whose error NewWatcher returns
}

// NewWatcher loads path and starts polling it. A missing file means
// Default(); an existing file that does not load is an error, so a broken
// policy stops the plugin at start rather than serving with another one.
// Later, a change to an invalid file keeps the previous policy and a
// removed file reverts to Default(); both are passed to report, which may
// be nil and must not block.
func NewWatcher(path string, report func(error)) (*Watcher, error) {
	return newWatcher(path, Hooks{Report: report}, PollInterval)
}

// Hooks are what a Watcher tells its owner after the first load. Each may
// be nil, and each is called from the polling goroutine, so it must not
// block.
type Hooks struct {
	// Report gets a change that did not load (the previous policy stays)
	// and a removed file (the default takes over; wraps ErrFileRemoved).
	Report func(error)
	// Reloaded gets the source and hash of each policy that became active
	// after the first load: a changed file that loaded, or the built-in
	// default when the file was removed. The operator sees in the log and
	// in health output which policy decides from then on.
	Reloaded func(source, hash string)
}

// NewWatcherHooks is NewWatcher that also tells h.Reloaded about each
// policy that becomes active.
func NewWatcherHooks(path string, h Hooks) (*Watcher, error) {
	return newWatcher(path, h, PollInterval)
}

func newWatcher(path string, h Hooks, every time.Duration) (*Watcher, error) {
	if h.Report == nil {
		h.Report = func(error) {}
	}
	if h.Reloaded == nil {
		h.Reloaded = func(string, string) {}
	}
	w := &Watcher{path: path, hooks: h, stop: make(chan struct{}), done: make(chan struct{})}
	w.cur.Store(Default())
	if err := w.poll(); err != nil {
		return nil, err
	}
	w.running = true
	go w.loop(every)
	return w, nil
}

// Load reads and compiles one policy file, for callers that do not watch
// (policy check, explain).
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	return Parse(data, path)
}

func (w *Watcher) loop(every time.Duration) {
	defer close(w.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			before := w.cur.Load()
			if err := w.poll(); err != nil {
				w.hooks.Report(err)
			}
			if p := w.cur.Load(); p != before {
				w.hooks.Reloaded(p.Source(), p.Hash())
			}
		}
	}
}

// poll reloads when the file's inode, size or mtime changed. The stat is
// taken before the read: if the file changes in between, the next poll
// sees a new stat and reads again, so no write is missed for long.
func (w *Watcher) poll() error {
	fi, err := os.Stat(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		if w.last == nil {
			return nil
		}
		w.last, w.lastHash = nil, ""
		w.cur.Store(Default())
		return fmt.Errorf("%s: %w", w.path, ErrFileRemoved)
	}
	if err != nil {
		if !w.running {
			return fmt.Errorf("policy file: %w", err)
		}
		return fmt.Errorf("policy file: %w; keeping the active policy", err)
	}
	if w.last != nil && os.SameFile(w.last, fi) && fi.Size() == w.last.Size() && fi.ModTime().Equal(w.last.ModTime()) {
		return nil
	}
	// Record the stat even if the load fails: an invalid file is reported
	// once per change, not every PollInterval.
	w.last = fi
	p, err := Load(w.path)
	if err != nil {
		if !w.running {
			return err
		}
		return fmt.Errorf("%w; keeping the previous policy", err)
	}
	if p.Hash() != w.lastHash {
		w.lastHash = p.Hash()
		w.cur.Store(p)
	}
	return nil
}

// Policy returns the active policy.
func (w *Watcher) Policy() *Policy { return w.cur.Load() }

// Decide is Policy().Decide: one atomic load, no lock.
func (w *Watcher) Decide(id Identity, stored string) Decision {
	return w.cur.Load().Decide(id, stored)
}

// Source and Hash describe the active policy, for health output.
func (w *Watcher) Source() string { return w.cur.Load().Source() }

// Hash is the active policy's Hash.
func (w *Watcher) Hash() string { return w.cur.Load().Hash() }

// Close stops polling. The last policy stays readable.
func (w *Watcher) Close() error {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	return nil
}

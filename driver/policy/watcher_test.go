package policy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// reports collects what a Watcher reports, for the test goroutine.
type reports struct {
	mu       sync.Mutex
	errs     []error
	reloaded []string // source + " " + hash
}

func (r *reports) reload(source, hash string) {
	r.mu.Lock()
	r.reloaded = append(r.reloaded, source+" "+hash)
	r.mu.Unlock()
}

func (r *reports) reloads() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reloaded)
}

func (r *reports) add(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }

func (r *reports) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.errs) }

func (r *reports) last() error { r.mu.Lock(); defer r.mu.Unlock(); return r.errs[len(r.errs)-1] }

// waitFor polls cond for up to 5 s, well above the 10 ms test interval.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// writeFile replaces the file by rename, as config tools do, so the inode
// changes even when size and mtime would not.
func writeFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

const webDeny = "version: 1\nrules:\n- name: no-web\n  match: {stack: web}\n  deny: [web/**]\n"

func TestWatcher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	var rep reports
	w, err := newWatcher(path, Hooks{Report: rep.add, Reloaded: rep.reload}, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	web := Identity{Stack: "web", Service: "web_front"}
	if w.Policy() != Default() || !w.Decide(web, "web/db").Allow || w.Hash() != "builtin" {
		t.Fatal("missing file should mean the built-in default")
	}

	writeFile(t, path, webDeny)
	waitFor(t, "load", func() bool { return !w.Decide(web, "web/db").Allow })
	if d := w.Decide(web, "web/db"); d.Rule != "no-web" || w.Source() != path || !strings.HasPrefix(w.Hash(), "sha256:") {
		t.Fatalf("%+v %s %s", d, w.Source(), w.Hash())
	}
	loaded := w.Hash()
	waitFor(t, "reload told", func() bool { return len(rep.reloads()) == 1 })
	if got := rep.reloads(); !slices.Equal(got, []string{path + " " + loaded}) {
		t.Fatalf("reloads %q, want the new file's", got)
	}

	writeFile(t, path, "version: 1\nrules: [{name: broken}]\n")
	waitFor(t, "report of the invalid change", func() bool { return rep.count() == 1 })
	if err := rep.last(); !strings.Contains(err.Error(), "neither allow nor deny") || !strings.Contains(err.Error(), "keeping the previous policy") {
		t.Fatalf("report %v", err)
	}
	if w.Hash() != loaded || w.Decide(web, "web/db").Allow {
		t.Fatal("an invalid change must keep the previous policy")
	}
	time.Sleep(50 * time.Millisecond)
	if rep.count() != 1 {
		t.Fatalf("an unchanged invalid file was reported %d times", rep.count())
	}

	writeFile(t, path, webDeny+"- name: extra\n  allow: [x]\n")
	waitFor(t, "reload after fix", func() bool { return w.Hash() != loaded })
	fixed := w.Hash()

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revert to default", func() bool { return w.Policy() == Default() })
	waitFor(t, "report of the removal", func() bool { return rep.count() == 2 })
	if !errors.Is(rep.last(), ErrFileRemoved) {
		t.Fatalf("report %v", rep.last())
	}
	// Each policy that became active is told once, in order; the invalid
	// change is not a reload.
	waitFor(t, "reloads told", func() bool { return len(rep.reloads()) >= 3 })
	want := []string{path + " " + loaded, path + " " + fixed, Default().Source() + " builtin"}
	if got := rep.reloads(); !slices.Equal(got, want) {
		t.Fatalf("reloads %q, want %q", got, want)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Close() // idempotent
}

func TestWatcherStart(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewWatcher(bad, nil); err == nil || !strings.Contains(err.Error(), "bad.yaml:1: version") {
		t.Fatalf("invalid file at start: %v", err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(webDeny), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Source() != good || w.Decide(Identity{Stack: "web"}, "web/x").Allow {
		t.Fatal("file not loaded at start")
	}
}

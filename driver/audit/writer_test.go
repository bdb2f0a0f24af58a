package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
)

func event(secret string) driver.Event {
	return driver.Event{
		Request: &driver.Request{SecretName: secret, ServiceName: "app_web", TaskName: "app_web.1.t", NodeID: "node1"},
		Spec:    driver.Spec{Name: secret}, Backend: "local", Version: 1, Size: 10, Class: driver.ClassOK,
		Latency: 50 * time.Microsecond,
	}
}

// secrets reads the file's records and returns their secret names, in order.
func secrets(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	st, err := Scan(f, Filter{}, func(r Record) error { out = append(out, r.Secret); return nil })
	if err != nil || st.Skipped != 0 {
		t.Fatalf("scan %s: %+v %v", file, st, err)
	}
	return out
}

func openTest(t *testing.T, o Options) (*Writer, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "a", "b", "audit.log")
	w, err := Open(file, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, file
}

func TestWriterAppendsWithPrivateModes(t *testing.T) {
	var errOut bytes.Buffer
	w, file := openTest(t, Options{Stderr: &errOut})
	w.Observe(event("one"))
	w.Observe(event("two"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{file: 0o600, filepath.Dir(file): 0o700 | os.ModeDir, filepath.Dir(filepath.Dir(file)): 0o700 | os.ModeDir} {
		if st, err := os.Stat(p); err != nil || st.Mode() != want {
			t.Fatalf("%s: mode %v, want %v (%v)", p, st.Mode(), want, err)
		}
	}
	// Opening again appends rather than truncating.
	w2, err := Open(file, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w2.Observe(event("three"))
	w2.Close()
	if got := strings.Join(secrets(t, file), ","); got != "one,two,three" {
		t.Fatalf("records %s", got)
	}
	if n := strings.Count(errOut.String(), "\n"); n != 2 || !strings.HasPrefix(errOut.String(), `{"v":1,`) {
		t.Fatalf("stderr copy %q", errOut.String())
	}
	if w.Errors() != 0 || w.LastError() != nil {
		t.Fatalf("errors %d %v", w.Errors(), w.LastError())
	}
}

func TestWriterFollowsRename(t *testing.T) {
	w, file := openTest(t, Options{CheckEvery: time.Nanosecond})
	w.Observe(event("old1"))
	w.Observe(event("old2"))
	if err := os.Rename(file, file+".1"); err != nil {
		t.Fatal(err)
	}
	w.Observe(event("new1"))
	w.Observe(event("new2"))
	if got := strings.Join(secrets(t, file+".1"), ","); got != "old1,old2" {
		t.Fatalf("rotated file %s", got)
	}
	if got := strings.Join(secrets(t, file), ","); got != "new1,new2" {
		t.Fatalf("new file %s", got)
	}
	if st, _ := os.Stat(file); st.Mode() != 0o600 {
		t.Fatalf("new file mode %v", st.Mode())
	}

	// Deleted, folder and all: the next record recreates both.
	if err := os.RemoveAll(filepath.Dir(file)); err != nil {
		t.Fatal(err)
	}
	w.Observe(event("after-delete"))
	if got := strings.Join(secrets(t, file), ","); got != "after-delete" {
		t.Fatalf("recreated file %s", got)
	}
	if w.Errors() != 0 {
		t.Fatalf("errors %d: %v", w.Errors(), w.LastError())
	}
}

func TestWriterChecksAtMostEvery(t *testing.T) {
	w, file := openTest(t, Options{CheckEvery: time.Hour})
	w.Observe(event("before"))
	os.Rename(file, file+".1")
	w.Observe(event("late"))
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reopened before CheckEvery: %v", err)
	}
	// SIGHUP path: Reopen switches at once.
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.Observe(event("after"))
	if got := strings.Join(secrets(t, file+".1"), ","); got != "before,late" {
		t.Fatalf("rotated file %s", got)
	}
	if got := strings.Join(secrets(t, file), ","); got != "after" {
		t.Fatalf("new file %s", got)
	}
}

func TestWriterCopytruncate(t *testing.T) {
	w, file := openTest(t, Options{CheckEvery: time.Nanosecond})
	w.Observe(event("old"))
	if err := os.Truncate(file, 0); err != nil {
		t.Fatal(err)
	}
	w.Observe(event("new"))
	// O_APPEND writes at the new end: no hole of zero bytes before it.
	if got := strings.Join(secrets(t, file), ","); got != "new" {
		t.Fatalf("after truncate %s", got)
	}
}

func TestWriterConcurrent(t *testing.T) {
	w, file := openTest(t, Options{CheckEvery: time.Nanosecond})
	const goroutines, each = 16, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				w.Observe(event(fmt.Sprintf("g%d-%d-%s", g, i, strings.Repeat("x", i%300))))
			}
		}()
	}
	wg.Wait()
	w.Close()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != goroutines*each {
		t.Fatalf("%d lines, want %d", len(lines), goroutines*each)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		var r Record
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.V != 1 {
			t.Fatalf("line %q: %v", l, err)
		}
		seen[r.Secret] = true
	}
	if len(seen) != goroutines*each {
		t.Fatalf("%d distinct records", len(seen))
	}
}

// TestWriterObserveReturnsAfterItsRecordIsWritten: with records of many
// answers sharing writes, each Observe still returns only once its own
// record is in the file, which is what lets the answer leave.
func TestWriterObserveReturnsAfterItsRecordIsWritten(t *testing.T) {
	w, file := openTest(t, Options{})
	const goroutines, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("g%d-%d", g, i)
				w.Observe(event(name))
				b, err := os.ReadFile(file)
				if err != nil || !bytes.Contains(b, []byte(`"secret":"`+name+`"`)) {
					errs <- fmt.Errorf("Observe(%s) returned before its record was in the file (%v)", name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := len(secrets(t, file)); got != goroutines*each || w.Errors() != 0 {
		t.Fatalf("%d records, %d errors", got, w.Errors())
	}
}

func TestWriterCountsFailuresWithoutBlocking(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	w, err := Open("/dev/full", Options{})
	if err != nil {
		t.Skipf("cannot open /dev/full: %v", err)
	}
	w.Observe(event("a"))
	w.Observe(event("b"))
	if w.Errors() != 2 || w.LastError() == nil || !strings.Contains(w.LastError().Error(), "/dev/full") {
		t.Fatalf("errors %d, last %v", w.Errors(), w.LastError())
	}
	w.Close()
	w.Observe(event("c"))
	if w.Errors() != 3 || !errors.Is(w.LastError(), ErrClosed) {
		t.Fatalf("after close: %d %v", w.Errors(), w.LastError())
	}
	if err := w.Reopen(); !errors.Is(err, ErrClosed) {
		t.Fatalf("reopen after close: %v", err)
	}
}

func TestWriterEndsATornLine(t *testing.T) {
	w, file := openTest(t, Options{})
	w.Observe(event("before"))
	// As if a write had failed half way (disk full).
	w.mu.Lock()
	w.f.Write([]byte(`{"v":1,"time":"2025-01-0`))
	w.torn = true
	w.mu.Unlock()
	w.Observe(event("after"))
	f, _ := os.Open(file)
	defer f.Close()
	var got []string
	st, err := Scan(f, Filter{}, func(r Record) error { got = append(got, r.Secret); return nil })
	if err != nil || st.Skipped != 1 || strings.Join(got, ",") != "before,after" {
		t.Fatalf("%+v %v %v", st, got, err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open("", Options{}); err == nil {
		t.Fatal("empty path opened")
	}
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o600)
	if _, err := Open(filepath.Join(blocker, "audit.log"), Options{}); err == nil || !strings.Contains(err.Error(), "audit folder") {
		t.Fatalf("open under a file: %v", err)
	}
}

// BenchmarkObserve is the cost the trail adds to each answered request.
func BenchmarkObserve(b *testing.B) {
	w, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ev := event("app_db_password")
	ev.Request.TaskID, ev.Request.ServiceID, ev.Request.TaskImage = "x1ovn4mhwp8dcl0yn8qzmm2mq", "k2b3v8ujqyb1q3g1d9p2k1z0a", "nginx:1.27@sha256:abc"
	b.ReportAllocs()
	for b.Loop() {
		w.Observe(ev)
	}
	if w.Errors() != 0 {
		b.Fatal(w.LastError())
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	w, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ev := event("app_db_password")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Observe(ev)
		}
	})
}

// TestWriterAppend: a record made elsewhere (an operator action) goes
// through the same writer, gets the format version, and reads back whole.
func TestWriterAppend(t *testing.T) {
	w, file := openTest(t, Options{})
	w.Observe(event("served"))
	uid := 0
	if err := w.Append(Record{V: 99, Stored: "db", Version: 4, Decision: DecisionOperator, Class: "ok",
		Action: ActionPut, User: "alice", UID: &uid}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []Record
	if _, err := Scan(f, Filter{Decision: string(DecisionOperator)}, func(r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].V != FormatVersion || got[0].Time.IsZero() || got[0].Action != ActionPut ||
		got[0].User != "alice" || got[0].UID == nil || *got[0].UID != 0 || got[0].Stored != "db" || got[0].Version != 4 {
		t.Fatalf("operator records: %+v", got)
	}
	w.Close()
	if err := w.Append(Record{Decision: DecisionOperator}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

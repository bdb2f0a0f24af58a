package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/audit"
)

// syncBuffer is a bytes.Buffer the command and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func appendRecord(t *testing.T, file, secret string, partial bool) {
	t.Helper()
	j, err := json.Marshal(audit.FromEvent(auditEvent(secret, "app_web", driver.ClassOK), time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if partial {
		f.Write(j[:10]) // the first half of a write; the rest comes later
		return
	}
	f.Write(append(j, '\n'))
}

// TestAuditFollow: --follow prints the records there are, then each new
// one as it is written, waits for a line's end, and follows the path
// through a rename rotation (reading the old file to its end) and a
// copytruncate. The test drives the poll clock: a tick is received only
// after the previous poll's output is written.
func TestAuditFollow(t *testing.T) {
	file := sampleTrail(t)
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	defer func(f func() (<-chan time.Time, func()), c func() (context.Context, context.CancelFunc)) {
		auditFollowTicks, auditFollowContext = f, c
	}(auditFollowTicks, auditFollowContext)
	auditFollowTicks = func() (<-chan time.Time, func()) { return ticks, func() {} }
	auditFollowContext = func() (context.Context, context.CancelFunc) { return ctx, cancel }

	var out, errOut syncBuffer
	env := &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: envOf(nil)}
	done := make(chan int)
	go func() { done <- run(env, []string{"audit", "--file", file, "--follow", "--format", "{{.Secret}}"}) }()
	// poll waits until the loop has finished the poll before this one.
	poll := func() {
		t.Helper()
		for range 2 {
			select {
			case ticks <- time.Time{}:
			case code := <-done:
				t.Fatalf("follow ended: exit %d: %s", code, errOut.String())
			case <-time.After(time.Minute):
				t.Fatal("follow loop stuck")
			}
		}
	}
	expect := func(want string) {
		t.Helper()
		poll()
		if got := out.String(); got != want {
			t.Fatalf("after a poll:\n got %q\nwant %q (stderr %q)", got, want, errOut.String())
		}
	}
	old := "app_db\napp_key\nops_token\napp_db\n"
	expect(old)
	appendRecord(t, file, "new1", false)
	appendRecord(t, file, "half", true)
	expect(old + "new1\n")

	// Rename rotation: a new file at the path, while the writer has not
	// noticed yet and still finishes its line, and writes one more, in
	// the old file.
	os.Rename(file, file+".1")
	appendRecord(t, file, "rotated1", false)
	expect(old + "new1\nrotated1\n")
	f, _ := os.OpenFile(file+".1", os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("\n") // the half line is damaged: skipped with a note
	f.Close()
	appendRecord(t, file+".1", "late-in-old", false)
	expect(old + "new1\nrotated1\nlate-in-old\n")
	if !strings.Contains(errOut.String(), "skipped 1 damaged line") {
		t.Fatalf("stderr: %q", errOut.String())
	}
	appendRecord(t, file, "rotated2", false)
	expect(old + "new1\nrotated1\nlate-in-old\nrotated2\n")
	before := out.String()

	// copytruncate: the file starts over.
	if err := os.Truncate(file, 0); err != nil {
		t.Fatal(err)
	}
	expect(before)
	appendRecord(t, file, "after-truncate", false)
	expect(before + "after-truncate\n")

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}

// TestAuditFormat: --format templates and json over records; --json is
// --format json; the two contradicting is a usage error.
func TestAuditFormat(t *testing.T) {
	file := sampleTrail(t)
	got := mustRun(t, nil, "", "audit", "--file", file, "--format", "{{.Secret}} {{.Decision}} {{.Version}}", "--decision", "allow")
	if got != "app_db allow 3\napp_db allow 2\n" {
		t.Fatalf("template: %q", got)
	}
	if a, b := mustRun(t, nil, "", "audit", "--file", file, "--json"), mustRun(t, nil, "", "audit", "--file", file, "--format", "json"); a != b || strings.Count(a, "\n") != 4 {
		t.Fatalf("--json and --format json differ:\n%s\n%s", a, b)
	}
	if code, _, errOut := runCLI(t, nil, "", "audit", "--file", file, "--json", "--format", "{{.Secret}}"); code != 2 || !strings.Contains(errOut, "contradict") {
		t.Fatalf("--json with a template: %d %q", code, errOut)
	}
}

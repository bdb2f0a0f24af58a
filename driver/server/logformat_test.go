package server

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
)

// The engine logs a plugin's stdout at info and its stderr at error, and
// quotes each line with %q (see logformat.go). Before, every line went to
// stderr as a logrus text line with its own time, level and quotes, and
// arrived as level=error msg="time=\"...\" level=info msg=\"...\"".
func TestEngineLoggerStreamsAndFormat(t *testing.T) {
	var out, errOut bytes.Buffer
	log := NewEngineLogger(&out, &errOut, logrus.DebugLevel)
	log.WithFields(logrus.Fields{"backend": "local"}).Info("backend ready")
	log.WithFields(logrus.Fields{"secret": "db", "size": 12}).Debug("secret served")
	log.WithFields(logrus.Fields{"secret": "db", "reason": `no rule "x" matches`, "empty": ""}).
		Warn(`swarmkeep: secret "db": not found; fix: store it`)
	log.WithField("file", "/var/lib/swarmkeep/audit/audit.log").Errorf("audit trail incomplete: %v", errors.New("disk\nfull"))

	wantOut := "backend ready backend=local\n" +
		"debug: secret served secret=db size=12\n"
	if out.String() != wantOut {
		t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), wantOut)
	}
	wantErr := "warning: swarmkeep: secret 'db': not found; fix: store it empty='' reason='no rule 'x' matches' secret=db\n" +
		"audit trail incomplete: disk?full file=/var/lib/swarmkeep/audit/audit.log\n"
	if errOut.String() != wantErr {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut.String(), wantErr)
	}
	// What the engine makes of it: no backslash, no second time or level.
	for _, l := range strings.Split(out.String()+errOut.String(), "\n") {
		if strings.ContainsAny(l, `"\`) || strings.Contains(l, "time=") || strings.Contains(l, "level=") {
			t.Errorf("line the engine would escape or that repeats its time or level: %q", l)
		}
	}
	// Above the level nothing is written.
	log.SetLevel(logrus.InfoLevel)
	out.Reset()
	log.Debug("hidden")
	if out.Len() != 0 {
		t.Errorf("debug line at info level: %q", out.String())
	}
}

// A line stays far below the 64 KiB that stops the copy of plugin output
// on engines up to 20.10, and on one line whatever a field holds.
func TestEngineLoggerLineBounded(t *testing.T) {
	var out bytes.Buffer
	log := NewEngineLogger(&out, &out, logrus.InfoLevel)
	log.WithField("image", strings.Repeat("x", 100<<10)).Warn("long\r\nline")
	if n := out.Len(); n > maxLogLine+1 || strings.Count(out.String(), "\n") != 1 || !strings.HasSuffix(out.String(), "...\n") {
		t.Fatalf("%d bytes, %d newlines", n, strings.Count(out.String(), "\n"))
	}
}

// The observer's lines through the real format: a served value's debug
// line and a failure's warning, readable as the engine will show them.
func TestObserverLinesPlain(t *testing.T) {
	var out bytes.Buffer
	log := NewEngineLogger(&out, &out, logrus.DebugLevel)
	obs := logObserver(log)
	ev := freshEvent("local", "db_pw")
	ev.Size = 11
	obs(ev)
	fail := freshEvent("local", "db_pw")
	fail.Class, fail.Line = driver.ClassNotFound, `swarmkeep: secret "db_pw": not found; fix: store it`
	obs(fail)
	got := out.String()
	if !strings.Contains(got, "debug: secret served ") || !strings.Contains(got, " size=11") ||
		!strings.Contains(got, "warning: swarmkeep: secret 'db_pw': not found") {
		t.Fatalf("lines:\n%s", got)
	}
}

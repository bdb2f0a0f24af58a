package server

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/audit"
)

func auditEvent(secret, service string, class driver.Class) driver.Event {
	return driver.Event{
		Request: &driver.Request{SecretName: secret, ServiceName: service, TaskID: "x1ovn4mhwp8dcl0yn8qzmm2mq"},
		Spec:    driver.Spec{Name: secret}, Backend: "local", Class: class,
	}
}

func TestStartAudit(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit", "audit.log")
	var logs, errOut bytes.Buffer
	log := NewLogger(&logs, logrus.InfoLevel)
	var logged int
	obs, stop, err := startAudit(file, true, &errOut, log, func(driver.Event) { logged++ })
	if err != nil {
		t.Fatal(err)
	}
	obs(auditEvent("app_db", "app_web", driver.ClassOK))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	if logged != 1 || strings.Count(string(b), "\n") != 1 || errOut.String() != string(b) {
		t.Fatalf("logged %d, file %q, stderr %q", logged, b, errOut.String())
	}
	if _, _, err := startAudit(filepath.Join(file, "under-a-file"), false, nil, log, nil); err == nil {
		t.Fatal("opened under a file")
	}
}

func TestWatchAuditReopensAndReports(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.log")
	w, err := audit.Open(file, audit.Options{CheckEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var logs bytes.Buffer
	hup, tick, done, ended := make(chan os.Signal), make(chan time.Time), make(chan struct{}), make(chan struct{})
	go func() { watchAudit(w, NewLogger(&logs, logrus.InfoLevel), hup, tick, done); close(ended) }()
	os.Rename(file, file+".1")
	hup <- syscall.SIGHUP
	tick <- time.Now() // taken only once the reopen is done
	w.Observe(auditEvent("after", "s", driver.ClassOK))
	close(done)
	<-ended
	if b, _ := os.ReadFile(file); !strings.Contains(string(b), `"secret":"after"`) {
		t.Fatalf("not reopened: %q", b)
	}
	if !strings.Contains(logs.String(), "audit trail reopened") || strings.Contains(logs.String(), "incomplete") {
		t.Fatalf("logs:\n%s", logs.String())
	}

	// Failures are logged once per growth, with how many.
	full, err := audit.Open("/dev/full", audit.Options{})
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	logs.Reset()
	tick, done, ended = make(chan time.Time), make(chan struct{}), make(chan struct{})
	go func() { watchAudit(full, NewLogger(&logs, logrus.InfoLevel), nil, tick, done); close(ended) }()
	full.Observe(auditEvent("a", "s", driver.ClassOK))
	full.Observe(auditEvent("b", "s", driver.ClassOK))
	tick <- time.Now()
	tick <- time.Now()
	close(done)
	<-ended
	if strings.Count(logs.String(), "audit trail incomplete") != 1 || !strings.Contains(logs.String(), "failures=2") {
		t.Fatalf("logs:\n%s", logs.String())
	}
}

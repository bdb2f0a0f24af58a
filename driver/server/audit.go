package server

import (
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/audit"
)

// auditHealthEvery is how often serve logs new audit write failures: often
// enough to notice a full disk, rarely enough not to flood the log with it.
const auditHealthEvery = 10 * time.Second

// startAudit opens the trail for serve and returns next composed with the
// writer's Observe, and stop, which ends the SIGHUP and health watch and
// closes the file. Call stop after the driver has drained.
func startAudit(file string, toStderr bool, stderr io.Writer, log logrus.FieldLogger, next driver.Observer) (driver.Observer, func() error, error) {
	o := audit.Options{}
	if toStderr {
		o.Stderr = stderr
	}
	w, err := audit.Open(file, o)
	if err != nil {
		return nil, nil, err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	tick := time.NewTicker(auditHealthEvery)
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		watchAudit(w, log, hup, tick.C, done)
	}()
	log.WithField("file", file).Info("audit trail open")
	stop := func() error {
		signal.Stop(hup)
		tick.Stop()
		close(done)
		<-watched
		return w.Close()
	}
	// The trail first: it is the record an operator is asked for.
	return func(ev driver.Event) { w.Observe(ev); next(ev) }, stop, nil
}

// watchAudit reopens the trail on SIGHUP and logs write failures as their
// count grows, until done is closed. The writer never logs itself: it runs
// on the request path, and one line per failed record would flood the log.
func watchAudit(w *audit.Writer, log logrus.FieldLogger, hup <-chan os.Signal, tick <-chan time.Time, done <-chan struct{}) {
	var reported uint64
	report := func() {
		if n := w.Errors(); n > reported {
			log.WithFields(logrus.Fields{"file": w.Path(), "failures": n - reported}).Errorf("audit trail incomplete: %v", w.LastError())
			reported = n
		}
	}
	for {
		select {
		case <-hup:
			if err := w.Reopen(); err != nil {
				log.WithField("file", w.Path()).Errorf("audit trail not reopened, still writing the old file: %v", err)
			} else {
				log.WithField("file", w.Path()).Info("audit trail reopened")
			}
		case <-tick:
			report()
		case <-done:
			report()
			return
		}
	}
}

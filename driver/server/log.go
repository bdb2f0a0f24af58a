package server

import (
	"io"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
)

// NewLogger is a plugin log that writes every line to w, in the format
// NewEngineLogger writes (tests and benchmarks read one stream).
func NewLogger(w io.Writer, lvl logrus.Level) *logrus.Logger {
	return NewEngineLogger(w, w, lvl)
}

// logObserver logs every answer with the task's context. Failures go out at
// warning level because Swarm logs driver errors only at debug and shows the
// user "secret not found": this line is where the real cause is read. The
// value is never logged; its size is. Last-known-good answers are
// summarised per backend (see staleLog): an outage serves them by the
// thousand, and the metrics count each one.
func logObserver(log logrus.FieldLogger) driver.Observer {
	return newLogObserver(log, time.Now, staleLogInterval)
}

// levelEnabler is what *logrus.Logger and *logrus.Entry tell of their level.
type levelEnabler interface {
	IsLevelEnabled(logrus.Level) bool
}

func newLogObserver(log logrus.FieldLogger, now func() time.Time, interval time.Duration) driver.Observer {
	stale := newStaleLog(log, now, interval)
	debugOn := func() bool { return true }
	if l, ok := log.(levelEnabler); ok {
		debugOn = func() bool { return l.IsLevelEnabled(logrus.DebugLevel) }
	}
	return func(ev driver.Event) {
		if ev.Class == driver.ClassOK && !ev.Stale {
			if !ev.Cached {
				stale.answered(ev.Backend)
			}
			// A value served afresh is a debug line: above debug, the
			// request path builds nothing for the log at all.
			if !debugOn() {
				return
			}
		}
		f := logrus.Fields{"outcome": string(ev.Class), "latency_ms": float64(ev.Latency.Microseconds()) / 1000}
		if r := ev.Request; r != nil {
			for k, v := range map[string]string{
				"secret": r.SecretName, "service": r.ServiceName, "service_id": r.ServiceID,
				"task": r.TaskName, "task_id": r.TaskID, "node": r.NodeID, "image": r.TaskImage,
			} {
				if v != "" {
					f[k] = v
				}
			}
		}
		if ev.Spec.Name != "" {
			f["stored"] = ev.Spec.Name
		}
		if ev.Backend != "" {
			f["backend"] = ev.Backend
		}
		if ev.Decision.Reason != "" && !ev.Decision.Allow {
			// Why the policy said no is for the operator's log, not for
			// the engine's error line.
			f["rule"], f["reason"] = ev.Decision.Rule, ev.Decision.Reason
		}
		if ev.Class != driver.ClassOK {
			log.WithFields(f).Warn(ev.Line)
			return
		}
		f["version"] = ev.Version
		f["size"] = ev.Size
		f["do_not_reuse"] = ev.DoNotReuse
		if ev.Stale {
			// Worth a warning: the backend is down and tasks get an old copy.
			f["age"] = ev.Age.Round(time.Second).String()
			stale.served(ev, f)
			return
		}
		log.WithFields(f).Debug("secret served")
	}
}

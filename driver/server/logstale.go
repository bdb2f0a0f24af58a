package server

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
)

// staleLogInterval is how often an outage's last-known-good answers are
// summarised in the log.
const staleLogInterval = time.Minute

// maxNamesLogged bounds the secret names one summary line lists.
const maxNamesLogged = 10

// staleLog summarises last-known-good answers per backend. During an
// outage every task start is served from a copy; a warning for each one
// buried the log (12,105 lines in a few minutes). The first answer of an
// outage is logged in full, then one line per interval counts the rest,
// and the backend's first fresh answer closes the outage with the
// remainder. Each answer keeps a line at debug level, and the metrics
// still count every answer.
type staleLog struct {
	log      logrus.FieldLogger
	now      func() time.Time
	interval time.Duration

	mu      sync.Mutex
	outages map[string]*outage // by backend
	// active is len(outages), read without mu: a fresh answer, the
	// common case, then takes no lock when no backend is in an outage.
	active atomic.Int32
}

// outage is one backend's last-known-good answers since its last line.
type outage struct {
	start, last, lastLine time.Time
	count                 int // answers since the last line
	names                 map[string]int
	oldest                time.Duration
}

func newStaleLog(log logrus.FieldLogger, now func() time.Time, interval time.Duration) *staleLog {
	return &staleLog{log: log, now: now, interval: interval, outages: map[string]*outage{}}
}

// served records a last-known-good answer; f are the answer's log fields.
// Lines are written outside the lock: a slow log must not serialise
// requests.
func (s *staleLog) served(ev driver.Event, f logrus.Fields) {
	now := s.now()
	s.mu.Lock()
	o := s.outages[ev.Backend]
	var ended *outage
	if o != nil && now.Sub(o.last) > s.interval {
		// Quiet for a whole interval: count what is left of that outage,
		// and start a new one with a full line.
		ended, o = o, nil
	}
	if o == nil {
		s.outages[ev.Backend] = &outage{start: now, last: now, lastLine: now, names: map[string]int{}}
		s.active.Store(int32(len(s.outages)))
		s.mu.Unlock()
		if ended != nil {
			s.summary(ev.Backend, ended, "served last-known-good copies until the backend went quiet")
		}
		s.log.WithFields(f).Warnf("backend unavailable: served the last-known-good copy (further ones are counted every %s)", s.interval)
		return
	}
	o.last = now
	o.count++
	if ev.Request != nil {
		o.names[ev.Request.SecretName]++
	}
	o.oldest = max(o.oldest, ev.Age)
	due := now.Sub(o.lastLine) >= s.interval
	var snap *outage
	if due {
		snap = o.take(now)
	}
	s.mu.Unlock()
	// At debug level every answer keeps its own line, to follow one task.
	s.log.WithFields(f).Debug("backend unavailable: served the last-known-good copy (counted in the next summary)")
	if due {
		s.summary(ev.Backend, snap, "backend still unavailable: served last-known-good copies")
	}
}

// answered notes that a backend answered afresh, which ends its outage.
func (s *staleLog) answered(backend string) {
	if s.active.Load() == 0 {
		return
	}
	s.mu.Lock()
	o, ok := s.outages[backend]
	if !ok {
		s.mu.Unlock()
		return
	}
	delete(s.outages, backend)
	s.active.Store(int32(len(s.outages)))
	snap := o.take(s.now())
	s.mu.Unlock()
	s.log.WithFields(logrus.Fields{"backend": backend, "stale_answers": snap.count,
		"outage": snap.last.Sub(snap.start).Round(time.Second).String()}).
		Info("backend answers again: last-known-good copies no longer served")
}

// take returns the counts since the last line and starts new ones.
func (o *outage) take(now time.Time) *outage {
	snap := *o
	o.count, o.names, o.oldest, o.lastLine = 0, map[string]int{}, 0, now
	return &snap
}

func (s *staleLog) summary(backend string, o *outage, msg string) {
	if o.count == 0 {
		return
	}
	names := make([]string, 0, len(o.names))
	for n := range o.names {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > maxNamesLogged {
		names = append(names[:maxNamesLogged], "...")
	}
	s.log.WithFields(logrus.Fields{
		"backend": backend, "stale_answers": o.count, "secrets": len(o.names),
		"names": strings.Join(names, ","), "oldest_age": o.oldest.Round(time.Second).String(),
		"since": o.lastLine.UTC().Format(time.RFC3339),
	}).Warn(msg)
}

package server

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func staleEvent(backendName, secret string, age time.Duration) driver.Event {
	return driver.Event{Request: &driver.Request{SecretName: secret, ServiceName: "svc"}, Backend: backendName,
		Spec: driver.Spec{Name: secret}, Class: driver.ClassOK, Stale: true, Age: age, Size: 3, Version: 1}
}

func freshEvent(backendName, secret string) driver.Event {
	e := staleEvent(backendName, secret, 0)
	e.Stale = false
	return e
}

// lines returns the log lines at lvl or above, and forgets all lines.
func lines(h *test.Hook, lvl logrus.Level) []*logrus.Entry {
	var out []*logrus.Entry
	for _, e := range h.AllEntries() {
		if e.Level <= lvl {
			out = append(out, e)
		}
	}
	h.Reset()
	return out
}

// An outage's last-known-good answers give one warning, then one summary
// per interval with exact counts, and the backend's first fresh answer
// closes the outage; failures are still logged one by one. Before, each
// stale answer was its own warning.
func TestLogStaleSummarised(t *testing.T) {
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	clock := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	obs := newLogObserver(log, clock.now, time.Minute)

	// 1,000 stale answers for 3 secrets within 50 s: one warning.
	for i := 0; i < 1000; i++ {
		obs(staleEvent("shared", fmt.Sprintf("app_s%d", i%3), time.Duration(i)*time.Second))
		clock.add(50 * time.Millisecond)
	}
	all := hook.AllEntries()
	got := lines(hook, logrus.WarnLevel)
	if len(got) != 1 || got[0].Data["secret"] != "app_s0" || got[0].Data["backend"] != "shared" {
		t.Fatalf("%d warnings for 1,000 stale answers in one interval, want the first one: %v", len(got), got)
	}
	if len(all) != 1000 || all[999].Level != logrus.DebugLevel || all[999].Data["secret"] != "app_s0" {
		t.Fatalf("%d lines at debug level, want each answer's own", len(all))
	}
	// Another backend's outage is its own.
	obs(staleEvent("other", "x", time.Second))
	if got := lines(hook, logrus.WarnLevel); len(got) != 1 || got[0].Data["backend"] != "other" {
		t.Fatalf("other backend: %v", got)
	}
	// A failure is never summarised.
	fail := staleEvent("shared", "app_s1", 0)
	fail.Stale, fail.Class, fail.Err, fail.Line = false, driver.ClassUnavailable, backend.ErrUnavailable, "swarmkeep: secret 'app_s1': down"
	obs(fail)
	if got := lines(hook, logrus.WarnLevel); len(got) != 1 || got[0].Message != fail.Line {
		t.Fatalf("failure: %v", got)
	}
	// Past the interval, the next stale answer brings the summary: the 999
	// after the first, and this one.
	clock.add(15 * time.Second)
	obs(staleEvent("shared", "app_s2", time.Hour))
	got = lines(hook, logrus.WarnLevel)
	if len(got) != 1 {
		t.Fatalf("%d lines at the end of the interval, want one summary: %v", len(got), got)
	}
	if d := got[0].Data; d["backend"] != "shared" || d["stale_answers"] != 1000 || d["secrets"] != 3 ||
		d["names"] != "app_s0,app_s1,app_s2" || d["oldest_age"] != "1h0m0s" {
		t.Fatalf("summary %v", d)
	}
	// Three more, then the backend answers afresh: the outage ends with
	// the remainder counted.
	for i := 0; i < 3; i++ {
		obs(staleEvent("shared", "app_s0", time.Second))
	}
	obs(freshEvent("shared", "app_s0"))
	got = lines(hook, logrus.InfoLevel)
	if len(got) != 1 || got[0].Data["stale_answers"] != 3 || got[0].Level != logrus.InfoLevel {
		t.Fatalf("recovery: %v", got)
	}
	// A new outage starts with a full warning again.
	obs(staleEvent("shared", "app_s1", time.Second))
	if got := lines(hook, logrus.WarnLevel); len(got) != 1 || got[0].Data["secret"] != "app_s1" {
		t.Fatalf("new outage: %v", got)
	}
	// An outage that goes quiet for an interval is summarised when the
	// next one starts, then that one gets its full line.
	obs(staleEvent("shared", "app_s1", time.Second))
	clock.add(2 * time.Minute)
	obs(staleEvent("shared", "app_s2", time.Second))
	got = lines(hook, logrus.WarnLevel)
	if len(got) != 2 || got[0].Data["stale_answers"] != 1 || got[1].Data["secret"] != "app_s2" {
		t.Fatalf("quiet outage: %v", got)
	}
}

// Above debug level a value served afresh costs the log nothing: no fields
// built, no allocation; what is logged at info and above is unchanged.
func TestLogServedQuietAboveDebug(t *testing.T) {
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.InfoLevel)
	clock := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	obs := newLogObserver(log, clock.now, time.Minute)
	fresh := freshEvent("shared", "app_s0")
	cached := fresh
	cached.Cached = true
	if n := testing.AllocsPerRun(100, func() { obs(fresh); obs(cached) }); n != 0 {
		t.Fatalf("%.0f allocations per answer served at info level, want none", n)
	}
	if got := hook.AllEntries(); len(got) != 0 {
		t.Fatalf("lines at info level for answers served: %v", got)
	}
	// An outage still starts and ends with its lines.
	obs(staleEvent("shared", "app_s0", time.Second))
	obs(fresh)
	got := lines(hook, logrus.DebugLevel)
	if len(got) != 2 || got[0].Level != logrus.WarnLevel || got[1].Level != logrus.InfoLevel || got[1].Data["stale_answers"] != 0 {
		t.Fatalf("outage lines at info level: %v", got)
	}
	// Failures too.
	fail := fresh
	fail.Class, fail.Line = driver.ClassNotFound, "swarmkeep: secret 'app_s0': not found"
	obs(fail)
	if got := lines(hook, logrus.DebugLevel); len(got) != 1 || got[0].Message != fail.Line || got[0].Data["secret"] != "app_s0" {
		t.Fatalf("failure at info level: %v", got)
	}
	// At debug level each answer has its line again.
	log.SetLevel(logrus.DebugLevel)
	obs(fresh)
	if got := lines(hook, logrus.DebugLevel); len(got) != 1 || got[0].Message != "secret served" || got[0].Data["secret"] != "app_s0" {
		t.Fatalf("debug level: %v", got)
	}
}

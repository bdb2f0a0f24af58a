package metrics

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

func newTest(t testing.TB) *Metrics {
	t.Helper()
	return New(Options{Version: "1.2.3", ConfigHash: "c0ffee", Backends: []string{"local", "shared"}})
}

func ev(name string, class driver.Class, latency time.Duration) driver.Event {
	e := driver.Event{Request: &driver.Request{SecretName: "app_db", ServiceName: "web"},
		Backend: name, Class: class, Latency: latency}
	if class != driver.ClassOK {
		e.Err = fmt.Errorf("backend %s: %w", name, backend.ErrUnavailable)
		e.Line = "swarmkeep: secret \"app_db\": " + string(class) + "; fix: look"
	}
	return e
}

// histogram returns one series' sample count, sum and cumulative bucket
// counts by upper bound.
func histogram(t *testing.T, m *Metrics, backend, outcome string) (uint64, float64, map[float64]uint64) {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "swarmkeep_request_duration_seconds" {
			continue
		}
		for _, mt := range f.GetMetric() {
			if label(mt, "backend") == backend && label(mt, "outcome") == outcome {
				h := mt.GetHistogram()
				b := map[float64]uint64{}
				for _, bk := range h.GetBucket() {
					b[bk.GetUpperBound()] = bk.GetCumulativeCount()
				}
				return h.GetSampleCount(), h.GetSampleSum(), b
			}
		}
	}
	return 0, 0, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestObserveCounts(t *testing.T) {
	m := newTest(t)
	for range 3 {
		m.Observe(ev("local", driver.ClassOK, time.Millisecond))
	}
	m.Observe(ev("local", driver.ClassNotFound, 30*time.Millisecond))
	m.Observe(ev("shared", driver.ClassUnavailable, 2*time.Second))
	hit := ev("shared", driver.ClassOK, 40*time.Microsecond)
	hit.Cached = true
	m.Observe(hit)
	stale := ev("shared", driver.ClassOK, 3*time.Millisecond)
	stale.Stale, stale.Age = true, time.Minute
	m.Observe(stale)
	m.Observe(ev("", driver.ClassBadLabel, time.Microsecond))
	m.Observe(ev("no-such-backend", driver.ClassNoBackend, time.Microsecond))

	counts := map[[2]string]float64{
		{"local", "ok"}: 3, {"local", "not_found"}: 1, {"shared", "unavailable"}: 1, {"shared", "ok"}: 2,
		{NoBackend, "bad_label"}: 1, {NoBackend, "unknown_backend"}: 1,
	}
	for k, want := range counts {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(k[0], k[1])); got != want {
			t.Errorf("requests_total%v = %v, want %v", k, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.requests); n != len(counts) {
		t.Errorf("%d request series, want %d", n, len(counts))
	}
	n, sum, buckets := histogram(t, m, "local", "ok")
	if n != 3 || math.Abs(sum-0.003) > 1e-9 || buckets[0.0005] != 0 || buckets[0.001] != 3 {
		t.Errorf("local/ok histogram: n=%d sum=%v buckets=%v", n, sum, buckets)
	}
	if n, _, buckets := histogram(t, m, "shared", "unavailable"); n != 1 || buckets[1] != 0 || buckets[2.5] != 1 {
		t.Errorf("shared/unavailable histogram: n=%d buckets=%v", n, buckets)
	}
	// Only the backend's faults count as backend errors, not a missing value.
	if got := testutil.ToFloat64(m.errs.WithLabelValues("shared", "unavailable")); got != 1 {
		t.Errorf("backend_errors_total shared/unavailable = %v", got)
	}
	if n := testutil.CollectAndCount(m.errs); n != 1 {
		t.Errorf("%d backend error series, want 1", n)
	}
	if hits, st := m.rows[1].hits, m.rows[1].stale; testutil.ToFloat64(hits) != 1 || testutil.ToFloat64(st) != 1 {
		t.Errorf("shared hits %v stale %v", testutil.ToFloat64(hits), testutil.ToFloat64(st))
	}
	h := m.Health()
	want := RequestTotals{Total: 9, Cached: 1, Stale: 1, Outcomes: map[string]uint64{
		"ok": 5, "not_found": 1, "unavailable": 1, "bad_label": 1, "unknown_backend": 1}}
	if fmt.Sprint(h.Requests) != fmt.Sprint(want) {
		t.Errorf("health requests %+v, want %+v", h.Requests, want)
	}
}

func TestCardinalityBounded(t *testing.T) {
	m := newTest(t)
	for i := range 2000 {
		e := ev(fmt.Sprintf("backend-%d", i), driver.Class(fmt.Sprintf("class-%d", i)), time.Millisecond)
		e.Request.SecretName = fmt.Sprintf("secret-%d", i)
		m.Observe(e)
		for _, c := range classes {
			m.Observe(ev("local", c, time.Millisecond))
			m.Observe(ev("shared", c, time.Millisecond))
		}
	}
	// Every class on each backend, plus "other" on the NoBackend row.
	if n, want := testutil.CollectAndCount(m.requests), 2*len(classes)+1; n != want {
		t.Errorf("%d request series, want %d", n, want)
	}
	if n, want := testutil.CollectAndCount(m.errs), 2*5; n != want { // the fault classes
		t.Errorf("%d backend error series, want %d", n, want)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues(NoBackend, otherClass)); got != 2000 {
		t.Errorf("unknown backends and classes counted %v times, want 2000", got)
	}
}

func TestReadiness(t *testing.T) {
	m := newTest(t)
	gauge := func(name string) float64 { return testutil.ToFloat64(m.readyG.WithLabelValues(name)) }
	h := m.Health()
	if h.Status != StatusDegraded || h.Backends["local"].Ready || h.Backends["local"].Error != "not opened yet" {
		t.Fatalf("before Warm: %+v", h)
	}
	m.SetBackendReady("local", nil)
	m.SetBackendReady("shared", errors.New("cannot open: dial tcp 10.0.0.1:2379: refused"))
	m.SetBackendReady("ghost", nil) // not configured: ignored
	h = m.Health()
	if h.Status != StatusDegraded || !h.Backends["local"].Ready || h.Backends["shared"].Ready ||
		!strings.Contains(h.Backends["shared"].Error, "refused") || len(h.Backends) != 2 {
		t.Fatalf("after Warm: %+v", h)
	}
	if gauge("local") != 1 || gauge("shared") != 0 {
		t.Fatalf("ready gauges local=%v shared=%v", gauge("local"), gauge("shared"))
	}
	// A cached answer proves nothing about the backend; a fresh one does.
	hit := ev("shared", driver.ClassOK, time.Millisecond)
	hit.Cached = true
	m.Observe(hit)
	if m.Health().Backends["shared"].Ready {
		t.Fatal("a cache hit marked the backend ready")
	}
	m.Observe(ev("shared", driver.ClassOK, time.Millisecond))
	if h := m.Health(); h.Status != StatusOK || h.Backends["shared"].Error != "" || gauge("shared") != 1 {
		t.Fatalf("after a served value: %+v", h)
	}
	// A request that finds the backend unopenable marks it not ready.
	fail := ev("local", driver.ClassUnavailable, time.Millisecond)
	fail.Err = fmt.Errorf("backend local: %w: store is locked", backend.ErrCannotOpen)
	m.Observe(fail)
	if h := m.Health(); h.Status != StatusDegraded || !strings.Contains(h.Backends["local"].Error, "store is locked") {
		t.Fatalf("after a failed open: %+v", h)
	}
}

func TestRecentErrorsRing(t *testing.T) {
	m := newTest(t)
	for i := range ringSize + 5 {
		e := ev("local", driver.ClassNotFound, time.Millisecond)
		e.Request.SecretName = fmt.Sprintf("s%d", i)
		m.Observe(e)
	}
	m.Observe(ev("local", driver.ClassOK, time.Millisecond)) // successes are not kept
	got := m.Health().RecentErrors
	if len(got) != ringSize || got[0].Secret != fmt.Sprintf("s%d", ringSize+4) || got[ringSize-1].Secret != "s5" {
		t.Fatalf("ring: %d entries, first %+v, last %+v", len(got), got[0], got[len(got)-1])
	}
	if e := got[0]; e.Class != "not_found" || e.Service != "web" || e.Backend != "local" || !strings.Contains(e.Line, "fix:") || e.Time.IsZero() {
		t.Fatalf("entry: %+v", e)
	}
	long := ev("local", driver.ClassNotFound, 0)
	long.Request = nil // undecodable request: no secret, still kept
	long.Line = strings.Repeat("x", 5000)
	m.Observe(long)
	if e := m.Health().RecentErrors[0]; len(e.Line) != maxText || e.Secret != "" {
		t.Fatalf("clipped entry: %d bytes, secret %q", len(e.Line), e.Secret)
	}
}

func TestConfigHash(t *testing.T) {
	type cfg struct {
		Timeout  time.Duration
		Backends map[string]map[string]string
		Order    []string
	}
	a, b := map[string]map[string]string{}, map[string]map[string]string{}
	keys := []string{"local", "shared", "vault", "x1", "x2", "x3", "x4", "x5"}
	for i, k := range keys {
		a[k] = map[string]string{"dir": "/d/" + k, "ttl": "30s"}
		r := keys[len(keys)-1-i] // insert in the opposite order
		b[r] = map[string]string{"ttl": "30s", "dir": "/d/" + r}
	}
	h1 := ConfigHash(cfg{5 * time.Second, a, []string{"a", "b"}})
	if len(h1) != 32 || strings.Trim(h1, "0123456789abcdef") != "" {
		t.Fatalf("hash %q: want 32 hex digits", h1)
	}
	for range 20 {
		if h := ConfigHash(cfg{5 * time.Second, b, []string{"a", "b"}}); h != h1 {
			t.Fatalf("same configuration, different hash: %s %s", h, h1)
		}
	}
	// A struct and the map holding the same fields are the same document.
	if h := ConfigHash(map[string]any{"Order": []string{"a", "b"}, "Backends": a, "Timeout": 5 * time.Second}); h != h1 {
		t.Errorf("map form hashed %s, struct form %s", h, h1)
	}
	b["shared"]["ttl"] = "31s"
	for name, other := range map[string]cfg{
		"setting": {5 * time.Second, b, []string{"a", "b"}},
		"timeout": {6 * time.Second, a, []string{"a", "b"}},
		"order":   {5 * time.Second, a, []string{"b", "a"}},
	} {
		if ConfigHash(other) == h1 {
			t.Errorf("changed %s, same hash", name)
		}
	}
	if h := ConfigHash(struct{ F func() }{}); h != "" {
		t.Errorf("unencodable value hashed to %q", h)
	}
}

func BenchmarkObserve(b *testing.B) {
	for _, c := range []struct {
		name  string
		class driver.Class
	}{{"ok", driver.ClassOK}, {"not_found", driver.ClassNotFound}} {
		b.Run(c.name, func(b *testing.B) {
			m := newTest(b)
			m.SetBackendReady("local", nil)
			e := ev("local", c.class, 700*time.Microsecond)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m.Observe(e)
				}
			})
		})
	}
}

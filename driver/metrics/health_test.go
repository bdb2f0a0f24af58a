package metrics

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/cache"
)

// get serves one request through the handler. A recorder's request comes
// from no unix socket, so /health answers as it would over TCP.
func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w.Code, w.Body.String()
}

func TestMetricsText(t *testing.T) {
	m := New(Options{Version: "1.2.3", ConfigHash: "c0ffee", Backends: []string{"local"},
		StoreRecords: func(string) (int, bool) { return 42, true }})
	m.Observe(ev("local", driver.ClassOK, time.Millisecond))
	code, body := get(t, m.Handler(), "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	for _, name := range []string{"swarmkeep_requests_total", "swarmkeep_request_duration_seconds", "swarmkeep_build_info",
		"swarmkeep_config_info", "swarmkeep_backend_ready", "swarmkeep_store_records", "go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	for _, line := range []string{
		`swarmkeep_build_info{go_version="` + goVersion() + `",version="1.2.3"} 1`,
		`swarmkeep_config_info{hash="c0ffee"} 1`,
		`swarmkeep_store_records{backend="local"} 42`,
		`swarmkeep_requests_total{backend="local",outcome="ok"} 1`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("no line %s", line)
		}
	}
	if code, _ := get(t, m.Handler(), "/other"); code != http.StatusNotFound {
		t.Errorf("/other: %d", code)
	}
}

func TestHealthHandler(t *testing.T) {
	m := newTest(t)
	m.SetBackendReady("local", nil)
	m.SetBackendReady("shared", fmt.Errorf("%w: connection refused", backend.ErrCannotOpen))
	m.Observe(ev("local", driver.ClassNotFound, time.Millisecond))
	code, body := get(t, m.Handler(), "/health")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("degraded /health: %d", code)
	}
	var h Health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	if h.Status != StatusDegraded || h.Version != "1.2.3" || h.ConfigHash != "c0ffee" || h.GoVersion == "" ||
		!h.Backends["local"].Ready || !strings.Contains(h.Backends["shared"].Error, "refused") ||
		h.Requests.Total != 1 || h.Requests.Outcomes["not_found"] != 1 || len(h.RecentErrors) != 1 {
		t.Fatalf("health: %s", body)
	}
	if e := h.RecentErrors[0]; e.Class != "not_found" || e.Backend != "local" || e.Secret != "" || e.Line != "" {
		t.Fatalf("recent error over TCP must carry no secret or line: %+v", e)
	}
	for _, key := range []string{`"status"`, `"version"`, `"config_hash"`, `"uptime_s"`, `"backends"`, `"ready"`, `"error"`, `"requests"`, `"recent_errors"`} {
		if !strings.Contains(body, key) {
			t.Errorf("health lacks %s", key)
		}
	}
	m.SetBackendReady("shared", nil)
	if code, body := get(t, m.Handler(), "/health"); code != http.StatusOK || !strings.Contains(body, `"status": "ok"`) {
		t.Fatalf("healthy /health: %d %s", code, body)
	}
}

// TestNoSecretInMetrics puts a marker everywhere a request or an error can
// carry text; no series may repeat it.
func TestNoSecretInMetrics(t *testing.T) {
	const marker = "MARKER7f3a"
	m := newTest(t)
	for _, c := range classes {
		e := driver.Event{
			Request: &driver.Request{SecretName: marker + "-secret", ServiceName: marker + "-svc", TaskName: marker,
				SecretLabels: map[string]string{"swarmkeep.name": marker}},
			Spec:    driver.Spec{Name: marker + "-stored", Backend: marker},
			Backend: marker + "-backend", Class: c, Size: 9, Latency: time.Millisecond,
			Err: fmt.Errorf("%s: %w", marker, backend.ErrNotFound), Line: "swarmkeep: secret " + marker,
		}
		m.Observe(e)
		e.Backend = "local"
		m.Observe(e)
	}
	m.SetBackendReady("shared", fmt.Errorf("open %s", marker)) // errors go to /health, not to labels
	if _, body := get(t, m.Handler(), "/metrics"); strings.Contains(body, marker) {
		t.Fatalf("/metrics repeats the marker:\n%s", grepLines(body, marker))
	}
	if _, body := get(t, m.Handler(), "/health"); strings.Contains(strings.ReplaceAll(body, "open "+marker, ""), marker) {
		t.Fatalf("/health over TCP repeats request text:\n%s", body)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestStoreRecordsCountedAtMostEveryMinute(t *testing.T) {
	var calls atomic.Int32
	counts := map[string]int{"local": 7}
	var mu sync.Mutex
	m := New(Options{Backends: []string{"local", "vault"}, StoreRecords: func(b string) (int, bool) {
		calls.Add(1)
		mu.Lock()
		defer mu.Unlock()
		n, ok := counts[b] // vault has no records to count
		return n, ok
	}})
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	m.records.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	records := func() string {
		out, err := testutil.CollectAndFormat(m.records, expfmt.TypeTextPlain, "swarmkeep_store_records")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if out := records(); !strings.Contains(out, `swarmkeep_store_records{backend="local"} 7`) || strings.Contains(out, "vault") {
		t.Fatalf("first scrape: %s", out)
	}
	records()
	if n := calls.Load(); n != 2 {
		t.Fatalf("two scrapes in a minute counted %d times, want once per backend (2)", n)
	}
	mu.Lock()
	counts["local"] = 8
	mu.Unlock()
	clock.Lock()
	now = now.Add(recordsEvery)
	clock.Unlock()
	records() // starts a count in the background, answers the old one
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(records(), `} 8`) {
		if time.Now().After(deadline) {
			t.Fatal("no new count after a minute")
		}
		time.Sleep(time.Millisecond)
	}
	if n := calls.Load(); n != 4 {
		t.Fatalf("counted %d times, want 4", n)
	}
}

func TestStoreRecordsSlowCountDoesNotHoldScrapes(t *testing.T) {
	release := make(chan struct{})
	m := New(Options{Backends: []string{"local"}, StoreRecords: func(string) (int, bool) { <-release; return 1, true }})
	m.records.wait = 20 * time.Millisecond
	start := time.Now()
	code, body := get(t, m.Handler(), "/metrics")
	if took := time.Since(start); code != http.StatusOK || took > 2*time.Second || strings.Contains(body, "swarmkeep_store_records{") {
		t.Fatalf("scrape during a slow count: %d after %s", code, took)
	}
	close(release)
}

func TestCacheStats(t *testing.T) {
	m := New(Options{Backends: []string{"local", "shared"}, CacheStats: func(b string) (cache.Stats, bool) {
		if b != "shared" {
			return cache.Stats{}, false
		}
		return cache.Stats{Misses: 5, BackendCalls: 4, BackendErrors: 1, Evictions: 2, LKGWrites: 3}, true
	}})
	_, body := get(t, m.Handler(), "/metrics")
	for _, line := range []string{
		`swarmkeep_cache_misses_total{backend="shared"} 5`,
		`swarmkeep_cache_backend_calls_total{backend="shared"} 4`,
		`swarmkeep_cache_backend_call_errors_total{backend="shared"} 1`,
		`swarmkeep_cache_evictions_total{backend="shared"} 2`,
		`swarmkeep_cache_lkg_writes_total{backend="shared"} 3`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("no line %s", line)
		}
	}
	if strings.Contains(body, `swarmkeep_cache_misses_total{backend="local"}`) {
		t.Error("uncached backend has cache series")
	}
}

// TestHealthPolicy: /health names the policy in force and follows a reload
// without a restart (the server's Policy func reads the watcher).
func TestHealthPolicy(t *testing.T) {
	var active atomic.Pointer[[2]string]
	active.Store(&[2]string{"built-in default", "builtin"})
	m := New(Options{Backends: []string{"local"}, Policy: func() (string, string) {
		p := active.Load()
		return p[0], p[1]
	}})
	m.SetBackendReady("local", nil)
	for _, want := range [][2]string{{"built-in default", "builtin"}, {"/run/policy.yaml", "sha256:abc"}} {
		active.Store(&want)
		code, body := get(t, m.Handler(), "/health")
		var h Health
		if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusOK {
			t.Fatalf("/health: %d %v", code, err)
		}
		if h.Policy != want[0] || h.PolicyHash != want[1] {
			t.Fatalf("/health policy %q %q, want %q", h.Policy, h.PolicyHash, want)
		}
	}
	if h := New(Options{}).Health(); h.Policy != "" || h.PolicyHash != "" {
		t.Fatalf("no Policy func: %+v", h)
	}
}

// Package metrics counts the driver's answers for Prometheus and reports the
// plugin's health as JSON, on a unix socket next to the plugin socket and,
// when configured, on a loopback TCP port.
//
// Every label value comes from a bounded set: backend names from the
// configuration and outcome classes from the driver's fixed list. A secret's
// name is never a label, since secrets are created by users and would make
// the series count unbounded; values never reach this package at all.
//
// The package never logs: it runs on the request path and inside the
// plugin, whose output goes to the dockerd log.
package metrics

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/cache"
)

// NoBackend labels requests that reached no configured backend: bad
// requests, bad labels, unknown backend names. It cannot clash with a
// backend, whose names are letters, digits, '-' and '_'.
const NoBackend = "(none)"

// otherClass labels a class this package does not know (a class added to
// the driver later), so it still counts, under one bounded value.
const otherClass = "other"

// classes is the driver's fixed set of outcomes, in a fixed order: the
// index into per-class arrays.
var classes = [...]driver.Class{
	driver.ClassOK, driver.ClassBadRequest, driver.ClassBadLabel, driver.ClassNoBackend,
	driver.ClassNotFound, driver.ClassInvalidRef, driver.ClassCorrupt, driver.ClassDenied,
	driver.ClassUnavailable, driver.ClassTimeout, driver.ClassInvalidValue, driver.ClassPolicyDenied,
	driver.ClassSettings,
}

// nClasses counts the known classes plus otherClass.
const nClasses = len(classes) + 1

// classIndex maps a class to its index; otherClass is the last one.
func classIndex(c driver.Class) int {
	for i, k := range classes {
		if k == c {
			return i
		}
	}
	return len(classes)
}

func className(i int) string {
	if i < len(classes) {
		return string(classes[i])
	}
	return otherClass
}

// faultClass tells the classes that are the backend's fault, as opposed to
// the caller's (a missing value, a bad label): only these count as backend
// errors.
func faultClass(c driver.Class) bool {
	switch c {
	case driver.ClassCorrupt, driver.ClassDenied, driver.ClassUnavailable, driver.ClassTimeout, driver.ClassSettings:
		return true
	}
	return false
}

// latencyBuckets span a cache hit (tens of µs) to the default request
// deadline (5 s), about 2.5x apart.
var latencyBuckets = []float64{
	50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
	50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5,
}

// Options configure Metrics.
type Options struct {
	// Version is the binary's version, for build_info and /health.
	Version string
	// ConfigHash identifies the effective configuration (see ConfigHash).
	ConfigHash string
	// Backends are the configured instance names: the only backend label
	// values besides NoBackend.
	Backends []string
	// StoreRecords, when set, counts a backend's stored records; false
	// means the backend has no such count. It may be slow: it is called at
	// most once per recordsEvery, apart from scrapes.
	StoreRecords func(backend string) (int, bool)
	// CacheStats, when set, returns a backend's cache counters; false
	// means the backend has no cache. It must be cheap: it runs at scrape.
	CacheStats func(backend string) (cache.Stats, bool)
	// Policy, when set, returns the active access policy's source and
	// hash for /health. It runs on every /health request, so a reloaded
	// policy shows at once; it must be cheap.
	Policy func() (source, hash string)
	// Problem, when set, is why the plugin cannot serve at all (broken
	// settings, an audit trail or policy it cannot open): /health then
	// says degraded with it. Fixed at start, so it is read on each request.
	Problem string
	// ProblemSummary is Problem naming only settings, never what they
	// hold: served over TCP too, and published by the agent.
	ProblemSummary string
	// Stores, when set, fingerprints the opened store-backed backends for
	// /health on the unix socket (never over TCP). It runs on every such
	// request, so it must keep its results (driver/server recomputes one
	// only when the store changed).
	Stores func() map[string]backend.StoreDigest
	// Refresh, when set, serves POST /refresh on the unix socket: it drops
	// the plugin's copies of name (every name when empty) in backend
	// (every backend when empty) and says what it did, per backend.
	Refresh func(backend, name string) ([]Refreshed, error)
}

// Metrics counts answers and keeps what /health shows. It is safe for
// concurrent use.
type Metrics struct {
	o     Options
	reg   *prometheus.Registry
	start time.Time

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	errs     *prometheus.CounterVec
	readyG   *prometheus.GaugeVec

	// rows holds one row per configured backend, then the NoBackend row.
	rows  []row
	index map[string]int

	total, cached, stale atomic.Uint64
	outcomes             [nClasses]atomic.Uint64

	ring    ring
	records *recordsCollector
}

// row is one backend's pre-resolved series, so Observe does no label
// hashing: a child is looked up once, on its first use.
type row struct {
	name  string
	cells [nClasses]atomic.Pointer[cell]
	errs  [nClasses]atomic.Pointer[prometheus.Counter]
	hits  prometheus.Counter // nil on the NoBackend row
	stale prometheus.Counter // nil on the NoBackend row
	ready atomic.Pointer[readiness]
	gauge prometheus.Gauge // nil on the NoBackend row
}

type cell struct {
	req prometheus.Counter
	dur prometheus.Observer
}

// readiness is a backend's state for /health.
type readiness struct {
	ready bool
	err   string
	since time.Time
}

// New builds Metrics on a registry of its own, so nothing another package
// registers globally leaks into the plugin's output.
func New(o Options) *Metrics {
	m := &Metrics{o: o, reg: prometheus.NewRegistry(), start: time.Now(), index: map[string]int{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "swarmkeep_requests_total", Help: "GetSecret requests answered, by backend and outcome class.",
	}, []string{"backend", "outcome"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "swarmkeep_request_duration_seconds", Help: "Time to answer a GetSecret request, by backend and outcome class.",
		Buckets: latencyBuckets,
	}, []string{"backend", "outcome"})
	hits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "swarmkeep_cache_hits_total", Help: "Values served from a fresh cache entry without asking the backend.",
	}, []string{"backend"})
	stale := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "swarmkeep_stale_served_total", Help: "Values served from a last-known-good copy because the backend failed.",
	}, []string{"backend"})
	m.errs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "swarmkeep_backend_errors_total", Help: "Requests failed by the backend (unavailable, timeout, denied, corrupt).",
	}, []string{"backend", "class"})
	m.readyG = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "swarmkeep_backend_ready", Help: "1 when the backend is open, 0 while it cannot be opened.",
	}, []string{"backend"})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "swarmkeep_build_info", Help: "Always 1; the labels name the build.",
	}, []string{"version", "go_version"})
	build.WithLabelValues(o.Version, goVersion()).Set(1)
	conf := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "swarmkeep_config_info", Help: "Always 1; hash differs between managers whose settings differ.",
	}, []string{"hash"})
	conf.WithLabelValues(o.ConfigHash).Set(1)

	var names []string
	for _, name := range o.Backends {
		if _, dup := m.index[name]; dup || name == NoBackend {
			continue
		}
		m.index[name] = len(names)
		names = append(names, name)
	}
	// Rows are filled in place: they hold atomics, which must not be
	// copied once made.
	m.rows = make([]row, len(names)+1)
	m.rows[len(names)].name = NoBackend
	for i, name := range names {
		rw := &m.rows[i]
		rw.name, rw.hits, rw.stale, rw.gauge = name, hits.WithLabelValues(name), stale.WithLabelValues(name), m.readyG.WithLabelValues(name)
		rw.ready.Store(&readiness{err: "not opened yet", since: m.start})
		// Served requests exist from the start, so rate() has a series to
		// work on before the first request.
		m.cellFor(i, classIndex(driver.ClassOK))
	}
	m.records = newRecordsCollector(m.configured(), o.StoreRecords)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, hits, stale, m.errs, m.readyG, build, conf,
		m.records, newCacheCollector(m.configured(), o.CacheStats),
	)
	return m
}

// Registry returns the registry the metrics are on, for callers that add
// their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// configured lists the configured backend names, in order.
func (m *Metrics) configured() []string {
	out := make([]string, 0, len(m.rows)-1)
	for i := range m.rows[:len(m.rows)-1] {
		out = append(out, m.rows[i].name)
	}
	return out
}

// rowOf maps a backend name to its row; any name not configured (a
// swarmkeep.backend label naming nothing) goes to the NoBackend row, which
// keeps the label's values bounded.
func (m *Metrics) rowOf(backend string) int {
	if i, ok := m.index[backend]; ok {
		return i
	}
	return len(m.rows) - 1
}

func (m *Metrics) cellFor(r, ci int) *cell {
	if c := m.rows[r].cells[ci].Load(); c != nil {
		return c
	}
	labels := []string{m.rows[r].name, className(ci)}
	c := &cell{req: m.requests.WithLabelValues(labels...), dur: m.duration.WithLabelValues(labels...)}
	// A concurrent first use may have won; either cell holds the same
	// children, since the vectors resolve labels to one child.
	m.rows[r].cells[ci].CompareAndSwap(nil, c)
	return m.rows[r].cells[ci].Load()
}

func (m *Metrics) errCounter(r, ci int) prometheus.Counter {
	if c := m.rows[r].errs[ci].Load(); c != nil {
		return *c
	}
	c := m.errs.WithLabelValues(m.rows[r].name, className(ci))
	m.rows[r].errs[ci].CompareAndSwap(nil, &c)
	return *m.rows[r].errs[ci].Load()
}

// Observe counts one answer. It is a driver.Observer and runs on the
// request path, so it takes no lock except to record a failure.
func (m *Metrics) Observe(ev driver.Event) {
	r := m.rowOf(ev.Backend)
	ci := classIndex(ev.Class)
	c := m.cellFor(r, ci)
	c.req.Inc()
	c.dur.Observe(ev.Latency.Seconds())
	m.total.Add(1)
	m.outcomes[ci].Add(1)
	rw := &m.rows[r]
	if ev.Cached && rw.hits != nil {
		rw.hits.Inc()
		m.cached.Add(1)
	}
	if ev.Stale && rw.stale != nil {
		rw.stale.Inc()
		m.stale.Add(1)
	}
	if ev.Class == driver.ClassOK {
		// A value the backend itself just answered proves it open, which
		// clears a failed open reported at start: backends open lazily
		// and may come up later without a restart.
		if !ev.Cached && !ev.Stale && rw.gauge != nil {
			if st := rw.ready.Load(); st == nil || !st.ready {
				m.SetBackendReady(rw.name, nil)
			}
		}
		return
	}
	if faultClass(ev.Class) {
		m.errCounter(r, ci).Inc()
	}
	if rw.gauge != nil && errors.Is(ev.Err, backend.ErrCannotOpen) {
		m.SetBackendReady(rw.name, ev.Err)
	}
	m.ring.add(ev, rw.name, className(ci), time.Now())
}

// SetBackendReady records whether a backend could be opened, as reported by
// driver.Warm. Names not configured are ignored.
func (m *Metrics) SetBackendReady(name string, err error) {
	i, ok := m.index[name]
	if !ok {
		return
	}
	st := &readiness{ready: err == nil, since: time.Now()}
	if err != nil {
		st.err = clip(err.Error(), maxText)
	}
	rw := &m.rows[i]
	if prev := rw.ready.Load(); prev != nil && prev.ready == st.ready && prev.err == st.err {
		return // keep since: the state has not changed
	}
	rw.ready.Store(st)
	if st.ready {
		rw.gauge.Set(1)
	} else {
		rw.gauge.Set(0)
	}
}

// ConfigHash identifies a configuration: the SHA-256 of its canonical JSON
// (object keys sorted at every level), first 16 bytes in hex. Managers with
// equal settings get equal hashes, so drift shows in one metric label. Pass
// knobs and file paths only: a hash of a low-entropy credential can be
// guessed offline. It returns "" when v cannot be encoded as JSON (it holds
// a func or a channel), a programming error the caller's tests catch.
func ConfigHash(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	// Decoding into any turns structs into maps, which encoding/json
	// writes with sorted keys; UseNumber keeps numbers exact.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return ""
	}
	canon, err := json.Marshal(generic)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:16])
}

package metrics

import (
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Health statuses.
const (
	StatusOK       = "ok"
	StatusDegraded = "degraded" // a backend is not ready, or Problem is set
)

// Health is the /health document. swarmkeep status decodes it, so its JSON
// names are an interface: add fields, do not rename them.
type Health struct {
	Status     string `json:"status"`
	Version    string `json:"version"`
	GoVersion  string `json:"go_version"`
	ConfigHash string `json:"config_hash"`
	// Policy and PolicyHash name the access policy in force (a file, or
	// the built-in default) and its content hash, updated on reload.
	Policy string `json:"policy,omitempty"`
	// Problem is why the plugin answers every request with an error: its
	// settings, audit trail or policy are broken. It names the setting
	// and the fix, never a value (settings hold knobs and paths).
	Problem string `json:"problem,omitempty"`
	// ProblemSummary is Problem without anything a setting holds: which
	// setting or part is broken, by name, and the fix. It is what may
	// leave the root-only socket (the TCP port, the node label the agent
	// publishes swarm-wide).
	ProblemSummary string                   `json:"problem_summary,omitempty"`
	PolicyHash     string                   `json:"policy_hash,omitempty"`
	UptimeS        int64                    `json:"uptime_s"`
	Backends       map[string]BackendHealth `json:"backends"`
	Requests       RequestTotals            `json:"requests"`
	// Stores fingerprint what each store-backed backend serves (identity,
	// names, digest of name -> latest version), so status can compare
	// managers; a backend not yet opened is absent, and so are all of
	// them over TCP (a digest reads every record: see Handler).
	Stores map[string]backend.StoreDigest `json:"stores,omitempty"`
	// RecentErrors are the latest failures, newest first. Over TCP they
	// carry no secret, service or line (see Handler).
	RecentErrors []RecentError `json:"recent_errors"`
}

// BackendHealth is one configured backend's state.
type BackendHealth struct {
	Ready bool      `json:"ready"`
	Error string    `json:"error"`
	Since time.Time `json:"since"`
}

// RequestTotals count answers since start, over all backends.
type RequestTotals struct {
	Total    uint64            `json:"total"`
	Outcomes map[string]uint64 `json:"outcomes"`
	Cached   uint64            `json:"cached"`
	Stale    uint64            `json:"stale"`
}

// RecentError is one failed request, as the engine was told.
type RecentError struct {
	Time    time.Time `json:"time"`
	Backend string    `json:"backend,omitempty"`
	Class   string    `json:"class"`
	Secret  string    `json:"secret,omitempty"`
	Service string    `json:"service,omitempty"`
	Line    string    `json:"line,omitempty"`
}

// ringSize is how many failures /health keeps: enough to see a pattern,
// few enough to read in a terminal.
const ringSize = 20

// maxText bounds each string /health repeats from a request or an error:
// secret names and labels are the users', and the document stays small.
const maxText = 400

// ring keeps the latest failures. A mutex is fine: only failures take it.
type ring struct {
	mu   sync.Mutex
	buf  [ringSize]RecentError
	next int
	n    int
}

// add keeps ev's failure under the metrics' bounded names, so an unknown
// backend a label asked for shows as NoBackend (the line still names it).
func (r *ring) add(ev driver.Event, backend, class string, now time.Time) {
	e := RecentError{Time: now.UTC(), Backend: backend, Class: class, Line: clip(ev.Line, maxText)}
	if ev.Request != nil {
		e.Secret, e.Service = clip(ev.Request.SecretName, maxText), clip(ev.Request.ServiceName, maxText)
	}
	r.mu.Lock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % ringSize
	r.n = min(r.n+1, ringSize)
	r.mu.Unlock()
}

// list returns the kept failures, newest first.
func (r *ring) list() []RecentError {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RecentError, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.buf[(r.next-i+ringSize)%ringSize])
	}
	return out
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// Health returns the current health document, in full.
func (m *Metrics) Health() Health { return m.health(true) }

// health returns the health document; without full it leaves out what the
// loopback TCP port must not give (see Handler): the problem text, which
// may quote the settings, and the store digests, which read every record
// (every local user could make the plugin read its whole store at will).
func (m *Metrics) health(full bool) Health {
	h := Health{
		Status: StatusOK, Version: m.o.Version, GoVersion: goVersion(), ConfigHash: m.o.ConfigHash,
		UptimeS:  int64(time.Since(m.start).Seconds()),
		Backends: make(map[string]BackendHealth, len(m.rows)-1),
		Requests: RequestTotals{Total: m.total.Load(), Outcomes: map[string]uint64{},
			Cached: m.cached.Load(), Stale: m.stale.Load()},
		RecentErrors: m.ring.list(),
	}
	if m.o.Policy != nil {
		h.Policy, h.PolicyHash = m.o.Policy()
	}
	if m.o.Problem != "" {
		h.Status, h.ProblemSummary = StatusDegraded, m.o.ProblemSummary
		if full {
			h.Problem = m.o.Problem
		}
	}
	if m.o.Stores != nil && full {
		h.Stores = m.o.Stores()
	}
	for i := range m.rows[:len(m.rows)-1] {
		st := m.rows[i].ready.Load()
		h.Backends[m.rows[i].name] = BackendHealth{Ready: st.ready, Error: st.err, Since: st.since.UTC()}
		if !st.ready {
			h.Status = StatusDegraded
		}
	}
	for i := range m.outcomes {
		if n := m.outcomes[i].Load(); n > 0 {
			h.Requests.Outcomes[className(i)] = n
		}
	}
	return h
}

// Handler serves GET /metrics (Prometheus text) and GET /health (JSON,
// status 503 when degraded, so curl -f and probes see it).
//
// On a connection that did not come through a unix socket (the loopback
// TCP port, reachable by every local user), /health leaves out the secret,
// service and error line of recent failures, the problem text and the
// store digests: the unix socket is root-only and says everything; the TCP
// port is for metrics.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// Scrapes are cheap but not free (Go runtime metrics); a handful at
		// once is plenty for one Prometheus and a curious operator.
		MaxRequestsInFlight: 4,
	}))
	mux.HandleFunc("GET /health", m.serveHealth)
	mux.HandleFunc("POST /refresh", m.serveRefresh)
	return mux
}

func (m *Metrics) serveHealth(w http.ResponseWriter, r *http.Request) {
	unix := viaUnixSocket(r)
	h := m.health(unix)
	if !unix {
		for i := range h.RecentErrors {
			e := &h.RecentErrors[i]
			e.Secret, e.Service, e.Line = "", "", ""
		}
	}
	body, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		http.Error(w, "cannot encode health", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if h.Status != StatusOK {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	w.Write(append(body, '\n'))
}

// viaUnixSocket tells whether the request came in on a unix socket, from the
// listener address net/http records in every request's context.
func viaUnixSocket(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && (a.Network() == "unix" || a.Network() == "unixpacket")
}

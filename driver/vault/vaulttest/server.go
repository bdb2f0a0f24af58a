package vaulttest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Option configures a Server.
type Option func(*options)

type options struct {
	cert      *tls.Certificate
	clientCAs *x509.CertPool
}

// WithTLS serves HTTPS with cert. Clients must trust its issuer.
func WithTLS(cert tls.Certificate) Option {
	return func(o *options) { o.cert = &cert }
}

// WithClientCAs requires every client to present a certificate issued by
// one of pool's CAs. It needs WithTLS.
func WithClientCAs(pool *x509.CertPool) Option {
	return func(o *options) { o.clientCAs = pool }
}

// Server is a fake Vault / OpenBao server on 127.0.0.1. Its methods are safe
// for concurrent use.
type Server struct {
	// URL is the address to configure clients with: http://127.0.0.1:port,
	// or https:// with WithTLS.
	URL string

	addr    string
	tlsConf *tls.Config

	mu      sync.Mutex
	srv     *http.Server
	hits    map[string]int
	total   int
	latency time.Duration
	sealed  bool
	now     func() time.Time

	namespaces map[string]bool
	mounts     map[string]*kvMount // by namespace + mount path
	tokens     map[string]*token
	policies   map[string][]string // by namespace + name: path patterns
	appRoles   map[string]*AppRole // by namespace + mount + "|" + role ID
	jwtRoles   map[string]*JWTRole // by namespace + mount + "|" + role name
	jwtKey     *ecdsa.PrivateKey
	root       string
}

// New starts a server that stops when the test ends. Like a dev server it
// has a root token and a KV v2 mount at "secret".
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	s := &Server{
		hits:       map[string]int{},
		now:        time.Now,
		namespaces: map[string]bool{"": true},
		mounts:     map[string]*kvMount{mountKey("", "secret"): newKVMount(2, nil)},
		tokens:     map[string]*token{},
		policies:   map[string][]string{},
		appRoles:   map[string]*AppRole{},
		jwtRoles:   map[string]*JWTRole{},
	}
	scheme := "http"
	if o.cert != nil {
		scheme = "https"
		s.tlsConf = &tls.Config{Certificates: []tls.Certificate{*o.cert}, MinVersion: tls.VersionTLS12}
		if o.clientCAs != nil {
			s.tlsConf.ClientCAs = o.clientCAs
			s.tlsConf.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("vaulttest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.URL = scheme + "://" + s.addr
	s.root = s.CreateToken(TokenOptions{Root: true})
	s.serve(ln)
	t.Cleanup(s.Close)
	return s
}

// RootToken is a token that never expires and may do anything.
func (s *Server) RootToken() string { return s.root }

func (s *Server) serve(ln net.Listener) {
	if s.tlsConf != nil {
		ln = tls.NewListener(ln, s.tlsConf)
	}
	// Handshake failures are expected in TLS tests: keep them off stderr.
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // Serve always returns ErrServerClosed on Stop
}

// Stop closes the listener and every open connection, as a crashed server
// would: clients get connection refused until Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Restart listens again on the same address, keeping all state.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment after Close
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("vaulttest: listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// Close stops the server for good.
func (s *Server) Close() { s.Stop() }

// SetLatency delays every answer by d (0 to stop), as an overloaded server
// would. A client that gives up is not answered at all.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetSealed makes every request answer 503 {"errors":["Vault is sealed"]}.
func (s *Server) SetSealed(sealed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealed = sealed
}

// Count is how many requests reached URL path p (for example
// "/v1/auth/approle/login"), whatever their method and outcome.
func (s *Server) Count(p string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[p]
}

// Total is how many requests the server received.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// request is one decoded API call.
type request struct {
	method string // GET, PUT (for POST and PUT, which Vault treats alike), DELETE
	path   string // without /v1/
	ns     string // "" for root, else "a/" or "a/b/"
	token  string
	query  url.Values
	body   map[string]any
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.URL.Path]++
	s.total++
	delay, sealed := s.latency, s.sealed
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if sealed {
		writeErrors(w, http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	p, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		writeErrors(w, http.StatusNotFound)
		return
	}
	q := &request{method: r.Method, path: p, ns: cleanNamespace(r.Header.Get("X-Vault-Namespace")),
		token: r.Header.Get("X-Vault-Token"), query: r.URL.Query()}
	switch r.Method {
	case http.MethodPost, http.MethodPut:
		q.method = http.MethodPut
		dec := json.NewDecoder(r.Body)
		dec.UseNumber() // as Vault's jsonutil does
		if err := dec.Decode(&q.body); err != nil && !errors.Is(err, io.EOF) {
			writeErrors(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
			return
		}
	case http.MethodGet, http.MethodDelete:
		if r.Method == http.MethodGet && q.query.Get("list") == "true" {
			q.method = methodList // how the api client sends LIST
		}
	case methodList:
		q.method = methodList
	}
	if q.method == methodList && !strings.HasSuffix(q.path, "/") {
		// As Vault's HTTP layer: a LIST is of a folder, so policies
		// over "secret/metadata/*" cover the mount's root listing.
		q.path += "/"
	}
	switch q.method {
	case methodList, http.MethodGet, http.MethodDelete, http.MethodPut:
	default:
		writeErrors(w, http.StatusMethodNotAllowed, "vaulttest: method "+r.Method+" is not served")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case p == "auth/token/lookup-self" || p == "auth/token/renew-self":
		s.serveTokenSelf(w, q)
	case p == "auth/token/create" || p == "auth/token/revoke":
		s.serveTokenAdmin(w, q)
	case strings.HasPrefix(p, "auth/") && strings.HasSuffix(p, "/login") && s.serveLogin(w, q):
	case strings.HasPrefix(p, uiMounts):
		s.serveMountInfo(w, q, strings.TrimPrefix(p, uiMounts))
	case strings.HasPrefix(p, "sys/"):
		s.serveSys(w, q)
	default:
		s.serveKV(w, q)
	}
}

// cleanNamespace turns a header value into the "a/b/" form used as a key.
func cleanNamespace(h string) string {
	h = strings.Trim(strings.TrimSpace(h), "/")
	if h == "" || h == "root" {
		return ""
	}
	return h + "/"
}

// response is Vault's JSON envelope for a successful answer.
type response struct {
	RequestID     string     `json:"request_id"`
	LeaseID       string     `json:"lease_id"`
	Renewable     bool       `json:"renewable"`
	LeaseDuration int        `json:"lease_duration"`
	Data          any        `json:"data"`
	WrapInfo      any        `json:"wrap_info"`
	Warnings      []string   `json:"warnings"`
	Auth          *authBlock `json:"auth"`
}

func writeResponse(w http.ResponseWriter, status int, r response) {
	r.RequestID = newID()
	writeJSON(w, status, r)
}

// writeErrors writes {"errors":[...]}; with no messages the list is empty,
// never null, as in Vault's respondError.
func writeErrors(w http.ResponseWriter, status int, msgs ...string) {
	if msgs == nil {
		msgs = []string{}
	}
	writeJSON(w, status, map[string][]string{"errors": msgs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}

// newID returns a random UUID-shaped string, as Vault uses for request IDs,
// tokens and accessors.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

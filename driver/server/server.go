package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/docker/go-connections/sockets"
	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/cache"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
	"github.com/swarmkeep/swarmkeep/driver/policy"
)

// drainTimeout bounds how long a stop waits for requests in flight; it is
// above the largest request deadline so no answered request is cut off.
const drainTimeout = driver.MaxTimeout + time.Second

// storeCountTimeout bounds one count of a store's names for the metrics.
const storeCountTimeout = time.Minute

// Options are what the binary hands the server besides its configuration.
type Options struct {
	// Log is the plugin log; Stderr takes audit copies (AUDIT_STDERR).
	Log    logrus.FieldLogger
	Stderr io.Writer
	// Version is the build's version, for /health and the log.
	Version string
	// Observer, when set, sees every answer after the metrics, the audit
	// trail and the log (tests and benchmarks count answers with it).
	Observer driver.Observer
	// Instrument, when set, wraps each instance's backend below its cache
	// (benchmarks count the calls that reach a backend with it).
	Instrument func(name string, b backend.Backend) backend.Backend
}

// Server is one assembled plugin: settings -> backends -> caches -> driver
// -> handler -> listeners. New builds it without listening; Serve listens.
type Server struct {
	cfg       Config
	log       logrus.FieldLogger
	version   string
	hash      string
	lazies    map[string]*backend.Lazy
	caches    map[string]*cache.Cache
	driver    *driver.Driver
	handler   http.Handler
	metrics   *metrics.Metrics
	policy    *policy.Watcher
	stopAudit func() error
	// stopWarm ends the background opens (Warm) at Close.
	stopWarm  chan struct{}
	closeWarm sync.Once
	digests   *digestCache
}

// New assembles the server from a validated configuration. Backends are
// not opened here (see Serve); the audit trail and the policy are, so a
// bad one stops the plugin at start with a clear error.
func New(cfg Config, o Options) (_ *Server, err error) {
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = l
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	s := &Server{cfg: cfg, log: o.Log, version: o.Version, hash: ConfigHash(cfg),
		lazies: map[string]*backend.Lazy{}, caches: map[string]*cache.Cache{}, stopAudit: func() error { return nil },
		stopWarm: make(chan struct{}), digests: newDigestCache()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	observer := logObserver(s.log)
	if o.Observer != nil {
		observer = observers(observer, o.Observer)
	}
	if cfg.AuditFile != "" {
		observer, s.stopAudit, err = startAudit(cfg.AuditFile, cfg.AuditStderr, o.Stderr, s.log, observer)
		if err != nil {
			s.stopAudit = func() error { return nil }
			return nil, fmt.Errorf("audit trail (fix %s, or set %s=off): %w", EnvAuditFile, EnvAudit, err)
		}
	} else {
		signal.Ignore(syscall.SIGHUP) // a logrotate postrotate HUP must not kill the plugin
	}
	routes := make([]driver.Route, 0, len(cfg.Backends))
	for _, b := range cfg.Backends {
		lazy := backend.NewLazy(b.Type, b.Settings)
		s.lazies[b.Name] = lazy
		var be backend.Backend = lazy
		if o.Instrument != nil {
			be = o.Instrument(b.Name, be)
		}
		if b.Cache.Enabled {
			var c *cache.Cache
			be, c = wrapCache(cfg.KeySource(), b, be, lazy.Opened, s.log.WithField("backend", b.Name))
			if c != nil {
				s.caches[b.Name] = c
			}
		}
		routes = append(routes, driver.Route{Name: b.Name, Backend: be, Caps: b.Caps})
	}
	s.metrics = metrics.New(metrics.Options{
		Version:      o.Version,
		ConfigHash:   s.hash,
		Backends:     backendNames(cfg),
		StoreRecords: s.countNames,
		Stores:       s.storeDigests,
		CacheStats: func(name string) (cache.Stats, bool) {
			c, ok := s.caches[name] // read-only once New returns
			if !ok {
				return cache.Stats{}, false
			}
			return c.Stats(), true
		},
		Policy: func() (string, string) {
			if s.policy == nil { // set before anything is served
				return "", ""
			}
			p := s.policy.Policy()
			return p.Source(), p.Hash()
		},
		Refresh: func(backend, name string) ([]metrics.Refreshed, error) { return s.Refresh(backend, name) },
	})
	s.policy, err = policy.NewWatcherHooks(cfg.PolicyFile, policy.Hooks{
		Report: func(err error) {
			s.log.WithField("policy", cfg.PolicyFile).Warnf("access policy: %v", err)
		},
		Reloaded: func(source, hash string) {
			s.log.WithFields(logrus.Fields{"policy": source, "policy_hash": hash}).Info("access policy reloaded")
		},
	})
	if err != nil {
		return nil, fmt.Errorf("access policy (fix %s, or remove it for the default policy): %w", cfg.PolicyFile, err)
	}
	s.log.WithFields(logrus.Fields{"policy": s.policy.Source(), "policy_hash": s.policy.Hash()}).Info("access policy loaded")
	s.driver, err = driver.New(driver.Options{
		Policy:   s.policy,
		Routes:   routes,
		Default:  cfg.Default,
		Timeout:  cfg.Timeout,
		Observer: observers(s.metrics.Observe, observer),
	})
	if err != nil {
		return nil, err
	}
	s.handler = driver.NewHandler(s.driver)
	return s, nil
}

// Handler is the plugin protocol handler, for callers that serve it on a
// listener of their own.
func (s *Server) Handler() http.Handler { return s.handler }

// Driver is the assembled driver.
func (s *Server) Driver() *driver.Driver { return s.driver }

// Cache returns the cache in front of a backend instance, if it has one.
func (s *Server) Cache(name string) (*cache.Cache, bool) {
	c, ok := s.caches[name]
	return c, ok
}

// ConfigHash is the hash /health shows for this configuration.
func (s *Server) ConfigHash() string { return s.hash }

// countNames counts an opened backend's names for the metrics; backends
// that cannot count, or are not open, have no count.
func (s *Server) countNames(name string) (int, bool) {
	l, ok := s.lazies[name]
	if !ok {
		return 0, false
	}
	b, ok := l.Opened()
	if !ok {
		return 0, false
	}
	c, ok := b.(backend.Counter)
	if !ok {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCountTimeout)
	defer cancel()
	n, err := c.Count(ctx)
	return n, err == nil
}

// Warm starts opening every backend in the background, logs each outcome
// and shows it in /health, so the first request does not pay for the open
// and a backend that cannot open is named at start. One that cannot is
// tried again in the background until it opens or the server closes (see
// backend.Lazy.Warm): a follower's plugin gets no requests, yet its etcd
// replica must be current when it leads. report, when set, is called with
// each outcome too.
func (s *Server) Warm(report func(name string, err error)) {
	for name, l := range s.lazies {
		var last string
		l.Warm(s.stopWarm, func(err error) {
			if report != nil {
				report(name, err)
			}
			s.metrics.SetBackendReady(name, err)
			log := s.log.WithField("backend", name)
			switch {
			case err == nil:
				log.Info("backend ready")
			case err.Error() != last:
				// Once per distinct cause, not once per retry.
				log.Warnf("backend not ready, retrying in the background and on the next request: %v", err)
			}
			if err != nil {
				last = err.Error()
			}
		})
	}
}

// Serve listens on the plugin socket and the metrics socket, answers until
// ctx is done, then stops: it closes the listener, waits for the requests
// in flight, stops the metrics and removes the socket. It does not Close.
func (s *Server) Serve(ctx context.Context) error {
	l, err := ListenUnix(s.cfg.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(s.cfg.Socket)
	// Metrics are for the operator: when their socket or port cannot be
	// had, say so and serve secrets regardless.
	stopMetrics, err := metrics.Serve(context.Background(), s.cfg.MetricsSocket, s.cfg.MetricsAddr, s.metrics.Handler())
	if err != nil {
		s.log.Warnf("metrics and health off: %v", err)
		stopMetrics = func() error { return nil }
	}
	s.log.WithFields(logrus.Fields{"socket": s.cfg.Socket, "version": s.version, "timeout": s.cfg.Timeout,
		"metrics": s.cfg.MetricsSocket, "config_hash": s.hash}).Info("swarmkeep serving")
	s.Warm(nil)

	hs, serveErr := serveUntil(ctx, s.handler, l, pluginSocketLimits(s.cfg.Timeout), s.cfg.Socket)
	if !s.driver.Drain(drainTimeout) {
		s.log.Warn("stopped with requests still in flight")
	}
	_ = hs.Close()
	// After the drain, so the last answers are counted and health stays
	// readable while the plugin stops.
	if err := stopMetrics(); err != nil {
		s.log.Warnf("metrics: %v", err)
	}
	return serveErr
}

// Close closes the backends, then the audit trail (after the driver, so no
// record is cut off), then the policy watcher.
func (s *Server) Close() error {
	s.closeWarm.Do(func() { close(s.stopWarm) })
	var errs []error
	if s.driver != nil {
		errs = append(errs, s.driver.Close())
	} else {
		for _, l := range s.lazies {
			errs = append(errs, l.Close())
		}
	}
	if err := s.stopAudit(); err != nil {
		errs = append(errs, fmt.Errorf("audit trail: %w", err))
	}
	if s.policy != nil {
		errs = append(errs, s.policy.Close())
	}
	return errors.Join(errs...)
}

// ListenUnix opens a socket, root-only (0660 root:root), replacing a stale
// one left by a crash.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket folder: %w", err)
	}
	l, err := sockets.NewUnixSocket(path, 0)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, nil
}

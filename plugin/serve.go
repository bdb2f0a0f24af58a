package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/docker/go-connections/sockets"
	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/cache"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
	"github.com/swarmkeep/swarmkeep/driver/policy"  // also registers the "file" backend
	_ "github.com/swarmkeep/swarmkeep/driver/vault" // registers the "vault" backend
)

// drainTimeout bounds how long a stop waits for requests in flight; it is
// above the largest request deadline so no answered request is cut off.
const drainTimeout = driver.MaxTimeout + time.Second

// servingGCPercent is serve's GC target (GOGC), unless GOGC is set.
const servingGCPercent = 50

func init() {
	register("serve", command{
		summary: "run the plugin: answer the engine on the plugin socket",
		usage: `Usage: swarmkeep serve

Runs the secretprovider plugin. This is the managed plugin's entrypoint; it
reads its settings from the environment (config.json's Env):

  LOG_LEVEL        debug, info, warn or error (default info)
  REQUEST_TIMEOUT  deadline for one GetSecret answer (default 5s, 100ms..25s)
  STORE_DIR        local store folder (default /var/lib/swarmkeep/store)
  KEY_FILE         key file (default /etc/swarmkeep/key)
  PASSPHRASE_FILE  passphrase file, used instead of KEY_FILE when set
  SOCKET           socket name under /run/docker/plugins, or an absolute path
                   (default swarmkeep)
  BACKENDS         backend instances: NAME:TYPE[?key=value&...] ... (default local:file)
  DEFAULT_BACKEND  backend for secrets without swarmkeep.backend (default the first)
  LKG_DIR          last-known-good copies of remote values (default /var/lib/swarmkeep/lkg)
  AUDIT            on or off: the audit trail of every answer (default on)
  AUDIT_FILE       audit trail file (default /var/lib/swarmkeep/audit/audit.log)
  AUDIT_STDERR     true copies each audit record to the plugin log (default false)
  METRICS_SOCKET   /health and /metrics socket (default swarmkeep-metrics under
                   /run/docker/plugins)
  METRICS_ADDR     also serve them on this loopback address (default off)
  POLICY_FILE      access policy, reloaded when it changes (default
                   /etc/swarmkeep/policy.yaml; missing: the built-in default)

It stops on SIGTERM or SIGINT after the requests in flight are answered. It
reopens the audit trail on SIGHUP, and notices a rotation by itself within 1s.
`,
		run: runServe,
	})
}

func runServe(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	cfg, err := LoadConfig(env.getenv)
	if err != nil {
		return fmt.Errorf("bad settings (fix with docker plugin set): %w", err)
	}
	if env.getenv("GOGC") == "" {
		// The plugin's live heap is small and bounded (about 6 MB with
		// 10,000 cached records), so the default GC target of twice the
		// live heap mostly holds garbage; half that keeps a manager's
		// memory low for a few microseconds of GC per thousand requests.
		debug.SetGCPercent(servingGCPercent)
	}
	log := newLogger(env.stderr, cfg.LogLevel)
	observer := logObserver(log)
	stopAudit := func() error { return nil }
	if cfg.AuditFile != "" {
		observer, stopAudit, err = startAudit(cfg.AuditFile, cfg.AuditStderr, env.stderr, log, observer)
		if err != nil {
			return fmt.Errorf("audit trail (fix %s, or set %s=off): %w", EnvAuditFile, EnvAudit, err)
		}
	} else {
		signal.Ignore(syscall.SIGHUP) // a logrotate postrotate HUP must not kill the plugin
	}
	// Deferred, so it runs after the drain below: no record is cut off.
	defer func() {
		if err := stopAudit(); err != nil {
			log.Warnf("audit trail: %v", err)
		}
	}()
	instances, caches := withCacheStats(driverInstances(cfg, log))
	hash := configHash(cfg)
	m := metrics.New(metrics.Options{
		Version:      version,
		ConfigHash:   hash,
		Backends:     backendNames(cfg),
		StoreRecords: storeRecords(cfg),
		CacheStats: func(name string) (cache.Stats, bool) {
			c, ok := caches[name] // filled by driver.New, read-only after
			if !ok {
				return cache.Stats{}, false
			}
			return c.Stats(), true
		},
	})
	pw, err := policy.NewWatcher(cfg.PolicyFile, func(err error) {
		log.WithField("policy", cfg.PolicyFile).Warnf("access policy: %v", err)
	})
	if err != nil {
		return fmt.Errorf("access policy (fix %s, or remove it for the default policy): %w", cfg.PolicyFile, err)
	}
	defer pw.Close()
	log.WithFields(logrus.Fields{"policy": pw.Source(), "policy_hash": pw.Hash()}).Info("access policy loaded")
	d, err := driver.New(driver.Options{
		Authorizer: policy.Authorizer(pw),
		Instances:  instances,
		Default:    cfg.Default,
		Timeout:    cfg.Timeout,
		Observer:   observers(m.Observe, observer),
	})
	if err != nil {
		return err
	}
	l, err := listenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	// Metrics are for the operator: when their socket or port cannot be
	// had, say so and serve secrets regardless.
	stopMetrics, err := metrics.Serve(context.Background(), cfg.MetricsSocket, cfg.MetricsAddr, m.Handler())
	if err != nil {
		log.Warnf("metrics and health off: %v", err)
		stopMetrics = func() error { return nil }
	}
	log.WithFields(logrus.Fields{"socket": cfg.Socket, "version": version, "timeout": cfg.Timeout,
		"metrics": cfg.MetricsSocket, "config_hash": hash}).Info("swarmkeep serving")
	d.Warm(func(name string, err error) {
		m.SetBackendReady(name, err)
		if err != nil {
			log.WithField("backend", name).Warnf("backend not ready, will retry on the next request: %v", err)
			return
		}
		log.WithField("backend", name).Info("backend ready")
	})

	served := make(chan error, 1)
	go func() { served <- driver.NewHandler(d).Serve(l) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Infof("stopping on %s", s)
	case err := <-served:
		if !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving %s: %w", cfg.Socket, err)
		}
	}
	_ = l.Close()
	if !d.Drain(drainTimeout) {
		log.Warn("stopped with requests still in flight")
	}
	// After the drain, so the last answers are counted and health stays
	// readable while the plugin stops.
	if err := stopMetrics(); err != nil {
		log.Warnf("metrics: %v", err)
	}
	_ = os.Remove(cfg.Socket)
	return d.Close()
}

// listenUnix opens the plugin socket, root-only (0660 root:root), replacing a
// stale one left by a crash.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket folder: %w", err)
	}
	l, err := sockets.NewUnixSocket(path, 0)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, nil
}

package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
)

// Environment the serve command reads. In a managed plugin these are the
// settable Env entries of config.json; they hold knobs and file paths only,
// never credentials, because docker plugin inspect shows them.
const (
	EnvLogLevel       = "LOG_LEVEL"
	EnvRequestTimeout = "REQUEST_TIMEOUT"
	EnvStoreDir       = "STORE_DIR"
	EnvKeyFile        = "KEY_FILE"
	EnvPassphraseFile = "PASSPHRASE_FILE"
	// EnvSocket is the socket name or absolute path. Not settable in
	// config.json: it must match Interface.Socket there.
	EnvSocket = "SOCKET"
	// The audit trail: one record per answer, on the state mount.
	EnvAudit       = "AUDIT" // "off" disables it
	EnvAuditFile   = "AUDIT_FILE"
	EnvAuditStderr = "AUDIT_STDERR"
	// Metrics and health: the socket (a name under /run/docker/plugins or
	// an absolute path) and an optional loopback HOST:PORT for Prometheus.
	EnvMetricsSocket = "METRICS_SOCKET"
	EnvMetricsAddr   = "METRICS_ADDR"
)

// Defaults, equal to config.json's, so the binary behaves the same outside
// the plugin (tests, benchmarks).
const (
	DefaultStoreDir  = "/var/lib/swarmkeep/store"
	DefaultKeyFile   = "/etc/swarmkeep/key"
	DefaultSocket    = "swarmkeep"
	DefaultAuditFile = auditDefaultFile
	pluginSockDir    = "/run/docker/plugins"
)

// Config is the serve command's validated configuration.
type Config struct {
	LogLevel logrus.Level
	Timeout  time.Duration
	Socket   string // absolute path
	// The local store.
	StoreDir       string
	KeyFile        string
	PassphraseFile string
	// LKGDir holds remote backends' last-known-good copies.
	LKGDir string
	// AuditFile is the audit trail, "" when AUDIT=off; AuditStderr also
	// copies each record to the plugin log.
	AuditFile   string
	AuditStderr bool
	// PolicyFile is the access policy; missing means the built-in default.
	PolicyFile string
	// Backends are the instances served; Default answers secrets without
	// a swarmkeep.backend label.
	Backends []BackendConfig
	Default  string
	// MetricsSocket is an absolute path; MetricsAddr a loopback
	// HOST:PORT, or "" for no TCP listener.
	MetricsSocket string
	MetricsAddr   string
}

// LoadConfig reads and validates the environment, all or nothing: on error
// nothing is half-applied, and the error names the variable.
func LoadConfig(getenv func(string) string) (Config, error) {
	get := func(k, dflt string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return dflt
	}
	var c Config
	var errs []error
	lvl, err := logrus.ParseLevel(get(EnvLogLevel, "info"))
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: want debug, info, warn or error", EnvLogLevel))
	}
	c.LogLevel = lvl
	c.Timeout, err = time.ParseDuration(get(EnvRequestTimeout, driver.DefaultTimeout.String()))
	if err != nil || c.Timeout < driver.MinTimeout || c.Timeout > driver.MaxTimeout {
		errs = append(errs, fmt.Errorf("%s: want a duration from %s to %s, like 5s", EnvRequestTimeout, driver.MinTimeout, driver.MaxTimeout))
	}
	c.Socket = get(EnvSocket, DefaultSocket)
	if !filepath.IsAbs(c.Socket) {
		if strings.ContainsAny(c.Socket, "/\\") {
			errs = append(errs, fmt.Errorf("%s: want a plain name or an absolute path", EnvSocket))
		}
		c.Socket = filepath.Join(pluginSockDir, c.Socket+".sock")
	}
	c.StoreDir = get(EnvStoreDir, DefaultStoreDir)
	c.PassphraseFile = get(EnvPassphraseFile, "")
	if c.PassphraseFile == "" {
		// KEY_FILE has a default; a passphrase file, once set, wins over it.
		c.KeyFile = get(EnvKeyFile, DefaultKeyFile)
	}
	c.LKGDir = get(EnvLKGDir, DefaultLKGDir)
	switch strings.ToLower(get(EnvAudit, "on")) {
	case "on", "true":
		c.AuditFile = get(EnvAuditFile, DefaultAuditFile)
	case "off", "false":
	default:
		errs = append(errs, fmt.Errorf("%s: want on or off", EnvAudit))
	}
	if c.AuditStderr, err = strconv.ParseBool(get(EnvAuditStderr, "false")); err != nil {
		errs = append(errs, fmt.Errorf("%s: want true or false", EnvAuditStderr))
	}
	if c.MetricsSocket, err = metrics.ResolveSocket(get(EnvMetricsSocket, "")); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvMetricsSocket, err))
	}
	if c.MetricsAddr = get(EnvMetricsAddr, ""); c.MetricsAddr != "" {
		if err := metrics.CheckAddr(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvMetricsAddr, err))
		}
	}
	c.PolicyFile = get(EnvPolicyFile, policyDefaultFile)
	for name, p := range map[string]string{EnvPolicyFile: c.PolicyFile, EnvStoreDir: c.StoreDir, EnvKeyFile: c.KeyFile, EnvPassphraseFile: c.PassphraseFile, EnvLKGDir: c.LKGDir, EnvAuditFile: c.AuditFile} {
		if p != "" && !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s: want an absolute path, got %q", name, p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	c.Backends, err = parseBackends(get(EnvBackends, DefaultBackends), &c)
	if err != nil {
		return Config{}, err
	}
	c.Default = get(EnvDefaultBackend, c.Backends[0].Name)
	found := false
	for _, b := range c.Backends {
		found = found || b.Name == c.Default
	}
	if !found {
		return Config{}, fmt.Errorf("%s: %q is not listed in %s", EnvDefaultBackend, c.Default, EnvBackends)
	}
	return c, nil
}

// Instances are the backends this configuration serves, without caches.
func (c Config) Instances() []driver.Instance {
	out := make([]driver.Instance, len(c.Backends))
	for i, b := range c.Backends {
		out[i] = b.Instance
	}
	return out
}

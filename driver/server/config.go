package server

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
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
	// ReplicaDir holds replicating backends' local copies, one folder
	// per instance.
	ReplicaDir string
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

// Load reads and validates the environment, all or nothing: on error
// nothing is half-applied, and the error names the variable.
func Load(getenv func(string) string) (Config, error) {
	get := func(k string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return Lookup(k).Default
	}
	var c Config
	var errs []error
	lvl, err := logrus.ParseLevel(get(EnvLogLevel))
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: want debug, info, warn or error", EnvLogLevel))
	}
	c.LogLevel = lvl
	c.Timeout, err = time.ParseDuration(get(EnvRequestTimeout))
	if err != nil || c.Timeout < driver.MinTimeout || c.Timeout > driver.MaxTimeout {
		errs = append(errs, fmt.Errorf("%s: want a duration from %s to %s, like 5s", EnvRequestTimeout, driver.MinTimeout, driver.MaxTimeout))
	}
	c.Socket = get(EnvSocket)
	if !filepath.IsAbs(c.Socket) {
		if strings.ContainsAny(c.Socket, "/\\") {
			errs = append(errs, fmt.Errorf("%s: want a plain name or an absolute path", EnvSocket))
		}
		c.Socket = filepath.Join(PluginSockDir, c.Socket+".sock")
	}
	c.StoreDir = get(EnvStoreDir)
	c.PassphraseFile = get(EnvPassphraseFile)
	if c.PassphraseFile == "" {
		// KEY_FILE has a default; a passphrase file, once set, wins over it.
		c.KeyFile = get(EnvKeyFile)
	}
	c.LKGDir = get(EnvLKGDir)
	c.ReplicaDir = get(EnvReplicaDir)
	switch strings.ToLower(get(EnvAudit)) {
	case "on", "true":
		c.AuditFile = get(EnvAuditFile)
	case "off", "false":
	default:
		errs = append(errs, fmt.Errorf("%s: want on or off", EnvAudit))
	}
	if c.AuditStderr, err = strconv.ParseBool(get(EnvAuditStderr)); err != nil {
		errs = append(errs, fmt.Errorf("%s: want true or false", EnvAuditStderr))
	}
	if c.MetricsSocket, err = metrics.ResolveSocket(get(EnvMetricsSocket)); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvMetricsSocket, err))
	}
	if c.MetricsAddr = get(EnvMetricsAddr); c.MetricsAddr != "" {
		if err := metrics.CheckAddr(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvMetricsAddr, err))
		}
	}
	c.PolicyFile = get(EnvPolicyFile)
	for name, p := range map[string]string{EnvPolicyFile: c.PolicyFile, EnvStoreDir: c.StoreDir, EnvKeyFile: c.KeyFile, EnvPassphraseFile: c.PassphraseFile, EnvLKGDir: c.LKGDir, EnvReplicaDir: c.ReplicaDir, EnvAuditFile: c.AuditFile} {
		if p != "" && !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s: want an absolute path", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	bo := BackendOptions{Timeout: c.Timeout, LKGDir: c.LKGDir}
	if bo.CacheTTL, err = time.ParseDuration(get(EnvCacheTTL)); err != nil || bo.CacheTTL < time.Second || bo.CacheTTL > 24*time.Hour {
		return Config{}, fmt.Errorf("%s: want a duration from 1s to 24h, like 30s", EnvCacheTTL)
	}
	switch v := strings.ToLower(get(EnvPrefetch)); v {
	case "off", "false", "0":
		bo.NoPrefetch = true
	default:
		if bo.Prefetch, err = time.ParseDuration(v); err != nil || bo.Prefetch < time.Minute || bo.Prefetch > 24*time.Hour {
			return Config{}, fmt.Errorf("%s: want off or a duration from 1m to 24h, like 5m", EnvPrefetch)
		}
	}
	c.Backends, err = ParseBackendsWith(get(EnvBackends), c.backendDefaults(), bo)
	if err != nil {
		return Config{}, err
	}
	c.Default, err = DefaultBackend(c.Backends, get(EnvDefaultBackend))
	if err != nil {
		return Config{}, err
	}
	return c, nil
}

// DefaultBackend checks that name (empty: the first) is one of bs.
func DefaultBackend(bs []BackendConfig, name string) (string, error) {
	if name == "" {
		return bs[0].Name, nil
	}
	for _, b := range bs {
		if b.Name == name {
			return name, nil
		}
	}
	if !driver.ValidInstanceName(name) {
		return "", fmt.Errorf("%s: want the name of a backend listed in %s", EnvDefaultBackend, EnvBackends)
	}
	return "", fmt.Errorf("%s: backend %s is not listed in %s", EnvDefaultBackend, name, EnvBackends)
}

// backendDefaults are what instances inherit from the plugin's settings.
func (c Config) backendDefaults() backend.Defaults {
	return backend.Defaults{StoreDir: c.StoreDir, KeyFile: c.KeyFile, PassphraseFile: c.PassphraseFile, ReplicaDir: c.ReplicaDir}
}

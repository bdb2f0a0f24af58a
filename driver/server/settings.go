package server

import (
	"fmt"
	"strings"
)

// Setting is one knob of the serve command, read from the environment. In
// a managed plugin the settable ones are config.json's Env entries, changed
// with docker plugin set; they hold knobs and file paths only, never
// credentials, because docker plugin inspect shows them.
type Setting struct {
	// Name is the environment variable.
	Name string
	// Default is the value when the variable is unset or empty; it is
	// config.json's Value.
	Default string
	// DefaultDoc describes an empty Default for people ("the first in
	// BACKENDS"); empty when Default says it all.
	DefaultDoc string
	// Help is one line: config.json's Description and the README's meaning.
	Help string
	// Settable settings are listed in config.json; the others exist for
	// tests and benchmarks that run the binary outside a plugin.
	Settable bool
}

// Environment variable names.
const (
	EnvLogLevel       = "LOG_LEVEL"
	EnvRequestTimeout = "REQUEST_TIMEOUT"
	EnvBackends       = "BACKENDS"
	EnvDefaultBackend = "DEFAULT_BACKEND"
	EnvStoreDir       = "STORE_DIR"
	EnvKeyFile        = "KEY_FILE"
	EnvPassphraseFile = "PASSPHRASE_FILE"
	EnvLKGDir         = "LKG_DIR"
	EnvReplicaDir     = "REPLICA_DIR"
	EnvCacheTTL       = "CACHE_TTL"
	EnvPrefetch       = "PREFETCH"
	EnvAudit          = "AUDIT"
	EnvAuditFile      = "AUDIT_FILE"
	EnvAuditStderr    = "AUDIT_STDERR"
	EnvMetricsSocket  = "METRICS_SOCKET"
	EnvMetricsAddr    = "METRICS_ADDR"
	EnvPolicyFile     = "POLICY_FILE"
	// EnvSocket is the socket name or absolute path. Not settable: it must
	// match config.json's Interface.Socket.
	EnvSocket = "SOCKET"
)

// Defaults that other commands share with serve, so the operator commands
// on a manager and the plugin on it use the same files.
const (
	DefaultStoreDir   = "/var/lib/swarmkeep/store"
	DefaultKeyFile    = "/etc/swarmkeep/key"
	DefaultLKGDir     = "/var/lib/swarmkeep/lkg"
	DefaultReplicaDir = "/var/lib/swarmkeep/replica"
	DefaultAuditFile  = "/var/lib/swarmkeep/audit/audit.log"
	DefaultPolicyFile = "/etc/swarmkeep/policy.yaml"
	DefaultBackends   = "local:file"
	DefaultSocket     = "swarmkeep"
	// PluginSockDir is where the engine looks for plugin sockets; a
	// socket name without a '/' is a file there.
	PluginSockDir = "/run/docker/plugins"
)

// Settings is every setting serve reads, in the order config.json, serve
// --help and the README list them. It is the one place a setting is
// defined; a test keeps config.json and the README in step with it.
var Settings = []Setting{
	{Name: EnvLogLevel, Default: "info", Settable: true,
		Help: "debug, info, warn or error; debug also logs every value served (name, version, size: never the value)"},
	{Name: EnvRequestTimeout, Default: "5s", Settable: true,
		Help: "deadline for answering one GetSecret request (Go duration, 100ms..25s)"},
	{Name: EnvBackends, Default: DefaultBackends, Settable: true,
		Help: "backend instances, space-separated NAME:TYPE[?key=value&...] (types: file, etcd, vault); credentials as file paths under /etc/swarmkeep"},
	{Name: EnvDefaultBackend, DefaultDoc: "the first in BACKENDS", Settable: true,
		Help: "backend for secrets without a swarmkeep.backend label"},
	{Name: EnvStoreDir, Default: DefaultStoreDir, Settable: true,
		Help: "local store folder inside the plugin (under the state mount)"},
	{Name: EnvKeyFile, Default: DefaultKeyFile, Settable: true,
		Help: "key file inside the plugin (under the config mount)"},
	{Name: EnvPassphraseFile, DefaultDoc: "none", Settable: true,
		Help: "passphrase file inside the plugin (under the config mount); when set, used instead of KEY_FILE"},
	{Name: EnvLKGDir, Default: DefaultLKGDir, Settable: true,
		Help: "encrypted last-known-good copies of remote backends' values (under the state mount)"},
	{Name: EnvReplicaDir, Default: DefaultReplicaDir, Settable: true,
		Help: "etcd backends' local replicas of their sealed records, one folder per instance (under the state mount)"},
	{Name: EnvCacheTTL, Default: "30s", Settable: true,
		Help: "how long a cached remote value (Vault) is answered before the backend is read again: the bound on staleness for values changed outside swarmkeep (swarmkeep refresh drops copies at once; an instance's cache_ttl overrides)"},
	{Name: EnvPrefetch, Default: "5m", Settable: true,
		Help: "how often each plugin lists a cached backend that can list (Vault: KV metadata under prefetch_path, needs the list capability) and saves every value as a last-known-good copy, so any manager serves every name through an outage; off disables (an instance's prefetch overrides)"},
	{Name: EnvAudit, Default: "on", Settable: true,
		Help: "on or off: one audit record per answer (never the value)"},
	{Name: EnvAuditFile, Default: DefaultAuditFile, Settable: true,
		Help: "audit trail file inside the plugin (under the state mount); reopened on SIGHUP or when renamed"},
	{Name: EnvAuditStderr, Default: "false", Settable: true,
		Help: "true also copies each audit record to the plugin log"},
	{Name: EnvMetricsSocket, DefaultDoc: "swarmkeep-metrics", Settable: true,
		Help: "health and Prometheus metrics socket: a name next to the plugin socket (on the host /run/docker/plugins/<plugin id>/) or an absolute path"},
	{Name: EnvMetricsAddr, DefaultDoc: "off", Settable: true,
		Help: "also serve /health and /metrics on this loopback address, e.g. 127.0.0.1:9714"},
	{Name: EnvPolicyFile, Default: DefaultPolicyFile, Settable: true,
		Help: "access policy file inside the plugin (under the config mount), reloaded when it changes; missing: the built-in default (a stack reads <stack>/..., others top-level names, all shared/...)"},
	{Name: EnvSocket, Default: DefaultSocket,
		Help: "plugin socket: a name under /run/docker/plugins, or an absolute path (fixed in a plugin: config.json's Interface.Socket)"},
}

// Lookup returns the named setting; it panics on a name not in Settings,
// which is a programming error.
func Lookup(name string) Setting {
	for _, s := range Settings {
		if s.Name == name {
			return s
		}
	}
	panic("server: no setting " + name)
}

// DefaultText is the default as people read it.
func (s Setting) DefaultText() string {
	if s.DefaultDoc != "" {
		return s.DefaultDoc
	}
	return s.Default
}

// Usage lists every setting for serve --help.
func Usage() string {
	var b strings.Builder
	for _, s := range Settings {
		fmt.Fprintf(&b, "  %-16s %s\n  %-16s (default %s)\n", s.Name, s.Help, "", s.DefaultText())
	}
	return b.String()
}

package etcdstore

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// Settings keys of the etcd backend. All values are strings.
const (
	SettingEndpoints      = "endpoints"
	SettingPrefix         = "prefix"
	SettingTLSCA          = "tls_ca"
	SettingTLSCert        = "tls_cert"
	SettingTLSKey         = "tls_key"
	SettingUsername       = "username"
	SettingPasswordFile   = "password_file"
	SettingDialTimeout    = "dial_timeout"
	SettingKeyFile        = "key_file"
	SettingPassphraseFile = "passphrase_file"
	// The plugin's replica (see Replica); the operator commands, which
	// read etcd directly, ignore them.
	SettingReplicaDir = "replica_dir"
	SettingReplicaID  = "replica_id"
	SettingMaxStale   = "max_stale"
)

var knownSettings = []string{
	SettingEndpoints, SettingPrefix, SettingTLSCA, SettingTLSCert, SettingTLSKey,
	SettingUsername, SettingPasswordFile, SettingDialTimeout, SettingKeyFile, SettingPassphraseFile,
	SettingReplicaDir, SettingReplicaID, SettingMaxStale,
}

// Defaults.
const (
	DefaultPrefix      = "/swarmkeep/"
	DefaultDialTimeout = 3 * time.Second
	// DefaultMaxStale is max_stale when the settings do not give it, the
	// same as the cache's, so a copy is bounded whoever keeps it.
	DefaultMaxStale = time.Hour
)

// Config is a parsed, validated set of etcd backend settings. Files are
// named, never read here: [NewMedium] reads them, and reads credential
// files again when they change.
type Config struct {
	// Endpoints are member URLs, all http:// or all https://.
	Endpoints []string
	// Prefix is put before every key; it ends with '/'. The writer lock
	// lives under Prefix+".lock/".
	Prefix string
	// TLSCA verifies the members' certificates; empty means the system
	// roots. TLSCert and TLSKey are the client certificate, both or none.
	TLSCA, TLSCert, TLSKey string
	// Username and PasswordFile enable etcd user authentication, both or
	// none. The password is only ever read from the file.
	Username, PasswordFile string
	// DialTimeout bounds one connection attempt and the clean-up calls
	// that have no caller deadline (releasing the lock, closing).
	DialTimeout time.Duration
	// KeyFile or PassphraseFile (exactly one) unlock the store's keyring.
	KeyFile, PassphraseFile string
	// ReplicaDir keeps the plugin's copy on disk (empty: in memory);
	// ReplicaID names it under <prefix>.plugins/ (default: the host name
	// and a random suffix); MaxStale bounds the age of a copy answered
	// while etcd is unreachable (default [DefaultMaxStale]; 0: no stale
	// answers, as max_stale=0 turns the cache's copies off).
	ReplicaDir, ReplicaID string
	MaxStale              time.Duration

	// loginLater lets NewMedium return when etcd cannot be reached for
	// the login, for the plugin's replica, which answers meanwhile.
	loginLater bool
}

// ParseSettings validates the etcd backend's settings. Errors name the
// setting at fault; unknown keys are refused, since a misspelt one
// (tls_crt) would otherwise silently fall back to a default.
func ParseSettings(s backend.Settings) (Config, error) {
	var unknown []string
	for k := range s {
		if !slices.Contains(knownSettings, k) {
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Config{}, fmt.Errorf("unknown setting %s (known: %s)", strings.Join(unknown, ", "), strings.Join(knownSettings, ", "))
	}
	c := Config{
		Prefix:         DefaultPrefix,
		TLSCA:          s[SettingTLSCA],
		TLSCert:        s[SettingTLSCert],
		TLSKey:         s[SettingTLSKey],
		Username:       s[SettingUsername],
		PasswordFile:   s[SettingPasswordFile],
		DialTimeout:    DefaultDialTimeout,
		KeyFile:        s[SettingKeyFile],
		PassphraseFile: s[SettingPassphraseFile],
		ReplicaDir:     s[SettingReplicaDir],
		ReplicaID:      s[SettingReplicaID],
		MaxStale:       DefaultMaxStale,
	}
	if v, ok := s[SettingMaxStale]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return Config{}, fmt.Errorf("setting %q: %q is not a duration (like 1h)", SettingMaxStale, v)
		}
		c.MaxStale = d
	}
	if c.ReplicaDir != "" && !filepath.IsAbs(c.ReplicaDir) {
		return Config{}, fmt.Errorf("setting %q: %q is not an absolute path", SettingReplicaDir, c.ReplicaDir)
	}
	var err error
	if c.Endpoints, err = parseEndpoints(s[SettingEndpoints]); err != nil {
		return Config{}, err
	}
	if p, ok := s[SettingPrefix]; ok {
		c.Prefix = p
	}
	if c.Prefix == "" || !strings.HasSuffix(c.Prefix, "/") {
		// Without the slash, prefix "/a" would also cover "/ab/...".
		return Config{}, fmt.Errorf("setting %q: %q must end with '/' (like %s)", SettingPrefix, c.Prefix, DefaultPrefix)
	}
	if v, ok := s[SettingDialTimeout]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > time.Minute {
			return Config{}, fmt.Errorf("setting %q: %q is not a duration between 0 and 1m (like 3s)", SettingDialTimeout, v)
		}
		c.DialTimeout = d
	}
	https := strings.HasPrefix(c.Endpoints[0], "https://")
	if !https && (c.TLSCA != "" || c.TLSCert != "" || c.TLSKey != "") {
		return Config{}, fmt.Errorf("settings %q, %q and %q need https:// endpoints", SettingTLSCA, SettingTLSCert, SettingTLSKey)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return Config{}, fmt.Errorf("set both %q and %q, or neither", SettingTLSCert, SettingTLSKey)
	}
	if (c.Username == "") != (c.PasswordFile == "") {
		return Config{}, fmt.Errorf("set both %q and %q, or neither", SettingUsername, SettingPasswordFile)
	}
	switch {
	case c.KeyFile != "" && c.PassphraseFile != "":
		return Config{}, fmt.Errorf("set %q or %q, not both", SettingKeyFile, SettingPassphraseFile)
	case c.KeyFile == "" && c.PassphraseFile == "":
		return Config{}, fmt.Errorf("one of %q or %q is required", SettingKeyFile, SettingPassphraseFile)
	}
	return c, nil
}

// parseEndpoints accepts a comma-separated list of http(s)://host:port
// URLs, all with the same scheme: the client uses one transport (TLS or
// not) for every member.
func parseEndpoints(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("setting %q is required (like https://10.0.0.1:2379,https://10.0.0.2:2379)", SettingEndpoints)
	}
	var eps []string
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Port() == "" ||
			(u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("setting %q: %q is not an etcd member URL like https://10.0.0.1:2379", SettingEndpoints, e)
		}
		if len(eps) > 0 && !strings.HasPrefix(eps[0], u.Scheme+"://") {
			return nil, fmt.Errorf("setting %q: mixes http:// and https:// URLs", SettingEndpoints)
		}
		eps = append(eps, u.Scheme+"://"+u.Host)
	}
	return eps, nil
}

// KeySource is the key file or passphrase file that opens the keyring.
func (c Config) KeySource() store.KeySource {
	if c.KeyFile != "" {
		return store.KeyFile(c.KeyFile)
	}
	return store.PassphraseFile(c.PassphraseFile)
}

func (c Config) https() bool { return strings.HasPrefix(c.Endpoints[0], "https://") }

// BackendType is the name the etcd backend is registered under.
const BackendType = "etcd"

func init() {
	backend.Register(backend.Type{
		Name: BackendType, Open: openBackend, Defaults: defaults,
		Caps: backend.Capabilities{Writable: true, Sealed: true, Versioned: true, Replica: true},
	})
	store.RegisterMedium(BackendType, func(ctx context.Context, s backend.Settings) (store.Medium, store.KeySource, error) {
		return OpenMedium(ctx, s)
	})
}

// defaults gives an instance the plugin's key, its replica folder and its
// max_stale.
func defaults(s backend.Settings, d backend.Defaults) {
	store.SealedDefaults(s, d)
	if s[SettingReplicaDir] == "" && d.ReplicaDir != "" {
		s[SettingReplicaDir] = d.ReplicaDir
	}
	// Passed on even when 0: max_stale=0 means no stale answers, and
	// dropping it would leave the replica at its default.
	if _, ok := s[SettingMaxStale]; !ok && d.MaxStaleSet {
		s[SettingMaxStale] = d.MaxStale.String()
	}
}

// Open connects to the cluster the settings name and opens the store
// there. The store must exist (swarmkeep init, through [OpenMedium] and
// store.Init). Closing the Store closes the connection.
func Open(ctx context.Context, set backend.Settings) (*store.Store, error) {
	m, k, err := OpenMedium(ctx, set)
	if err != nil {
		return nil, err
	}
	s, err := store.Open(ctx, m, k)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("etcd backend: %w", err)
	}
	return s, nil
}

// OpenMedium validates the settings, checks that the files they name
// exist, and connects. It returns the medium and the key source, for
// callers that need the store's other entry points (store.Init for the
// operator's init command). The caller owns the medium until store.Open
// or store.Init succeeds with it, and must close it if they fail.
func OpenMedium(ctx context.Context, set backend.Settings) (*Medium, store.KeySource, error) {
	return openMedium(ctx, set, false)
}

func openMedium(ctx context.Context, set backend.Settings, loginLater bool) (*Medium, store.KeySource, error) {
	c, err := ParseSettings(set)
	c.loginLater = loginLater
	if err != nil {
		return nil, nil, fmt.Errorf("etcd backend: %w", err)
	}
	for _, f := range []struct{ setting, path string }{
		{SettingKeyFile, c.KeyFile}, {SettingPassphraseFile, c.PassphraseFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, nil, fmt.Errorf("etcd backend: setting %q: %w", f.setting, err)
		}
	}
	m, err := NewMedium(ctx, c)
	if err != nil {
		return nil, nil, fmt.Errorf("etcd backend: %w", err)
	}
	return m, c.KeySource(), nil
}

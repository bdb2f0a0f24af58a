package server

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// BACKENDS lists the backend instances one plugin serves, as
// whitespace-separated entries NAME:TYPE[?key=value&key=value], for example
//
//	local:file shared:etcd?endpoints=https://10.0.0.1:2379&tls_ca=/etc/swarmkeep/etcd/ca.pem
//
// The query holds the type's knobs and credential file paths (never
// credentials: docker plugin inspect shows settings) plus the cache knobs
// every remote type takes (cache, cache_ttl, negative_ttl, max_stale,
// cache_size, timeout, retry_after, prefetch), which the wiring takes out of the query
// before the rest goes to the backend type. One setting instead of one per
// knob, because config.json must declare every settable variable in advance
// and instance names are the operator's.

// CacheConfig is one remote instance's cache settings.
type CacheConfig struct {
	Enabled     bool
	TTL         time.Duration
	NegativeTTL time.Duration
	MaxStale    time.Duration
	RetryAfter  time.Duration
	Timeout     time.Duration
	MaxEntries  int
	// Prefetch is how often the values of a backend that can list are
	// all fetched into last-known-good copies; 0 is off.
	Prefetch time.Duration
	// LKGDir holds this instance's encrypted last-known-good copies.
	LKGDir string
}

// BackendConfig is one configured instance: the name secrets pick with the
// swarmkeep.backend label, its registered type and that type's settings.
type BackendConfig struct {
	Name     string
	Type     string
	Settings backend.Settings
	// Caps are the type's capabilities.
	Caps  backend.Capabilities
	Cache CacheConfig
}

// ParseBackends reads a BACKENDS value. Instances inherit what they leave
// out from dflt as their type says (the local store's folder and the
// plugin's key), so the single-store setup needs no BACKENDS. timeout is the
// request deadline, which bounds a cache's backend timeout; lkgDir holds
// each cached instance's last-known-good copies in a folder of its name.
func ParseBackends(spec string, dflt backend.Defaults, timeout time.Duration, lkgDir string) ([]BackendConfig, error) {
	return ParseBackendsWith(spec, dflt, BackendOptions{Timeout: timeout, LKGDir: lkgDir})
}

// BackendOptions are the plugin-wide settings ParseBackendsWith applies.
type BackendOptions struct {
	// Timeout is the request deadline; LKGDir holds each cached
	// instance's copies in a folder of its name.
	Timeout time.Duration
	LKGDir  string
	// CacheTTL and Prefetch are the defaults of instances that do not set
	// cache_ttl or prefetch (CACHE_TTL, PREFETCH); zero means 30s and 5m.
	CacheTTL, Prefetch time.Duration
	// NoPrefetch turns prefetching off where an instance does not say.
	NoPrefetch bool
}

// ParseBackendsWith is ParseBackends with every plugin-wide default.
func ParseBackendsWith(spec string, dflt backend.Defaults, o BackendOptions) ([]BackendConfig, error) {
	var out []BackendConfig
	seen := map[string]bool{}
	for i, entry := range strings.Fields(strings.ReplaceAll(spec, ";", " ")) {
		b, err := parseBackend(i+1, entry, dflt, o)
		if err != nil {
			return nil, err
		}
		if seen[b.Name] {
			return nil, fmt.Errorf("%s: backend %s listed twice", EnvBackends, b.Name)
		}
		seen[b.Name] = true
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no backend listed (default %q)", EnvBackends, DefaultBackends)
	}
	return out, nil
}

// The errors of parseBackend name the entry by its position and name, and
// a knob by its key, never by what was written: an entry that does not
// parse may hold anything, a token pasted by mistake included, and these
// errors reach the log, /health and the engine's error for every secret.
// (Errors from url.ParseQuery and backend.Lookup quote what they were
// given, so they are not wrapped.)
func parseBackend(pos int, entry string, dflt backend.Defaults, o BackendOptions) (BackendConfig, error) {
	head, query, _ := strings.Cut(entry, "?")
	name, typ, ok := strings.Cut(head, ":")
	if !ok || name == "" || typ == "" {
		return BackendConfig{}, fmt.Errorf("%s: entry %d: want NAME:TYPE[?key=value&...]", EnvBackends, pos)
	}
	if !driver.ValidInstanceName(name) {
		return BackendConfig{}, fmt.Errorf("%s: entry %d: the backend name before ':' must use only letters, digits, '-' and '_'", EnvBackends, pos)
	}
	t, err := backend.Lookup(typ)
	if err != nil {
		// A word is shown (etcd, in a build without it); anything else
		// may be a value run into the type by a typo ('&' for '?').
		shown := "after ':'"
		if k := keyName(strings.ToLower(typ)); k == strings.ToLower(typ) {
			shown = strconv.Quote(typ)
		}
		return BackendConfig{}, fmt.Errorf("%s: entry %d (backend %s): unknown backend type %s (known: %s)", EnvBackends, pos, name, shown, knownTypes())
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return BackendConfig{}, fmt.Errorf("%s: entry %d (backend %s): bad settings after '?': want key=value pairs joined by '&', with valid %%XX escapes", EnvBackends, pos, name)
	}
	s := backend.Settings{}
	for k, vs := range q {
		if len(vs) != 1 {
			return BackendConfig{}, fmt.Errorf("%s: entry %d (backend %s): setting %s given %d times", EnvBackends, pos, name, keyName(k), len(vs))
		}
		s[strings.ToLower(k)] = vs[0]
	}
	b := BackendConfig{Name: name, Type: t.Name, Settings: s, Caps: t.Caps}
	if err := b.takeCache(o); err != nil {
		return BackendConfig{}, fmt.Errorf("%s: entry %d (backend %s): %w", EnvBackends, pos, name, err)
	}
	if t.Defaults != nil {
		d := dflt
		if d.ReplicaDir != "" {
			d.ReplicaDir = filepath.Join(d.ReplicaDir, name)
		}
		d.MaxStale, d.MaxStaleSet = b.Cache.MaxStale, true
		t.Defaults(s, d)
	}
	for _, k := range sortedKeys(s) {
		if strings.HasSuffix(k, "_file") || k == "dir" || strings.HasPrefix(k, "tls_") && k != "tls_server_name" {
			if !filepath.IsAbs(s[k]) {
				return BackendConfig{}, fmt.Errorf("%s: entry %d (backend %s): %s must be an absolute path", EnvBackends, pos, name, k)
			}
		}
	}
	return b, nil
}

// takeCache moves the cache knobs out of the settings into b.Cache.
func (b *BackendConfig) takeCache(o BackendOptions) error {
	timeout, lkgDir := o.Timeout, o.LKGDir
	s := b.Settings
	ttl, prefetch := 30*time.Second, 5*time.Minute
	if o.CacheTTL > 0 {
		ttl = o.CacheTTL
	}
	if o.Prefetch > 0 {
		prefetch = o.Prefetch
	}
	if o.NoPrefetch {
		prefetch = 0
	}
	cc := CacheConfig{
		Enabled: !b.Caps.Local && !b.Caps.Replica, TTL: ttl, NegativeTTL: 5 * time.Second, Prefetch: prefetch,
		MaxStale: time.Hour, RetryAfter: 2 * time.Second, MaxEntries: 10000,
		Timeout: min(2*time.Second, timeout*2/5),
		LKGDir:  filepath.Join(lkgDir, b.Name),
	}
	var errs []error
	dur := func(k string, dst *time.Duration, lo, hi time.Duration) {
		v, ok := s[k]
		if !ok {
			return
		}
		delete(s, k)
		d, err := time.ParseDuration(v)
		if err != nil || d < lo || d > hi {
			errs = append(errs, fmt.Errorf("%s: want a duration from %s to %s", k, lo, hi))
			return
		}
		*dst = d
	}
	if v, ok := s["cache"]; ok {
		delete(s, "cache")
		switch v {
		case "on", "true":
			cc.Enabled = true
		case "off", "false":
			cc.Enabled = false
		default:
			errs = append(errs, errors.New("cache: want on or off"))
		}
	}
	dur("cache_ttl", &cc.TTL, time.Second, 24*time.Hour)
	if v := s["prefetch"]; v == "off" || v == "false" {
		delete(s, "prefetch")
		cc.Prefetch = 0
	}
	dur("prefetch", &cc.Prefetch, time.Minute, 24*time.Hour)
	dur("negative_ttl", &cc.NegativeTTL, 0, time.Hour)
	dur("max_stale", &cc.MaxStale, 0, 30*24*time.Hour)
	dur("retry_after", &cc.RetryAfter, 100*time.Millisecond, 5*time.Minute)
	dur("timeout", &cc.Timeout, 50*time.Millisecond, timeout)
	if v, ok := s["cache_size"]; ok {
		delete(s, "cache_size")
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			errs = append(errs, errors.New("cache_size: want 1 to 1000000"))
		}
		cc.MaxEntries = n
	}
	b.Cache = cc
	return errors.Join(errs...)
}

// knownTypes lists the registered backend types for an error.
func knownTypes() string {
	if t := backend.Types(); len(t) > 0 {
		return strings.Join(t, ", ")
	}
	return "none; this build has no backends"
}

// keyName shows a settings key in an error if it looks like a knob's name
// (lowercase letters, digits, '_'); anything else may be a value typed
// without its key=, so it is not repeated.
func keyName(k string) string {
	ok := k != "" && len(k) <= 40
	for _, r := range k {
		ok = ok && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	}
	if ok {
		return k
	}
	return "(a key that is not a knob name)"
}

func sortedKeys(s backend.Settings) []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

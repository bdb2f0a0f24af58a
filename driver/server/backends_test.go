package server

import (
	"strings"
	"testing"
	"time"
)

func TestBackendsDefault(t *testing.T) {
	c, err := Load(envOf(map[string]string{EnvPassphraseFile: "/etc/swarmkeep/pass"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Backends) != 1 || c.Default != "local" {
		t.Fatalf("%+v", c.Backends)
	}
	b := c.Backends[0]
	if b.Type != "file" || b.Cache.Enabled || b.Settings["dir"] != DefaultStoreDir || b.Settings["passphrase_file"] != "/etc/swarmkeep/pass" {
		t.Fatalf("%+v", b)
	}
}

func TestBackendsSpec(t *testing.T) {
	c, err := Load(envOf(map[string]string{
		EnvBackends: `local:file
		  shared:etcd?endpoints=https://127.0.0.1:2379,https://127.0.0.1:22379&tls_ca=/etc/swarmkeep/etcd/ca.pem&cache_ttl=10s&max_stale=2h
		  ; vault-prod:VAULT?address=https://127.0.0.1:8200&auth=approle&role_id_file=/etc/swarmkeep/v/role&cache=off&timeout=1s`,
		EnvDefaultBackend: "shared",
		EnvRequestTimeout: "4s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Backends) != 3 || c.Default != "shared" {
		t.Fatalf("%+v", c.Backends)
	}
	e := c.Backends[1]
	if e.Type != "etcd" || e.Settings["endpoints"] != "https://127.0.0.1:2379,https://127.0.0.1:22379" ||
		e.Settings["key_file"] != DefaultKeyFile || e.Settings["cache_ttl"] != "" {
		t.Fatalf("etcd settings: %+v", e.Settings)
	}
	// etcd keeps a replica current by a watch: no TTL cache in front of
	// it, and its copy lives in its own folder, as old as max_stale.
	if e.Cache.Enabled || e.Cache.TTL != 10*time.Second || e.Cache.MaxStale != 2*time.Hour ||
		e.Cache.Timeout != 1600*time.Millisecond || e.Cache.LKGDir != DefaultLKGDir+"/shared" {
		t.Fatalf("etcd cache: %+v", e.Cache)
	}
	if e.Settings["replica_dir"] != DefaultReplicaDir+"/shared" || e.Settings["max_stale"] != "2h0m0s" {
		t.Fatalf("etcd replica settings: %+v", e.Settings)
	}
	v := c.Backends[2]
	if v.Type != "vault" || v.Cache.Enabled || v.Cache.Timeout != time.Second || v.Settings["key_file"] != "" {
		t.Fatalf("vault: %+v", v)
	}
}

func TestBackendsErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"local":                            "want NAME:TYPE",
		"a:file a:file":                    "listed twice",
		"a:etcd?cache_ttl=soon":            "cache_ttl",
		"a:etcd?timeout=10s":               "timeout",
		"a:etcd?cache=maybe":               "cache: want on or off",
		"a:etcd?cache_size=0":              "cache_size",
		"a:etcd&token=x.y":                 "entry 1 (backend a): unknown backend type after ':' (known: ",
		"a:vault?token_file=relative/path": "absolute path",
		"a:etcd?x=1&x=2":                   "given 2 times",
		"a:etcd?%zz":                       "bad settings",
		" ; ":                              "no backend listed",
		"a:nosuch":                         `entry 1 (backend a): unknown backend type "nosuch" (known: `,
		"a:file a.b:file":                  "entry 2: the backend name",
	} {
		_, err := Load(envOf(map[string]string{EnvBackends: spec}))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", spec, err, want)
		}
	}
	if _, err := Load(envOf(map[string]string{EnvBackends: "a:file", EnvDefaultBackend: "b"})); err == nil ||
		!strings.Contains(err.Error(), "not listed") {
		t.Errorf("default: %v", err)
	}
}

// TestCacheTTLAndPrefetch: CACHE_TTL and PREFETCH are the defaults of the
// instances that do not set cache_ttl or prefetch.
func TestCacheTTLAndPrefetch(t *testing.T) {
	c, err := Load(envOf(map[string]string{
		EnvBackends: "a:vault?address=https://127.0.0.1:8200&token_file=/etc/swarmkeep/t b:vault?address=https://127.0.0.1:8200&token_file=/etc/swarmkeep/t&cache_ttl=2m&prefetch=1h",
		EnvCacheTTL: "10s", EnvPrefetch: "off",
	}))
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Backends[0].Cache, c.Backends[1].Cache
	if a.TTL != 10*time.Second || a.Prefetch != 0 || b.TTL != 2*time.Minute || b.Prefetch != time.Hour {
		t.Fatalf("a %+v\nb %+v", a, b)
	}
	if _, ok := c.Backends[1].Settings["prefetch"]; ok {
		t.Fatal("prefetch left in the backend's settings")
	}
	if c, err = Load(envOf(map[string]string{EnvBackends: "a:vault?address=https://127.0.0.1:8200&token_file=/etc/swarmkeep/t"})); err != nil ||
		c.Backends[0].Cache.TTL != 30*time.Second || c.Backends[0].Cache.Prefetch != 5*time.Minute {
		t.Fatalf("defaults: %+v, %v", c.Backends[0].Cache, err)
	}
	for k, v := range map[string]string{EnvCacheTTL: "0s", EnvPrefetch: "5s"} {
		if _, err := Load(envOf(map[string]string{k: v})); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}

// TestBackendsMaxStaleZero: max_stale=0 reaches an etcd replica as 0, no
// stale answers, as it turns off a cache's copies; it used to be dropped,
// which left the replica serving a copy of any age. Without the setting
// the replica gets the cache's default.
func TestBackendsMaxStaleZero(t *testing.T) {
	c, err := Load(envOf(map[string]string{
		EnvBackends: `zero:etcd?endpoints=https://127.0.0.1:2379&max_stale=0
		  ; dflt:etcd?endpoints=https://127.0.0.1:2379`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"0s", "1h0m0s"} {
		b := c.Backends[i]
		if got, ok := b.Settings["max_stale"]; !ok || got != want {
			t.Fatalf("%s: max_stale %q (set %v), want %q", b.Name, got, ok, want)
		}
	}
}

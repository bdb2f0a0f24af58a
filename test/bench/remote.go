package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/cache"
	"github.com/swarmkeep/swarmkeep/driver/etcdstore"
	"github.com/swarmkeep/swarmkeep/driver/etcdstore/etcdtest"
	srvpkg "github.com/swarmkeep/swarmkeep/driver/server"
	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/driver/vault"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// Remote backend kinds, as the report names them.
const (
	kindEtcd  = etcdstore.BackendType
	kindVault = vault.Type
)

// remote holds the run's remote backends: a real single-member etcd on
// 127.0.0.1 with an encrypted store of n+1 names, and the in-process fake
// Vault with n+1 KV v2 paths (the default mount "secret"). Names 0..n-1
// are the warmed ones; name n is never read before measurement 7.
type remote struct {
	dir, key string
	n        int
	took     time.Duration

	etcd     *etcdtest.Cluster
	etcdSkip string // why the etcd figures are skipped, or ""
	etcdErr  error  // etcd could not be set up
	etcdSet  backend.Settings

	vault    *vaulttest.Server
	vaultTB  *benchTB
	vaultErr error
	vaultSet backend.Settings
}

// newRemote starts both backends and fills them. A backend that cannot be
// set up is remembered, and its figures fail; a missing etcd binary is a
// skip (a failure with CI=true).
func newRemote(ctx context.Context, dir, key string, n int) *remote {
	start := time.Now()
	r := &remote{dir: dir, key: key, n: n}
	if err := etcdtest.Available(); err != nil {
		r.etcdSkip = "skipped (no " + etcdtest.Binary + ")"
	} else {
		r.etcdErr = r.startEtcd(ctx)
	}
	r.vaultErr = r.startVault()
	r.took = time.Since(start)
	return r
}

func (r *remote) startEtcd(ctx context.Context) error {
	c, err := etcdtest.New(etcdtest.Options{})
	if err != nil {
		return err
	}
	r.etcd = c
	r.etcdSet = backend.Settings{
		etcdstore.SettingEndpoints: strings.Join(c.Endpoints(), ","),
		etcdstore.SettingPrefix:    "/bench/",
		etcdstore.SettingKeyFile:   r.key,
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	m, k, err := etcdstore.OpenMedium(ctx, r.etcdSet)
	if err != nil {
		return err
	}
	st, err := store.Init(ctx, m, k, store.InitOptions{MaxVersions: maxVersions})
	if err != nil {
		m.Close()
		return err
	}
	// Writers serialise on the store's lock in etcd: a few are enough.
	var next atomic.Int64
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i <= r.n && errs[w] == nil; i = int(next.Add(1) - 1) {
				if _, err := st.Put(ctx, storedName(i), appendValue(nil, i)); err != nil {
					errs[w] = fmt.Errorf("put %s in etcd: %w", storedName(i), err)
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errors.Join(errs...), st.Close())
}

func (r *remote) startVault() (err error) {
	r.vaultTB = &benchTB{}
	defer func() {
		if f, ok := recover().(tbFatal); ok {
			err = errors.New(string(f))
		}
	}()
	r.vault = vaulttest.New(r.vaultTB)
	for i := 0; i <= r.n; i++ {
		r.vault.PutKV2("", "secret", storedName(i), map[string]any{"value": string(appendValue(nil, i))})
	}
	// A least-privilege token that never expires: the backend looks it
	// up once, then makes no call but the reads.
	tok := r.vault.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/data/*"}})
	file := filepath.Join(r.dir, "vault-token")
	if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	r.vaultSet = backend.Settings{"address": r.vault.URL, "token_file": file}
	return nil
}

// close stops both backends.
func (r *remote) close() {
	if r.etcd != nil {
		r.etcd.Close()
	}
	if r.vaultTB != nil {
		r.vaultTB.close()
	}
}

// kinds are the backends measured, in report order.
func (r *remote) kinds() []string { return []string{kindEtcd, kindVault} }

// unusable says why kind cannot be measured: skip is set for a missing
// etcd binary, err for a backend that failed to start.
func (r *remote) unusable(kind string) (skip string, err error) {
	if kind == kindEtcd {
		return r.etcdSkip, r.etcdErr
	}
	return "", r.vaultErr
}

// remoteServer serves one remote backend the way the binary does (driver,
// cache with last-known-good copies on disk, lazy opener, backend), plus,
// when asked, a call counter between the cache and the lazy opener.
type remoteServer struct {
	*server
	kind  string
	cache *cache.Cache
	calls atomic.Int64 // backend calls, when counted
}

// startRemote serves kind as instance name with cache_ttl ttl, its copies
// in a fresh LKG store.
func (r *remote) startRemote(sockDir, name, kind string, ttl time.Duration, conns int, count bool) (*remoteServer, error) {
	rs := &remoteServer{kind: kind}
	set := r.etcdSet
	if kind == kindVault {
		set = r.vaultSet
	}
	q := url.Values{"cache_ttl": {ttl.String()}}
	for k, v := range set {
		q.Set(k, v)
	}
	env := map[string]string{
		srvpkg.EnvBackends: kind + ":" + kind + "?" + q.Encode(), srvpkg.EnvKeyFile: r.key,
		srvpkg.EnvLKGDir: filepath.Join(r.dir, "lkg", name),
	}
	var instrument func(string, backend.Backend) backend.Backend
	if count {
		instrument = func(_ string, inner backend.Backend) backend.Backend {
			return &countingBackend{Backend: inner, n: &rs.calls}
		}
	}
	srv, err := startServerWith(sockDir, name, env, conns, instrument)
	if err != nil {
		return nil, err
	}
	c, ok := srv.srv.Cache(kind)
	if !ok {
		srv.Close()
		return nil, fmt.Errorf("%s: no cache in front of %s", name, kind)
	}
	rs.cache = c
	rs.server = srv
	return rs, nil
}

// target loads this server's n warmed names.
func (rs *remoteServer) target(n int) target {
	return target{client: rs.client, n: n, doc: rs.kind == kindVault}
}

// waitLKG waits until the cache has written n copies to disk, so a
// measurement neither competes with those writes nor starts without them.
func (rs *remoteServer) waitLKG(ctx context.Context, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := rs.cache.Stats()
		switch {
		case st.LKGWrites >= uint64(n):
			return nil
		case st.LKGErrors > 0:
			return fmt.Errorf("%s: %d last-known-good writes failed", rs.name, st.LKGErrors)
		case time.Now().After(deadline), ctx.Err() != nil:
			return fmt.Errorf("%s: %d of %d last-known-good copies written in 30 s", rs.name, st.LKGWrites, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countingBackend counts the calls that reach the backend.
type countingBackend struct {
	backend.Backend
	n *atomic.Int64
}

func (c *countingBackend) Get(ctx context.Context, ref backend.Ref) (backend.Secret, error) {
	c.n.Add(1)
	return c.Backend.Get(ctx, ref)
}

// benchTB is the testing.TB vaulttest.New wants, outside a test: the
// methods the package calls are here, the rest of the (nil) embedded
// interface is never called.
type benchTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

// tbFatal is a Fatal call, recovered by the bench's caller.
type tbFatal string

func (*benchTB) Helper() {}

func (t *benchTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (*benchTB) Fatalf(format string, args ...any) { panic(tbFatal(fmt.Sprintf(format, args...))) }

func (*benchTB) Fatal(args ...any) { panic(tbFatal(fmt.Sprint(args...))) }

func (*benchTB) Logf(format string, args ...any) { logf(format, args...) }

// close runs the cleanups, last first.
func (t *benchTB) close() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

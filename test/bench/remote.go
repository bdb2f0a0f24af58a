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

// env is the BACKENDS setting serving kind alone, as instance kind, with
// cache_ttl ttl (0: the default): what an operator sets with docker
// plugin set.
func (r *remote) env(kind string, ttl time.Duration) map[string]string {
	set := r.etcdSet
	if kind == kindVault {
		set = r.vaultSet
	}
	q := url.Values{}
	if ttl > 0 {
		q.Set("cache_ttl", ttl.String())
	}
	for k, v := range set {
		q.Set(k, v)
	}
	return map[string]string{srvpkg.EnvBackends: kind + ":" + kind + "?" + q.Encode()}
}

// startRemote starts the shipped binary serving kind with cache_ttl ttl
// (0: the default) and waits until its backend is open (/metrics
// swarmkeep_backend_ready), so no measurement pays for the open.
func (r *remote) startRemote(bin, sockDir, name, kind string, ttl time.Duration, conns int) (*proc, error) {
	p, err := startShipped(bin, sockDir, name, shippedEnv(sockDir, name, filepath.Join(sockDir, name, "store"), r.key, r.env(kind, ttl)), conns)
	if err != nil {
		return nil, err
	}
	err = p.waitMetric(context.Background(), "backend ready", func(s samples) (bool, error) {
		return s.cacheStat(kind, "swarmkeep_backend_ready") == 1, nil
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// remoteTarget loads p's n warmed names of kind.
func remoteTarget(p *proc, kind string, n int) target {
	t := p.target(n)
	t.doc = kind == kindVault
	return t
}

// waitLKG waits until p's cache has tried to write n last-known-good
// copies, so a measurement neither competes with those writes nor starts
// without them, and returns how many failed (/metrics
// swarmkeep_cache_lkg_errors_total: a write the cache's writer gave up on,
// or a copy dropped from its full queue).
func waitLKG(ctx context.Context, p *proc, kind string, n int) (failed uint64, err error) {
	if kind == kindEtcd {
		// etcd has no cache and no last-known-good copies: the plugin's
		// replica holds every name from the moment it lists the store.
		return 0, nil
	}
	err = p.waitMetric(ctx, fmt.Sprintf("%d last-known-good copies", n), func(s samples) (bool, error) {
		failed = s.cacheStat(kind, "lkg_errors_total")
		return s.cacheStat(kind, "lkg_writes_total")+failed >= uint64(n), nil
	})
	return failed, err
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

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// measureHerd: cfg.burst concurrent GetSecret requests to a fresh shipped
// binary for one name no cache has read (name r.n), released together on
// connections opened beforehand: the backend must be called exactly once.
// For Vault the count is the fake server's for that path and must be 1 (the
// cache coalesces); for etcd, the Range RPCs etcd's member started during
// the burst, which must be at most 1 (the plugin answers from its replica).
func measureHerd(ctx context.Context, cfg config, bins binaries, r *remote, sockDir string, rep *report) {
	for _, kind := range r.kinds() {
		name := fmt.Sprintf("%s: %s concurrent cold Gets, backend calls", kind, label(cfg.burst))
		switch skipped, err := r.unusable(kind); {
		case skipped != "":
			rep.skipped(name, "= 1", skipped)
			continue
		case err != nil:
			rep.failed(name, "= 1", err)
			continue
		}
		calls, shown, err := herd(ctx, cfg, bins, r, kind, sockDir)
		if err != nil {
			rep.failed(name, "= 1", err)
			continue
		}
		if kind == kindEtcd {
			// etcd answers from the plugin's replica, listed once when the
			// backend opens and kept by a watch: a cold name costs etcd
			// nothing, so the burst must not reach it more than once.
			rep.judge(name, float64(calls), "calls", shown, "<= 1", calls <= 1)
			continue
		}
		rep.judge(name, float64(calls), "calls", shown, "= 1", calls == 1)
	}
}

// herdConns is how many connections the cold burst shares: under the
// plugin socket's connection cap.
const herdConns = 256

func herd(ctx context.Context, cfg config, bins binaries, r *remote, kind, sockDir string) (int, string, error) {
	// The plugin serves at most 512 connections (driver/server/listen.go)
	// and closes quiet ones over that; the burst's requests share fewer
	// connections and queue for them on the client side, as the engine's
	// would, and all still reach the plugin while the first backend call
	// is in flight.
	conns := min(cfg.burst, herdConns)
	p, err := r.startRemote(bins.plugin, sockDir, "cold-"+kind, kind, 0, conns)
	if err != nil {
		return 0, "", err
	}
	defer p.stop()
	path := "/v1/secret/data/" + storedName(r.n)
	before, err := r.backendCount(kind, path)
	if err != nil {
		return 0, "", err
	}
	m0, err := p.scrape()
	if err != nil {
		return 0, "", err
	}
	if err := preconnect(p.client, conns); err != nil {
		return 0, "", err
	}
	took, err := burst(ctx, remoteTarget(p, kind, r.n+1), newBodyTemplate(), r.n, cfg.burst)
	if err != nil {
		return 0, "", err
	}
	after, err := r.backendCount(kind, path)
	if err != nil {
		return 0, "", err
	}
	m1, err := p.scrape()
	if err != nil {
		return 0, "", err
	}
	d := func(what string) uint64 { return m1.cacheStat(kind, what) - m0.cacheStat(kind, what) }
	calls := after - before
	what := fmt.Sprintf("Range RPCs etcd saw during the burst; the plugin made %d backend calls (answers from its replica)", d("backend_calls_total"))
	if kind == kindVault {
		what = fmt.Sprintf("Vault reads of the path; the cache made %d backend calls", d("backend_calls_total"))
	}
	shown := fmt.Sprintf("%d %s (%s answers in %s; %d coalesced, %d cache hits)",
		calls, what, label(cfg.burst), fmtDur(took), d("coalesced_total"), d("swarmkeep_cache_hits_total"))
	logf("  %s: %s", kind, shown)
	return calls, shown, nil
}

// backendCount is, for Vault, the requests the fake server got for path
// and, for etcd, the Range RPCs its member started (from /metrics).
func (r *remote) backendCount(kind, path string) (int, error) {
	if kind == kindVault {
		return r.vault.Count(path), nil
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(r.etcd.Endpoints()[0] + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "grpc_server_started_total{") || !strings.Contains(line, `grpc_method="Range"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("etcd metrics: %q", line)
		}
		n += int(v)
	}
	return n, sc.Err()
}

// preconnect opens up to n connections to the plugin, idle in c's pool,
// with n concurrent /Plugin.Activate calls, so the burst measures the
// plugin rather than connection set-up.
func preconnect(c *http.Client, n int) error {
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[k] = activate(c)
		}()
	}
	close(start)
	wg.Wait()
	return errors.Join(errs...)
}

// burst sends n GetSecret requests for name i from n goroutines released
// together, and returns the time from the release to the last answer.
// Every answer must be the value.
func burst(ctx context.Context, t target, tmpl bodyTemplate, i, n int) (time.Duration, error) {
	start := make(chan struct{})
	errs := make([]error, n)
	ends := make([]time.Time, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := tmpl.body(nil, i)
			want := make([]byte, 0, 2*valueBytes)
			<-start
			errs[k] = t.get(ctx, i, body, want)
			ends[k] = time.Now()
		}()
	}
	time.Sleep(50 * time.Millisecond) // every goroutine parked on start
	t0 := time.Now()
	close(start)
	wg.Wait()
	if failed := slices.DeleteFunc(errs, func(e error) bool { return e == nil }); len(failed) > 0 {
		return 0, fmt.Errorf("%d of %d requests failed: %w", len(failed), n, failed[0])
	}
	return slices.MaxFunc(ends, time.Time.Compare).Sub(t0), nil
}

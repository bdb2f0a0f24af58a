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

	"github.com/swarmkeep/swarmkeep/driver/cache"
)

// measureRemoteWarm is measurement 6: GetSecret through the real handler
// at cfg.conc for the etcd and Vault backends, every name in their caches,
// against the null backend, in the alternating slices of measurement 1
// (groups of one slice per server, in a Williams order): each throughput
// >= 0.85x null's. A second null server among them gives the noise floor.
func measureRemoteWarm(ctx context.Context, cfg config, r *remote, sockDir string, rep *report) {
	c := fmt.Sprintf("c%d", cfg.conc)
	verdict := func(kind string) string { return fmt.Sprintf("throughput %s warm cache/null", kind) }
	var kinds []string
	for _, kind := range r.kinds() {
		switch skipped, err := r.unusable(kind); {
		case skipped != "":
			rep.skipped(verdict(kind), ">= 0.85x", skipped)
		case err != nil:
			rep.failed(verdict(kind), ">= 0.85x", err)
		default:
			kinds = append(kinds, kind)
		}
	}
	if len(kinds) == 0 {
		return
	}
	res, err := loadWarm(ctx, cfg, r, kinds, sockDir)
	if err != nil {
		for _, kind := range kinds {
			rep.failed(verdict(kind), ">= 0.85x", err)
		}
		return
	}
	p := res.pooled[0]
	pre := fmt.Sprintf("null %s, remote slices, ", c)
	rep.info(pre+"req/s", p.RPS, "req/s", fmt.Sprintf("%.0f", p.RPS))
	rep.info(pre+"p50", us(p.P50), "µs", fmtDur(p.P50))
	rep.info(pre+"p99", us(p.P99), "µs", fmtDur(p.P99))
	floor, shown := medianRatio(res.ratios[1], "groups")
	rep.info("throughput null/null, same code: noise floor", floor, "ratio", shown+res.stalls())
	for k, kind := range kinds {
		p, j := res.pooled[k+2], k+2
		pre := fmt.Sprintf("%s warm cache %s %d names ", kind, c, r.n)
		rep.info(pre+"req/s", p.RPS, "req/s", fmt.Sprintf("%.0f", p.RPS))
		rep.info(pre+"p50", us(p.P50), "µs", fmtDur(p.P50))
		rep.info(pre+"p99", us(p.P99), "µs", fmtDur(p.P99))
		tr, shown := medianRatio(res.ratios[j], "groups")
		rep.atLeast(verdict(kind), tr, 0.85, "ratio", shown, ">= 0.85x")
	}
}

// loadWarm serves null and each kind, reads every name once (filling the
// caches and their disk copies), warms them up, then measures them in
// alternating slices.
func loadWarm(ctx context.Context, cfg config, r *remote, kinds []string, sockDir string) (sliced, error) {
	// A second null server takes its turns too: its ratio to the first,
	// the same code, shows how far the machine's noise alone moves one.
	null, err := startServer(sockDir, "remote-null", nullEnv, cfg.conc)
	if err != nil {
		return sliced{}, err
	}
	defer null.Close()
	null2, err := startServer(sockDir, "remote-null2", nullEnv, cfg.conc)
	if err != nil {
		return sliced{}, err
	}
	defer null2.Close()
	ts := []target{null.target(r.n, true), null2.target(r.n, true)}
	names := []string{"null", "null2"}
	var srvs []*remoteServer
	defer func() {
		for _, s := range srvs {
			s.Close()
		}
	}()
	tmpl := newBodyTemplate()
	filled := time.Now()
	for _, kind := range kinds {
		s, err := r.startRemote(sockDir, "warm-"+kind, kind, cache.DefaultTTL, cfg.conc, false)
		if err != nil {
			return sliced{}, err
		}
		srvs = append(srvs, s)
		if _, err := sweep(ctx, s.target(r.n), tmpl, cfg.conc, 0); err != nil {
			return sliced{}, fmt.Errorf("%s: %w", kind, err)
		}
		if err := s.waitLKG(ctx, r.n); err != nil {
			return sliced{}, err
		}
		ts = append(ts, s.target(r.n))
		names = append(names, kind)
	}
	for k, t := range ts {
		if _, err := runLoad(ctx, t, tmpl, cfg.conc, 0, cfg.tputWarm, 1); err != nil {
			return sliced{}, fmt.Errorf("%s: %w", names[k], err)
		}
	}
	res, err := alternate(ctx, names, ts, tmpl, cfg.conc, cfg.slice, cfg.remoteDur, cfg.rounds)
	if err != nil {
		return sliced{}, err
	}
	// The binary's default TTL (30 s) may run out during the slices: a
	// name is then fetched once more, as in production, by the first
	// request after it; any other backend call, or a stale answer, means
	// the cache did not hold the names.
	allowed := uint64(r.n) * uint64(1+time.Since(filled)/cache.DefaultTTL)
	errs := []error{null.check(), null2.check()}
	for _, s := range srvs {
		st := s.cache.Stats()
		logf("  %s cache: %d hits, %d misses (%d refetched after the TTL), %d backend calls, %d stale",
			s.kind, st.Hits, st.Misses, st.BackendCalls-uint64(r.n), st.BackendCalls, st.StaleServed)
		if st.BackendCalls > allowed || st.BackendErrors > 0 || st.StaleServed > 0 {
			errs = append(errs, fmt.Errorf("%s: the cache did not hold the names: %d backend calls (%d errors) for %d names, %d stale answers",
				s.kind, st.BackendCalls, st.BackendErrors, r.n, st.StaleServed))
		}
		errs = append(errs, s.check())
	}
	return res, errors.Join(errs...)
}

// measureHerd is measurement 7: cfg.burst concurrent GetSecret requests
// through the real handler for one name no cache has read (name r.n), on a
// fresh server, released together on connections opened beforehand: the
// backend must be called exactly once. For Vault the count is the fake
// server's for that path; for etcd, calls reaching the lazy opener from
// the cache (the cache's own count and etcd's Range RPCs are shown too).
func measureHerd(ctx context.Context, cfg config, r *remote, sockDir string, rep *report) {
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
		calls, shown, err := herd(ctx, cfg, r, kind, sockDir)
		if err != nil {
			rep.failed(name, "= 1", err)
			continue
		}
		rep.judge(name, float64(calls), "calls", shown, "= 1", calls == 1)
	}
}

func herd(ctx context.Context, cfg config, r *remote, kind, sockDir string) (int, string, error) {
	s, err := r.startRemote(sockDir, "cold-"+kind, kind, cache.DefaultTTL, cfg.burst, true)
	if err != nil {
		return 0, "", err
	}
	defer s.Close()
	path := "/v1/secret/data/" + storedName(r.n)
	before, err := r.backendCount(kind, path)
	if err != nil {
		return 0, "", err
	}
	if err := preconnect(s.client, cfg.burst); err != nil {
		return 0, "", err
	}
	took, err := burst(ctx, s.target(r.n+1), newBodyTemplate(), r.n, cfg.burst)
	if err != nil {
		return 0, "", err
	}
	after, err := r.backendCount(kind, path)
	if err != nil {
		return 0, "", err
	}
	st := s.cache.Stats()
	calls := int(s.calls.Load())
	extra := fmt.Sprintf("%d etcd Range RPCs", after-before)
	if kind == kindVault {
		calls, extra = after-before, fmt.Sprintf("%d past the cache", s.calls.Load())
	}
	logf("  %s: %s cold Gets in %s: cache %+v", kind, label(cfg.burst), fmtDur(took), st)
	shown := fmt.Sprintf("%d (%s answers in %s; cache: %d calls, %d coalesced, %d hits; %s)",
		calls, label(cfg.burst), fmtDur(took), st.BackendCalls, st.Coalesced, st.Hits, extra)
	return calls, shown, s.check()
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

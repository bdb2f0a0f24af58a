package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// measureThroughput is the main target: the shipped binary with
// default settings at concurrency cfg.conc over cfg.tputN names, for the
// file store and, with a warm cache, for etcd and Vault, against the null
// plugin, all in one set of interleaved slices. A second null plugin
// process takes its turns too: its ratios to the first (the same code) are
// the noise floor of the run, printed beside every verdict.
//
// Per backend the verdicts are, each the median of the per-group ratios
// to the null plugin: throughput >= 0.85x, CPU per request <= 1.5x and
// p99 <= 1.5x.
func measureThroughput(ctx context.Context, cfg config, bins binaries, st *stores, r *remote, dir string, rep *report) error {
	storeDir, err := st.get(ctx, cfg.tputN)
	if err != nil {
		return err
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	var names []string
	var ts []target
	add := func(p *proc, t target) {
		procs = append(procs, p)
		names = append(names, p.name)
		ts = append(ts, t)
	}
	for _, name := range []string{"null", "null2"} {
		p, err := startNull(bins.null, dir, name, cfg.conc)
		if err != nil {
			return err
		}
		add(p, p.target(cfg.tputN))
	}
	p, err := startShipped(bins.plugin, dir, "file", shippedEnv(dir, "file", storeDir, st.key, nil), cfg.conc)
	if err != nil {
		return err
	}
	add(p, p.target(cfg.tputN))
	var kinds []string
	for _, kind := range r.kinds() {
		switch skipped, err := r.unusable(kind); {
		case skipped != "":
			for _, v := range c8Verdicts {
				rep.skipped(verdictName(kind, v.what), v.target, skipped)
			}
			continue
		case err != nil:
			for _, v := range c8Verdicts {
				rep.failed(verdictName(kind, v.what), v.target, err)
			}
			continue
		}
		p, err := r.startRemote(bins.plugin, dir, kind, kind, 0, cfg.conc)
		if err != nil {
			return err
		}
		add(p, remoteTarget(p, kind, r.n))
		kinds = append(kinds, kind)
	}
	// Every name read once (the caches fill, and the remote ones write
	// their last-known-good copies), then each target warmed up.
	tmpl := newBodyTemplate()
	filled := time.Now()
	for k, t := range ts[2:] {
		if _, err := sweep(ctx, t, tmpl, cfg.conc, 0); err != nil {
			return fmt.Errorf("%s: %w", names[k+2], err)
		}
	}
	lkgFailed := make([]uint64, len(kinds))
	for k, kind := range kinds {
		if lkgFailed[k], err = waitLKG(ctx, procs[3+k], kind, r.n); err != nil {
			return err
		}
	}
	for k, t := range ts {
		if _, err := runLoad(ctx, t, tmpl, cfg.conc, 0, cfg.tputWarm, 1); err != nil {
			return fmt.Errorf("%s: %w", names[k], err)
		}
	}
	logf("  %d targets, %s slices, %s per target and round, %d rounds", len(ts), cfg.slice, cfg.tputDur, cfg.rounds)
	res, err := alternate(ctx, names, ts, tmpl, cfg.conc, cfg.slice, cfg.tputDur, cfg.rounds)
	if err != nil {
		return err
	}
	// The default cache_ttl (30 s) may run out during the slices: a name
	// is then fetched once more, as in production; any other backend
	// call, or a stale answer, means the cache did not hold the names.
	allowed := uint64(r.n) * uint64(1+time.Since(filled)/(30*time.Second))
	var errs []error
	for k, kind := range kinds {
		m, err := procs[3+k].scrape()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		calls, stale := m.cacheStat(kind, "backend_calls_total"), m.cacheStat(kind, "swarmkeep_stale_served_total")
		logf("  %s cache: %d backend calls for %d names, %d stale answers", kind, calls, r.n, stale)
		if calls > allowed || stale > 0 || m.cacheStat(kind, "backend_call_errors_total") > 0 {
			errs = append(errs, fmt.Errorf("%s: the cache did not hold the names: %d backend calls for %d names, %d stale answers", kind, calls, r.n, stale))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	reportThroughput(cfg, res, append([]string{"file"}, kinds...), rep)
	for k, kind := range kinds {
		rep.info(fmt.Sprintf("%s: last-known-good writes failed, first read of %s names at c%d", kind, label(r.n), cfg.conc),
			float64(lkgFailed[k]), "writes", fmt.Sprintf("%d of %d", lkgFailed[k], r.n))
	}
	return nil
}

// c8Verdicts are the three targets of every backend against the null
// plugin; noise is what the null2/null ratio of the same figure shows.
var c8Verdicts = []struct {
	what, target string
	limit        float64
	atLeast      bool
	ratios       func(sliced) [][]float64
}{
	{"throughput", ">= 0.85x", 0.85, true, func(s sliced) [][]float64 { return s.tput }},
	{"CPU/request", "<= 1.50x", 1.5, false, func(s sliced) [][]float64 { return s.cpuPer }},
	{"p99", "<= 1.50x", 1.5, false, func(s sliced) [][]float64 { return s.p99 }},
}

func verdictName(kind, what string) string {
	if kind != "file" {
		kind += " warm cache"
	}
	return fmt.Sprintf("%s/null %s", kind, what)
}

// reportThroughput writes one figure line per process and the verdicts;
// targets 0 and 1 are the null plugins, then come kinds.
func reportThroughput(cfg config, res sliced, kinds []string, rep *report) {
	line := func(j int) string {
		p := res.pooled[j]
		return fmt.Sprintf("%.0f req/s, p50 %s, p99 %s; CPU/req plugin %s, load gen %s",
			p.RPS, fmtDur(p.P50), fmtDur(p.P99), fmtDur(res.cpu[j]), fmtDur(res.gen[j]))
	}
	c := fmt.Sprintf("c%d %s names", cfg.conc, label(cfg.tputN))
	rep.info("null plugin "+c, res.pooled[0].RPS, "req/s", line(0))
	rep.info("null2 plugin (noise floor) "+c, res.pooled[1].RPS, "req/s", line(1))
	noise := map[string]string{}
	for _, v := range c8Verdicts {
		m, shown := medianRatio(v.ratios(res)[1])
		noise[v.what] = shown
		rep.info("null2/null "+v.what+" (noise floor)", m, "ratio", shown)
	}
	for k, kind := range kinds {
		j := k + 2
		rep.info(fmt.Sprintf("shipped %s %s", kind, c), res.pooled[j].RPS, "req/s", line(j)+res.stalls())
		for _, v := range c8Verdicts {
			m, shown := medianRatio(v.ratios(res)[j])
			ok := m <= v.limit
			if v.atLeast {
				ok = m >= v.limit
			}
			rep.judgeNoise(verdictName(kind, v.what), m, "ratio", shown, v.target, noise[v.what], ok)
		}
	}
}

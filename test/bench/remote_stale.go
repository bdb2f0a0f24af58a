package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// staleTTL is cache_ttl for the server whose backend is stopped: short,
// so its entries are past TTL a moment after the stop.
const staleTTL = time.Second

// replicaStaleAfter is driver/etcdstore's bound on an unconfirmed watch,
// after which the replica's answers are marked stale.
const replicaStaleAfter = 3 * time.Second

// measureStale, for each backend: two fresh shipped binaries, one with the
// default cache_ttl (warm) and one with cache_ttl 1s (stale), both read
// every name once, so the stale one's last-known-good copies are written
// (its /metrics count them). Then the backend is stopped (etcd with
// SIGTERM, the fake Vault's listener and connections closed) and, once the
// 1 s TTL is past, the stale server must answer every request from its
// copies: errors, and right answers its swarmkeep_stale_served_total does
// not count, must be 0, and its p99 at cfg.conc <= 2x the warm server's,
// the median of the ratios in interleaved slices with it. The warm cache
// answers from memory without calling the backend, so the stop does not
// touch it. The first requests after the TTL, which may wait for the
// backend to fail before copies are served, are shown apart and count in
// the errors verdict.
//
// It stops the backends: it runs last.
func measureStale(ctx context.Context, cfg config, bins binaries, r *remote, sockDir string, rep *report) {
	for _, kind := range r.kinds() {
		verdicts := [][2]string{{stopLabel(kind) + "p99 from LKG copies/warm", "<= 2.00x"}, {stopLabel(kind) + "errors, unmarked answers", "= 0"}}
		if kind == kindEtcd {
			verdicts = verdicts[1:] // the p99 is shown, not judged: see stale
		}
		skipped, err := r.unusable(kind)
		if err == nil && skipped == "" {
			err = stale(ctx, cfg, bins, r, kind, sockDir, rep)
		}
		for _, v := range verdicts {
			switch {
			case skipped != "":
				rep.skipped(v[0], v[1], skipped)
			case err != nil:
				rep.failed(v[0], v[1], err)
			}
		}
	}
}

func stale(ctx context.Context, cfg config, bins binaries, r *remote, kind, sockDir string, rep *report) error {
	tmpl := newBodyTemplate()
	w, err := r.startRemote(bins.plugin, sockDir, "stop-warm-"+kind, kind, 0, cfg.conc)
	if err != nil {
		return err
	}
	defer w.stop()
	// A second warm plugin takes its turns too: its ratio to the first
	// is the noise floor of the verdict.
	w2, err := r.startRemote(bins.plugin, sockDir, "stop-warm2-"+kind, kind, 0, cfg.conc)
	if err != nil {
		return err
	}
	defer w2.stop()
	s, err := r.startRemote(bins.plugin, sockDir, "stop-stale-"+kind, kind, staleTTL, cfg.conc)
	if err != nil {
		return err
	}
	defer s.stop()
	var lkgFailed uint64
	for _, x := range []*proc{w, w2, s} {
		if _, err := sweep(ctx, remoteTarget(x, kind, r.n), tmpl, cfg.conc, 0); err != nil {
			return fmt.Errorf("%s: %w", x.name, err)
		}
		if lkgFailed, err = waitLKG(ctx, x, kind, r.n); err != nil {
			return err
		}
	}
	// A name whose disk copy failed is still answered from its memory
	// copy while the process lives; the disk copy counts after a restart.
	rep.info(stopLabel(kind)+"last-known-good writes failed before the stop", float64(lkgFailed), "writes", fmt.Sprintf("%d of %d", lkgFailed, r.n))
	stopped := time.Now()
	if err := r.stop(kind); err != nil {
		return err
	}
	logf("  %s stopped in %s", kind, fmtDur(time.Since(stopped)))
	wait := staleTTL + 100*time.Millisecond
	if kind == kindEtcd {
		// etcd is read from each plugin's replica, not a TTL cache: its
		// answers are marked stale once the watch has gone unconfirmed for
		// the replica's bound (3 s, driver/etcdstore/replica.go).
		wait = replicaStaleAfter + 500*time.Millisecond
	}
	time.Sleep(wait)

	s0, err := s.scrape()
	if err != nil {
		return err
	}
	tally, ok := &errTally{}, &atomic.Int64{}
	ts := remoteTarget(s, kind, r.n)
	ts.tally, ts.ok = tally, ok
	first, err := runLoad(ctx, ts, tmpl, cfg.conc, 0, cfg.staleFirst, 7)
	if err != nil {
		return err
	}
	logf("  first %s after the TTL: %s, max %s", cfg.staleFirst, first, fmtDur(first.lats[len(first.lats)-1]))
	res, err := alternate(ctx, []string{"warm", "warm2", "stale"}, []target{remoteTarget(w, kind, r.n), remoteTarget(w2, kind, r.n), ts}, tmpl, cfg.conc, cfg.slice, cfg.staleDur, cfg.rounds)
	if err != nil {
		return err
	}
	for _, x := range []*proc{w, w2} {
		if kind == kindEtcd {
			break // every etcd plugin answers from its replica now
		}
		m, err := x.scrape()
		if err != nil {
			return err
		}
		if n := m.cacheStat(kind, "swarmkeep_stale_served_total"); n > 0 {
			return fmt.Errorf("%s answered %d stale copies: its TTL ran out during the measurement", x.name, n)
		}
	}
	s1, err := s.scrape()
	if err != nil {
		return err
	}
	warm, old := res.pooled[0], pool([]loadResult{first, res.pooled[2]})
	marked := int64(s1.cacheStat(kind, "swarmkeep_stale_served_total") - s0.cacheStat(kind, "swarmkeep_stale_served_total"))
	answered := ok.Load()
	failed, last := tally.count()
	slow := 0
	for _, d := range first.lats {
		if d > 100*time.Millisecond {
			slow++
		}
	}
	rep.info(stopLabel(kind)+"first answers after the TTL, max", ms(first.lats[len(first.lats)-1]), "ms",
		fmt.Sprintf("%s (%d of %d over 100ms, in the first %s)", fmtDur(first.lats[len(first.lats)-1]), slow, first.Requests, cfg.staleFirst))
	rep.info(stopLabel(kind)+fmt.Sprintf("c%d p99 from LKG copies", cfg.conc), us(old.P99), "µs",
		fmt.Sprintf("%s (p50 %s, %.0f req/s, CPU/request %s)", fmtDur(old.P99), fmtDur(old.P50), res.pooled[2].RPS, fmtDur(res.cpu[2])))
	pr, shown := medianRatio(res.p99[2])
	_, noise := medianRatio(res.p99[1])
	if kind == kindEtcd {
		// With etcd stopped every plugin, the "warm" ones too, answers
		// from its replica: there is no live reference in this run, so the
		// ratio is shown, not judged (section 1 has the warm figures).
		rep.info(stopLabel(kind)+"p99 from the replica, etcd stopped/other plugins", pr, "ratio",
			fmt.Sprintf("%s; pooled %s over %s; every plugin answers from its replica", shown, fmtDur(old.P99), fmtDur(warm.P99)))
	} else {
		rep.judgeNoise(stopLabel(kind)+"p99 from LKG copies/warm", pr, "ratio",
			fmt.Sprintf("%s; pooled %s over warm %s%s", shown, fmtDur(old.P99), fmtDur(warm.P99), res.stalls()), "<= 2.00x", "warm2/warm "+noise, pr <= 2)
	}
	bad := int64(failed) + answered - marked
	shown = fmt.Sprintf("%d (%d errors, %d not counted stale by the plugin, of %d answers)", bad, failed, answered-marked, answered)
	if last != nil {
		shown += "; last error: " + last.Error()
	}
	rep.atMost(stopLabel(kind)+"errors, unmarked answers", float64(bad), 0, "answers", shown, "= 0")
	return nil
}

// stopLabel starts the names of measurement 8's figures.
func stopLabel(kind string) string { return kind + " stopped: " }

// stop takes kind's backend down for good.
func (r *remote) stop(kind string) error {
	if kind == kindVault {
		r.vault.Stop()
		return nil
	}
	return r.etcd.Stop(0)
}

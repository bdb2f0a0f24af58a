package main

import (
	"context"
	"fmt"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/cache"
)

// staleTTL is cache_ttl for the server whose backend is stopped: short,
// so its entries are past TTL a moment after the stop.
const staleTTL = time.Second

// measureStale is measurement 8, for each backend: two fresh servers, one
// with the default cache_ttl (warm) and one with cache_ttl 1s (stale),
// both read every name once, so the stale one's last-known-good copies
// are written. Then the backend is stopped (etcd with SIGTERM, the fake
// Vault's listener and connections closed) and, once the 1 s TTL is
// past, the stale server must answer every request from its copies:
// errors and answers not marked stale must be 0, and its p99 at
// cfg.conc <= 2x the warm server's, measured in alternating slices with
// it, so both see the same machine. The warm cache answers from memory
// without calling the backend, so the stop does not touch it; the figure
// includes the first requests after the TTL, which may wait for the
// backend to fail before copies are served (shown apart too).
//
// It stops the backends: it runs last.
func measureStale(ctx context.Context, cfg config, r *remote, sockDir string, rep *report) {
	for _, kind := range r.kinds() {
		verdicts := [][2]string{{stopLabel(kind) + "p99 from LKG copies/warm", "<= 2.00x"}, {stopLabel(kind) + "errors, unmarked answers", "= 0"}}
		skipped, err := r.unusable(kind)
		if err == nil && skipped == "" {
			err = stale(ctx, cfg, r, kind, sockDir, rep)
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

func stale(ctx context.Context, cfg config, r *remote, kind, sockDir string, rep *report) error {
	tmpl := newBodyTemplate()
	w, err := r.startRemote(sockDir, "stop-warm-"+kind, kind, cache.DefaultTTL, cfg.conc, false)
	if err != nil {
		return err
	}
	defer w.Close()
	s, err := r.startRemote(sockDir, "stop-stale-"+kind, kind, staleTTL, cfg.conc, false)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, x := range []*remoteServer{w, s} {
		if _, err := sweep(ctx, x.target(r.n), tmpl, cfg.conc, 0); err != nil {
			return fmt.Errorf("%s: %w", x.name, err)
		}
		if err := x.waitLKG(ctx, r.n); err != nil {
			return err
		}
	}
	stopped := time.Now()
	if err := r.stop(kind); err != nil {
		return err
	}
	logf("  %s stopped in %s", kind, fmtDur(time.Since(stopped)))
	time.Sleep(staleTTL + 100*time.Millisecond)

	wStale, sAnswered, sStale := w.stale.Load(), s.answered.Load(), s.stale.Load()
	tally := &errTally{}
	ts := s.target(r.n)
	ts.tally = tally
	first, err := runLoad(ctx, ts, tmpl, cfg.conc, 0, cfg.staleFirst, 7)
	if err != nil {
		return err
	}
	logf("  first %s after the TTL: %s, max %s", cfg.staleFirst, first, fmtDur(first.lats[len(first.lats)-1]))
	res, err := alternate(ctx, []string{"warm", "stale"}, []target{w.target(r.n), ts}, tmpl, cfg.conc, cfg.slice, cfg.staleDur, cfg.rounds)
	if err != nil {
		return err
	}
	if err := w.check(); err != nil {
		return err
	}
	if n := w.stale.Load() - wStale; n > 0 {
		return fmt.Errorf("the warm server answered %d stale copies: its TTL ran out during the measurement", n)
	}
	warm, old := res.pooled[0], pool([]loadResult{first, res.pooled[1]})
	st := s.cache.Stats()
	logf("  stale server cache: %+v", st)

	answered, marked := s.answered.Load()-sAnswered, s.stale.Load()-sStale
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
		fmt.Sprintf("%s (p50 %s, %.0f req/s)", fmtDur(old.P99), fmtDur(old.P50), res.pooled[1].RPS))
	pr := float64(old.P99) / float64(warm.P99)
	rep.atMost(stopLabel(kind)+"p99 from LKG copies/warm", pr, 2, "ratio",
		fmt.Sprintf("%s (warm p99 %s, interleaved%s)", fmtRatio(pr), fmtDur(warm.P99), res.stalls()), "<= 2.00x")
	bad := failed + int(answered-marked)
	shown := fmt.Sprintf("%d (%d errors, %d not stale, of %d answers)", bad, failed, answered-marked, answered)
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

package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"
)

// measureThroughput loads the null backend and the tputN-record store at
// cfg.conc in short slices, alternating null/store (and store/null in the
// next pair), for cfg.tputDur per backend and round. Load from elsewhere on
// the machine changes over seconds, so a pair of adjacent slices sees the
// same machine: the throughput ratio is the median of the pairs' ratios,
// and the percentiles pool all slices of a backend.
func measureThroughput(ctx context.Context, cfg config, st *stores, sockDir string, rep *report) error {
	in, err := st.instance(ctx, cfg.tputN)
	if err != nil {
		return err
	}
	null, err := startServer(sockDir, "null", nullInstance, cfg.conc)
	if err != nil {
		return err
	}
	defer null.Close()
	file, err := startServer(sockDir, "store", in, cfg.conc)
	if err != nil {
		return err
	}
	defer file.Close()
	tn, ts := null.target(cfg.tputN, true), file.target(cfg.tputN, false)

	// Read every name once, then warm both up: the slices measure the
	// steady state.
	tmpl := newBodyTemplate()
	if _, err := sweep(ctx, ts, tmpl, cfg.conc, 0); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, t := range []target{tn, ts} {
		if _, err := runLoad(ctx, t, tmpl, cfg.conc, 0, cfg.tputWarm, 1); err != nil {
			return err
		}
	}
	const sliceWarm = 10 * time.Millisecond
	pairs := max(1, int(cfg.tputDur/cfg.slice))
	var all [2][]loadResult
	var ratios []float64
	for round := range cfg.rounds {
		var rr [2][]loadResult
		for p := range pairs {
			var pr [2]loadResult
			for q := range 2 {
				k := (p + q) % 2 // 0 null, 1 store
				t := []target{tn, ts}[k]
				r, err := runLoad(ctx, t, tmpl, cfg.conc, sliceWarm, cfg.slice, uint64(round*pairs+p))
				if err != nil {
					return fmt.Errorf("%s: %w", []string{"null", "store"}[k], err)
				}
				pr[k] = r
				rr[k] = append(rr[k], r)
			}
			ratios = append(ratios, pr[1].RPS/pr[0].RPS)
		}
		for k, name := range []string{"null", "store"} {
			logf("  round %d %-5s %s", round+1, name, pool(rr[k]))
			all[k] = append(all[k], rr[k]...)
		}
	}
	if err := errors.Join(null.check(), file.check()); err != nil {
		return err
	}
	bn, bs := pool(all[0]), pool(all[1])
	c := fmt.Sprintf("c%d", cfg.conc)
	rep.info("null "+c+" req/s", bn.RPS, "req/s", fmt.Sprintf("%.0f", bn.RPS))
	rep.info("null "+c+" p50", us(bn.P50), "µs", fmtDur(bn.P50))
	rep.info("null "+c+" p99", us(bn.P99), "µs", fmtDur(bn.P99))
	pre := fmt.Sprintf("store %s %s rec ", c, label(cfg.tputN))
	rep.info(pre+"req/s", bs.RPS, "req/s", fmt.Sprintf("%.0f", bs.RPS))
	rep.info(pre+"p50", us(bs.P50), "µs", fmtDur(bs.P50))
	rep.info(pre+"p99", us(bs.P99), "µs", fmtDur(bs.P99))
	slices.Sort(ratios)
	tr := ratios[len(ratios)/2]
	rep.atLeast("throughput store/null", tr, 0.9, "ratio",
		fmt.Sprintf("%s (pairs %.2f..%.2f)", fmtRatio(tr), ratios[len(ratios)/10], ratios[len(ratios)-1-len(ratios)/10]), ">= 0.90x")
	pr := float64(bs.P99) / float64(bn.P99)
	rep.atMost("p99 store/null", pr, 2, "ratio", fmtRatio(pr), "<= 2.00x")
	return nil
}

// measureLatency takes the p50 of one Get at concurrency 1 for each store
// size. Every store is opened first and each of its names read once (that
// pass gives the first-read figure), so the rounds measure the steady
// state, whatever the store caches. In a round the sizes are mixed request
// by request (runMixed), so load from elsewhere on the machine cannot
// favour one size; each figure is the best of the rounds.
func measureLatency(ctx context.Context, cfg config, st *stores, sockDir string, rep *report) error {
	tmpl := newBodyTemplate()
	var srvs []*server
	defer func() {
		for _, s := range srvs {
			s.Close()
		}
	}()
	// The null backend joins the mix as a reference: what the store adds
	// to a request is the difference.
	null, err := startServer(sockDir, "lat-null", nullInstance, 1)
	if err != nil {
		return err
	}
	srvs = append(srvs, null)
	ts := []target{null.target(cfg.tputN, true)}
	first := map[int]time.Duration{}
	for _, n := range cfg.sizes {
		in, err := st.instance(ctx, n)
		if err != nil {
			return err
		}
		srv, err := startServer(sockDir, fmt.Sprintf("lat-%d", n), in, 1)
		if err != nil {
			return err
		}
		srvs = append(srvs, srv)
		ts = append(ts, srv.target(n, false))
		lats, err := sweep(ctx, ts[len(ts)-1], tmpl, 1, 0)
		if err != nil {
			return fmt.Errorf("%d records: %w", n, err)
		}
		first[n] = percentile(lats, 50)
		logf("  %7s records: first read of every name: p50 %s p99 %s", label(n), fmtDur(first[n]), fmtDur(percentile(lats, 99)))
	}
	p50 := map[int]time.Duration{}
	var nullP50 time.Duration
	for round := range cfg.rounds {
		rs, err := runMixed(ctx, ts, tmpl, 1, cfg.latWarm, cfg.latDur*time.Duration(len(ts)), uint64(100+round))
		for _, s := range srvs {
			if err == nil {
				err = s.check()
			}
		}
		if err != nil {
			return err
		}
		logf("  round %d null backend:     %s", round+1, rs[0])
		if round == 0 || rs[0].P50 < nullP50 {
			nullP50 = rs[0].P50
		}
		for k, n := range cfg.sizes {
			r := rs[k+1]
			logf("  round %d %7s records: %s", round+1, label(n), r)
			if old, ok := p50[n]; !ok || r.P50 < old {
				p50[n] = r.P50
			}
		}
	}
	rep.info("c1 Get p50, null backend", us(nullP50), "µs", fmtDur(nullP50))
	base := p50[cfg.sizes[0]]
	for _, n := range cfg.sizes {
		name := fmt.Sprintf("c1 Get p50, %s rec", label(n))
		if n == cfg.sizes[0] {
			rep.info(name, us(p50[n]), "µs", fmtDur(p50[n]))
			continue
		}
		r := float64(p50[n]) / float64(base)
		rep.atMost(name, r, 1.2, "ratio", fmt.Sprintf("%s (%s)", fmtRatio(r), fmtDur(p50[n])), fmt.Sprintf("<= 1.20x %s rec", label(cfg.sizes[0])))
	}
	for _, n := range cfg.sizes {
		if n >= 1000 { // fewer are too few samples
			rep.info(fmt.Sprintf("c1 first read p50, %s rec", label(n)), us(first[n]), "µs", fmtDur(first[n]))
		}
	}
	return nil
}

// measureRSS runs the real binary on the rssN-record store, asks for every
// name once and then rssExtra random ones, and reads its memory.
func measureRSS(ctx context.Context, cfg config, st *stores, bin, dir string, rep *report) error {
	storeDir, err := st.get(ctx, cfg.rssN)
	if err != nil {
		return err
	}
	p, err := startPlugin(bin, filepath.Join(dir, "rss.sock"), storeDir, st.key, filepath.Join(dir, "rss.log"), cfg.conc)
	if err != nil {
		return err
	}
	defer p.stop()
	if _, err := sweep(ctx, p.target(cfg.rssN), newBodyTemplate(), cfg.conc, cfg.rssExtra); err != nil {
		return err
	}
	rss, hwm, err := p.memory()
	if err != nil {
		return err
	}
	rep.atMost(fmt.Sprintf("plugin RSS, %s rec", label(cfg.rssN)), float64(rss)/mib, 30, "MiB", fmtMiB(rss), "<= 30 MiB")
	rep.info(fmt.Sprintf("plugin VmHWM, %s rec", label(cfg.rssN)), float64(hwm)/mib, "MiB", fmtMiB(hwm))
	return nil
}

// measureStart starts the real binary cfg.starts times.
func measureStart(ctx context.Context, cfg config, st *stores, bin, dir string, rep *report) error {
	storeDir, err := st.get(ctx, cfg.rssN)
	if err != nil {
		return err
	}
	b, med, first, err := startTimes(ctx, bin, dir, storeDir, st.key, cfg.starts)
	if err != nil {
		return err
	}
	rep.info(fmt.Sprintf("start to socket ready, best of %d", cfg.starts), ms(b), "ms", fmtDur(b))
	rep.atMost(fmt.Sprintf("start to socket ready, median of %d", cfg.starts), ms(med), 200, "ms", fmtDur(med), "<= 200 ms")
	rep.info(fmt.Sprintf("start to first GetSecret, median (%s rec)", label(cfg.rssN)), ms(first), "ms", fmtDur(first))
	return nil
}

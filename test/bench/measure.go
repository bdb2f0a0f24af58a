package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// measureThroughput loads the null backend and the tputN-record store at
// cfg.conc in short slices, alternating null/store (and store/null in the
// next pair), for cfg.tputDur per backend and round. Load from elsewhere on
// the machine changes over seconds, so a pair of adjacent slices sees the
// same machine: the throughput ratio is the median of the pairs' ratios,
// and the percentiles pool all slices of a backend.
func measureThroughput(ctx context.Context, cfg config, st *stores, sockDir string, rep *report) error {
	in, err := st.env(ctx, cfg.tputN)
	if err != nil {
		return err
	}
	null, err := startServer(sockDir, "null", nullEnv, cfg.conc)
	if err != nil {
		return err
	}
	defer null.Close()
	file, err := startServer(sockDir, "store", in, cfg.conc)
	if err != nil {
		return err
	}
	defer file.Close()
	res, err := comparePair(ctx, cfg, [2]string{"null", "store"}, [2]*server{null, file}, [2]bool{true, false})
	if err != nil {
		return err
	}
	bn, bs := res.pooled[0], res.pooled[1]
	c := fmt.Sprintf("c%d", cfg.conc)
	rep.info("null "+c+" req/s", bn.RPS, "req/s", fmt.Sprintf("%.0f", bn.RPS))
	rep.info("null "+c+" p50", us(bn.P50), "µs", fmtDur(bn.P50))
	rep.info("null "+c+" p99", us(bn.P99), "µs", fmtDur(bn.P99))
	pre := fmt.Sprintf("store %s %s rec ", c, label(cfg.tputN))
	rep.info(pre+"req/s", bs.RPS, "req/s", fmt.Sprintf("%.0f", bs.RPS))
	rep.info(pre+"p50", us(bs.P50), "µs", fmtDur(bs.P50))
	rep.info(pre+"p99", us(bs.P99), "µs", fmtDur(bs.P99))
	tr, shown := medianRatio(res.ratios[1], "pairs")
	rep.atLeast("throughput store/null", tr, 0.9, "ratio", shown+res.stalls(), ">= 0.90x")
	pr := float64(bs.P99) / float64(bn.P99)
	rep.atMost("p99 store/null", pr, 2, "ratio", fmtRatio(pr), "<= 2.00x")
	return nil
}

// comparePair measures two servers at concurrency cfg.conc in alternating
// slices: every name is read once through the second (so its caches hold
// the steady state), both are warmed up, then the slices run, and neither
// may have failed an answer.
func comparePair(ctx context.Context, cfg config, names [2]string, srv [2]*server, null [2]bool) (sliced, error) {
	ts := []target{srv[0].target(cfg.tputN, null[0]), srv[1].target(cfg.tputN, null[1])}
	tmpl := newBodyTemplate()
	if _, err := sweep(ctx, ts[1], tmpl, cfg.conc, 0); err != nil {
		return sliced{}, fmt.Errorf("%s: %w", names[1], err)
	}
	for _, t := range ts {
		if _, err := runLoad(ctx, t, tmpl, cfg.conc, 0, cfg.tputWarm, 1); err != nil {
			return sliced{}, err
		}
	}
	res, err := alternate(ctx, names[:], ts, tmpl, cfg.conc, cfg.slice, cfg.tputDur, cfg.rounds)
	if err != nil {
		return sliced{}, err
	}
	return res, errors.Join(srv[0].check(), srv[1].check())
}

// sliced is what alternate measured: each target's slices pooled, and for
// every target but the first its throughput over the first's, one ratio
// per group of adjacent slices.
type sliced struct {
	names  []string
	pooled []loadResult
	ratios [][]float64
	// stalled counts each target's slices in which no request was
	// measured (errStalled): their groups give no ratio for that target
	// (none at all when it is the first target).
	stalled []int
}

// stalls says which slices stalled, for the report: "" when none did.
func (s sliced) stalls() string {
	var parts []string
	for j, n := range s.stalled {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s.names[j], n))
		}
	}
	if parts == nil {
		return ""
	}
	return "; stalled slices dropped: " + strings.Join(parts, ", ")
}

// alternate loads the targets in turns of one slice each at conc, for dur
// per target and round, in groups of one slice per target. Load from
// elsewhere on the machine changes over seconds, so the slices of a group
// see the same machine; the ratios are taken within groups. The turn
// orders follow a Williams design (turnOrder), so no target always comes
// first or follows the same other one. With two targets this is
// measurement 1's null/store, store/null pairs.
//
// A slice that stalls (no request measured: the machine did not run the
// bench for the whole slice) is dropped and counted, and its group gives
// no ratio for that target; more than a quarter of a target's slices
// stalled fails the measurement.
func alternate(ctx context.Context, names []string, ts []target, tmpl bodyTemplate, conc int, slice, dur time.Duration, rounds int) (sliced, error) {
	const sliceWarm = 10 * time.Millisecond
	k := len(ts)
	groups := max(1, int(dur/slice))
	all := make([][]loadResult, k)
	out := sliced{names: names, ratios: make([][]float64, k), stalled: make([]int, k)}
	for round := range rounds {
		rr := make([][]loadResult, k)
		for p := range groups {
			rps := make([]float64, k)
			g := round*groups + p
			for _, j := range turnOrder(k, g) {
				r, err := runLoad(ctx, ts[j], tmpl, conc, sliceWarm, slice, uint64(g))
				if errors.Is(err, errStalled) && ctx.Err() == nil {
					out.stalled[j]++
					continue
				}
				if err != nil {
					return sliced{}, fmt.Errorf("%s: %w", names[j], err)
				}
				rps[j] = r.RPS
				rr[j] = append(rr[j], r)
			}
			for j := 1; j < k; j++ {
				if rps[0] > 0 && rps[j] > 0 {
					out.ratios[j] = append(out.ratios[j], rps[j]/rps[0])
				}
			}
		}
		for j := range k {
			if len(rr[j]) > 0 {
				logf("  round %d %-5s %s", round+1, names[j], pool(rr[j]))
			}
			all[j] = append(all[j], rr[j]...)
		}
	}
	if s := out.stalls(); s != "" {
		logf("  %s", strings.TrimPrefix(s, "; "))
	}
	for j := range k {
		if out.stalled[j] > rounds*groups/4 || (j > 0 && len(out.ratios[j]) == 0) {
			return sliced{}, fmt.Errorf("%s: %d of %d slices stalled: the machine is too busy to compare", names[j], out.stalled[j], rounds*groups)
		}
		out.pooled = append(out.pooled, pool(all[j]))
	}
	return out, nil
}

// turnOrder is the order of group g's turns for k targets, from a Williams
// design: row 0 is 0, 1, k-1, 2, k-2, ..., row r adds r mod k to it and,
// for odd k, rows k to 2k-1 are rows 0 to k-1 reversed. Over a cycle (k
// groups, or 2k for odd k) every target takes every turn equally often and
// follows every other target equally often, so neither a slice's turn nor
// the slice before it can favour one target. For k = 2 the rows are
// (0, 1), (1, 0).
func turnOrder(k, g int) []int {
	cycle := k
	if k%2 == 1 {
		cycle = 2 * k
	}
	r := g % cycle
	out := make([]int, k)
	for i := range k {
		b := (i + 1) / 2
		if i > 0 && i%2 == 0 {
			b = k - i/2
		}
		out[i] = (b + r) % k
	}
	if r >= k {
		slices.Reverse(out)
	}
	return out
}

// medianRatio is the median of per-group ratios, shown with the 10th and
// 90th percentiles.
func medianRatio(rs []float64, groups string) (float64, string) {
	rs = slices.Clone(rs)
	slices.Sort(rs)
	m := rs[len(rs)/2]
	return m, fmt.Sprintf("%s (%s %.2f..%.2f)", fmtRatio(m), groups, rs[len(rs)/10], rs[len(rs)-1-len(rs)/10])
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
	null, err := startServer(sockDir, "lat-null", nullEnv, 1)
	if err != nil {
		return err
	}
	srvs = append(srvs, null)
	ts := []target{null.target(cfg.tputN, true)}
	first := map[int]time.Duration{}
	for _, n := range cfg.sizes {
		in, err := st.env(ctx, n)
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

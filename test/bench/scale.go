package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/store"
)

// rssLimits are the RSS budgets by store size, in MiB.
var rssLimits = map[int]float64{10000: 25, 100000: 40}

// measureScale serves each store size from its own shipped binary (default
// settings) next to a null plugin. Every name of each store is read once
// (the first-read figure), then cfg.rounds rounds at concurrency 1 mix the
// processes request by request (runMixed), so load from elsewhere on the
// machine cannot favour one size: the p50 of each size must stay within
// 1.2x of the smallest store's. Last, the resident set of the 10,000- and
// 100,000-name processes, which have then answered every name once and
// some thousands at random.
func measureScale(ctx context.Context, cfg config, bins binaries, st *stores, dir string, rep *report) error {
	tmpl := newBodyTemplate()
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	null, err := startNull(bins.null, dir, "lat-null", 1)
	if err != nil {
		return err
	}
	procs = append(procs, null)
	ts := []target{null.target(cfg.tputN)}
	first := map[int]time.Duration{}
	// The smallest store is served twice: the second process's ratio to
	// the first, the same store and code, is the noise floor of the
	// verdicts.
	sizes := append(slices.Clone(cfg.sizes), cfg.sizes[0])
	for k, n := range sizes {
		storeDir, err := st.get(ctx, n)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("lat-%d", n)
		if k == len(cfg.sizes) {
			name += "b"
		}
		p, err := startShipped(bins.plugin, dir, name, shippedEnv(dir, name, storeDir, st.key, nil), 1)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		ts = append(ts, p.target(n))
		lats, err := sweep(ctx, ts[len(ts)-1], tmpl, 1, 0)
		if err != nil {
			return fmt.Errorf("%d names: %w", n, err)
		}
		if k == len(cfg.sizes) {
			continue
		}
		first[n] = percentile(lats, 50)
		logf("  %7s names: first read of every name: p50 %s p99 %s", label(n), fmtDur(first[n]), fmtDur(percentile(lats, 99)))
	}
	p50 := map[int]time.Duration{}
	var nullP50, twinP50 time.Duration
	for round := range cfg.rounds {
		rs, err := runMixed(ctx, ts, tmpl, 1, cfg.latWarm, cfg.latDur*time.Duration(len(ts)), uint64(100+round))
		if err != nil {
			return err
		}
		logf("  round %d null plugin:    %s", round+1, rs[0])
		if round == 0 || rs[0].P50 < nullP50 {
			nullP50 = rs[0].P50
		}
		if twin := rs[len(rs)-1]; round == 0 || twin.P50 < twinP50 {
			twinP50 = twin.P50
		}
		for k, n := range cfg.sizes {
			r := rs[k+1]
			logf("  round %d %7s names: %s", round+1, label(n), r)
			if old, ok := p50[n]; !ok || r.P50 < old {
				p50[n] = r.P50
			}
		}
	}
	rep.info("c1 Get p50, null plugin", us(nullP50), "µs", fmtDur(nullP50))
	base := p50[cfg.sizes[0]]
	noise := fmt.Sprintf("%s (second %s-name process)", fmtRatio(float64(twinP50)/float64(base)), label(cfg.sizes[0]))
	for _, n := range cfg.sizes {
		name := fmt.Sprintf("c1 Get p50, %s names", label(n))
		if n == cfg.sizes[0] {
			rep.info(name, us(p50[n]), "µs", fmtDur(p50[n]))
			continue
		}
		r := float64(p50[n]) / float64(base)
		rep.judgeNoise(name, r, "ratio", fmt.Sprintf("%s (%s)", fmtRatio(r), fmtDur(p50[n])), fmt.Sprintf("<= 1.20x %s names", label(cfg.sizes[0])), noise, r <= 1.2)
	}
	for _, n := range cfg.sizes {
		if n >= 1000 { // fewer are too few samples
			rep.info(fmt.Sprintf("c1 first read p50, %s names", label(n)), us(first[n]), "µs", fmtDur(first[n]))
		}
	}
	for k, n := range cfg.sizes {
		limit, ok := rssLimits[n]
		if !ok {
			continue
		}
		rss, hwm, err := procs[k+1].memory()
		if err != nil {
			return err
		}
		rep.atMost(fmt.Sprintf("plugin RSS, %s names", label(n)), float64(rss)/mib, limit, "MiB",
			fmt.Sprintf("%s (peak VmHWM %s)", fmtMiB(rss), fmtMiB(hwm)), fmt.Sprintf("<= %.0f MiB", limit))
	}
	for n := range rssLimits {
		if !slices.Contains(cfg.sizes, n) {
			rep.skipped(fmt.Sprintf("plugin RSS, %s names", label(n)), fmt.Sprintf("<= %.0f MiB", rssLimits[n]), "no 100,000-name store in -quick")
		}
	}
	return nil
}

// lsTargetN is the store size of the ls target.
const lsTargetN = 100000

// measureLs runs `swarmkeep ls` on the n-name store cfg.lsRuns times:
// the median wall time from exec to exit must be <= 1 s, and the listing
// must hold every name once, sorted by name.
func measureLs(ctx context.Context, cfg config, bins binaries, st *stores, n int, rep *report) error {
	storeDir, err := st.get(ctx, n)
	if err != nil {
		return err
	}
	var names []string
	ls := func() (time.Duration, error) {
		cmd := exec.CommandContext(ctx, bins.plugin, "ls", "--store", storeDir, "--key-file", st.key)
		cmd.Env = []string{}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		t0 := time.Now()
		err := cmd.Run()
		wall := time.Since(t0)
		if err != nil {
			return 0, fmt.Errorf("swarmkeep ls: %v: %s", err, strings.TrimSpace(errb.String()))
		}
		names = names[:0]
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 0 && f[0] != "NAME" {
				names = append(names, f[0])
			}
		}
		return wall, nil
	}
	// The first listing of a store reads every record and leaves the
	// listing cache; later ones read only what changed since (FORMAT.md,
	// "Listing cache"). Both are shown; the verdict is on the listing an
	// operator runs on a store in use: 1% of the names written since the
	// previous listing (the same values again, as new versions).
	if err := os.Remove(filepath.Join(storeDir, ".list-cache")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	cold, err := ls()
	if err != nil {
		return err
	}
	rep.info(fmt.Sprintf("swarmkeep ls, %s names, first listing (no listing cache)", label(n)), cold.Seconds(), "s",
		fmt.Sprintf("%s (%d lines)", fmtDur(cold), len(names)))
	var walls []time.Duration
	changed := n / 100
	for r := range cfg.lsRuns {
		if err := rewrite(ctx, storeDir, st.key, r*changed%n, changed, n); err != nil {
			return err
		}
		wall, err := ls()
		if err != nil {
			return err
		}
		walls = append(walls, wall)
	}
	slices.Sort(walls)
	med := walls[len(walls)/2]
	name := fmt.Sprintf("swarmkeep ls, %s names, %s changed since the last ls, wall time", label(n), label(changed))
	shown := fmt.Sprintf("%s (median of %d; %d lines)", fmtDur(med), len(walls), len(names))
	if n == lsTargetN {
		rep.atMost(name, med.Seconds(), 1, "s", shown, "<= 1s")
	} else {
		rep.info(name, med.Seconds(), "s", shown)
		rep.skipped(fmt.Sprintf("swarmkeep ls, %s names, %s changed since the last ls, wall time", label(lsTargetN), label(lsTargetN/100)), "<= 1s", "no 100,000-name store in -quick")
	}
	sorted := slices.IsSorted(names)
	// Every stored name once: sorted, the list is name(0)..name(n-1),
	// since the names are zero-padded.
	all := slices.Clone(names)
	slices.Sort(all)
	complete := len(all) == n
	for i := 0; complete && i < n; i++ {
		complete = all[i] == storedName(i)
	}
	shown = fmt.Sprintf("sorted=%v, %d of %d names", sorted, len(names), n)
	if !sorted {
		for i := 1; i < len(names); i++ {
			if names[i] < names[i-1] {
				shown += fmt.Sprintf("; first out of order: line %d %s after %s", i+1, names[i], names[i-1])
				break
			}
		}
	}
	rep.judge(fmt.Sprintf("swarmkeep ls, %s names, sorted and complete", label(n)), 0, "", shown, "sorted, every name once", sorted && complete)
	return nil
}

// rewrite stores names from..from+count-1 (mod n) again with their own
// values, as new versions, in one batch: a store in use, whose values stay
// what the other measurements check.
func rewrite(ctx context.Context, dir, key string, from, count, n int) error {
	m, err := store.OpenDir(dir)
	if err != nil {
		return err
	}
	defer m.Close()
	s, err := store.Open(ctx, m, store.KeyFile(key))
	if err != nil {
		return err
	}
	defer s.Close()
	pairs := make([]store.Pair, count)
	for k := range pairs {
		i := (from + k) % n
		pairs[k] = store.Pair{Name: storedName(i), Value: appendValue(nil, i)}
	}
	_, err = s.PutMany(ctx, pairs)
	return err
}

// measureStart starts the shipped binary cfg.starts times on the
// cfg.rssN-name store with default settings: the median time from exec to
// the first /Plugin.Activate answer must be <= 50 ms.
func measureStart(ctx context.Context, cfg config, bins binaries, st *stores, dir string, rep *report) error {
	storeDir, err := st.get(ctx, cfg.rssN)
	if err != nil {
		return err
	}
	var ready, gets []time.Duration
	tmpl := newBodyTemplate()
	for range cfg.starts {
		p, err := startShipped(bins.plugin, dir, "start", shippedEnv(dir, "start", storeDir, st.key, nil), 1)
		if err != nil {
			return err
		}
		ready = append(ready, p.ready)
		err = p.target(1).get(ctx, 0, tmpl.body(nil, 0), nil)
		gets = append(gets, time.Since(p.start))
		if serr := p.stop(); err == nil && serr != nil {
			err = fmt.Errorf("stop: %w", serr)
		}
		if err != nil {
			return err
		}
	}
	slices.Sort(ready)
	slices.Sort(gets)
	med := ready[len(ready)/2]
	rep.atMost(fmt.Sprintf("start to socket ready, median of %d", cfg.starts), ms(med), 50, "ms",
		fmt.Sprintf("%s (best %s; first GetSecret answered at %s, %s names)", fmtDur(med), fmtDur(ready[0]), fmtDur(gets[len(gets)/2]), label(cfg.rssN)), "<= 50 ms")
	return nil
}

// measureImport: a bulk `swarmkeep import` of >= 2,000 values/s, beside
// `swarmkeep put` once per value (a process and a durable write each), both
// on a store on disk (dir), not on a tmpfs.
func measureImport(ctx context.Context, cfg config, bins binaries, st *stores, dir string, rep *report) error {
	storeDir := filepath.Join(dir, "put-store")
	run := func(stdin []byte, args ...string) error {
		cmd := exec.CommandContext(ctx, bins.plugin, args...)
		// The operator records go to a trail of the bench's own (written,
		// as for a user, never the host's).
		cmd.Env = []string{"SWARMKEEP_AUDIT_FILE=" + filepath.Join(dir, "audit", "audit.log")}
		cmd.Stdin = bytes.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("swarmkeep %s: %v: %s", args[0], err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run(nil, "init", "--store", storeDir, "--key-file", st.key); err != nil {
		return err
	}
	t0 := time.Now()
	for i := range cfg.puts {
		if err := run(appendValue(nil, i), "put", storedName(i), "--store", storeDir, "--key-file", st.key); err != nil {
			return err
		}
	}
	took := time.Since(t0)
	rate := float64(cfg.puts) / took.Seconds()
	rep.info(fmt.Sprintf("swarmkeep put, one process per value, %d values", cfg.puts), rate, "values/s",
		fmt.Sprintf("%.0f values/s (%s each)", rate, fmtDur(took/time.Duration(cfg.puts))))
	// import: cfg.imports values as JSON Lines on stdin into a fresh store
	// on the same disk, all or nothing with one flush for the batch.
	importDir := filepath.Join(dir, "import-store")
	_ = os.RemoveAll(importDir)
	defer os.RemoveAll(importDir)
	if err := run(nil, "init", "--store", importDir, "--key-file", st.key); err != nil {
		return err
	}
	var lines []byte
	for i := range cfg.imports {
		lines = append(lines, `{"name":"`...)
		lines = append(lines, storedName(i)...)
		lines = append(lines, `","value":"`...)
		lines = append(lines, appendValue(nil, i)...)
		lines = append(lines, "\"}\n"...)
	}
	t0 = time.Now()
	if err := run(lines, "import", "--store", importDir, "--key-file", st.key); err != nil {
		return err
	}
	took = time.Since(t0)
	irate := float64(cfg.imports) / took.Seconds()
	rep.atLeast(fmt.Sprintf("swarmkeep import, %s values in one batch", label(cfg.imports)), irate, 2000, "values/s",
		fmt.Sprintf("%.0f values/s (%s in all; put: %.0f values/s)", irate, fmtDur(took), rate), ">= 2,000 values/s")
	_ = os.RemoveAll(storeDir)
	return nil
}

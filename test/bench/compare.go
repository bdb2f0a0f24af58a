package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// sliced is what alternate measured. Every target but the first has, per
// group of adjacent slices, its ratio to the first target's figure:
// throughput, CPU per request and p99.
type sliced struct {
	names  []string
	pooled []loadResult
	// cpu is each plugin process's CPU time per answered request over
	// all its slices; gen the load generator's (this process) while it
	// loaded that target.
	cpu, gen []time.Duration
	// Per target, one ratio per group (none for the first target).
	tput, cpuPer, p99 [][]float64
	// stalled counts each target's slices in which no request was
	// measured (errStalled): their groups give no ratio for that target.
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

// slice is one target's turn: its load result and the CPU time its
// plugin process and the load generator used over it.
type slice struct {
	r        loadResult
	cpu, gen time.Duration
}

// alternate loads the targets in turns of one slice each at conc, for dur
// per target and round, in groups of one slice per target. Load from
// elsewhere on the machine changes over seconds, so the slices of a group
// see the same machine; the ratios are taken within groups. The turn
// orders follow a Williams design (turnOrder), so no target always comes
// first or follows the same other one.
//
// The CPU time of the target's process (and of this one) is read from
// /proc before and after each slice and divided by every request answered
// in the slice, its 10 ms warm-up included, since the CPU time covers it.
//
// A slice that stalls (no request measured: the machine did not run the
// bench for the whole slice) is dropped and counted, and its group gives
// no ratio for that target; more than a quarter of a target's slices
// stalled fails the measurement.
func alternate(ctx context.Context, names []string, ts []target, tmpl bodyTemplate, conc int, sliceDur, dur time.Duration, rounds int) (sliced, error) {
	const sliceWarm = 10 * time.Millisecond
	k := len(ts)
	groups := max(1, int(dur/sliceDur))
	all := make([][]slice, k)
	out := sliced{names: names, tput: make([][]float64, k), cpuPer: make([][]float64, k), p99: make([][]float64, k), stalled: make([]int, k)}
	for round := range rounds {
		for p := range groups {
			g := round*groups + p
			got := make([]*slice, k)
			for _, j := range turnOrder(k, g) {
				c0, err1 := cpuTime(ts[j].pid)
				g0, err2 := cpuTime(0)
				r, err := runLoad(ctx, ts[j], tmpl, conc, sliceWarm, sliceDur, uint64(g))
				c1, err3 := cpuTime(ts[j].pid)
				g1, err4 := cpuTime(0)
				if errors.Is(err, errStalled) && ctx.Err() == nil {
					out.stalled[j]++
					continue
				}
				if err := errors.Join(err, err1, err2, err3, err4); err != nil {
					return sliced{}, fmt.Errorf("%s: %w", names[j], err)
				}
				got[j] = &slice{r: r, cpu: c1 - c0, gen: g1 - g0}
				all[j] = append(all[j], *got[j])
			}
			if got[0] == nil {
				continue
			}
			for j := 1; j < k; j++ {
				if got[j] == nil {
					continue
				}
				a, b := got[j], got[0]
				out.tput[j] = append(out.tput[j], a.r.RPS/b.r.RPS)
				out.p99[j] = append(out.p99[j], float64(a.r.P99)/float64(b.r.P99))
				if b.cpu > 0 {
					out.cpuPer[j] = append(out.cpuPer[j], (float64(a.cpu)/float64(a.r.Total))/(float64(b.cpu)/float64(b.r.Total)))
				}
			}
		}
	}
	if s := out.stalls(); s != "" {
		logf("  %s", strings.TrimPrefix(s, "; "))
	}
	for j := range k {
		if out.stalled[j] > rounds*groups/4 || (j > 0 && len(out.tput[j]) == 0) {
			return sliced{}, fmt.Errorf("%s: %d of %d slices stalled: the machine is too busy to compare", names[j], out.stalled[j], rounds*groups)
		}
		var rs []loadResult
		var cpu, gen time.Duration
		for _, s := range all[j] {
			rs = append(rs, s.r)
			cpu += s.cpu
			gen += s.gen
		}
		p := pool(rs)
		out.pooled = append(out.pooled, p)
		out.cpu = append(out.cpu, cpu/time.Duration(p.Total))
		out.gen = append(out.gen, gen/time.Duration(p.Total))
		logf("  %-7s %s; CPU/request: plugin %s, load generator %s (%d slices)", names[j], p, fmtDur(out.cpu[j]), fmtDur(out.gen[j]), len(all[j]))
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

// medianRatio is the median of per-group ratios, shown with the number of
// groups and their 10th and 90th percentiles.
func medianRatio(rs []float64) (float64, string) {
	if len(rs) == 0 {
		return 0, "no groups"
	}
	rs = slices.Clone(rs)
	slices.Sort(rs)
	m := rs[len(rs)/2]
	if len(rs)%2 == 0 {
		m = (m + rs[len(rs)/2-1]) / 2
	}
	return m, fmt.Sprintf("%s (%d groups, %.2f..%.2f)", fmtRatio(m), len(rs), rs[len(rs)/10], rs[len(rs)-1-len(rs)/10])
}

// Command bench measures what the swarm leader waits for when it asks
// swarmkeep for a secret, and what the plugin costs the host, the way
// users run it. Run it with `make bench` (go run ./test/bench [-quick]
// [-json FILE]); test/bench/README.md describes the method.
//
// Why it matters: only the swarm leader calls a secrets plugin, once per
// task that uses the secret, synchronously, while it builds the task's
// assignment, and during a node's initial sync its store writes wait too.
// The plugin's own cost is paid by the whole swarm.
//
// Three kinds of process take part, as in production:
//
//   - the shipped binary (scripts/build-rootfs.sh builds it like `make
//     build`: static, -trimpath, -s -w), run as `swarmkeep serve` with
//     every setting at its default (audit trail on, the built-in access
//     policy, log level info, serve's own GOGC) and only the paths moved
//     into the run's temp dir: SOCKET, STORE_DIR, KEY_FILE, LKG_DIR,
//     AUDIT_FILE, POLICY_FILE (absent: the default policy) and
//     METRICS_SOCKET; BACKENDS for etcd and Vault;
//   - the null plugin (test/bench/nullplugin), the smallest plugin one can
//     write with go-plugins-helpers, answering a fixed value: the
//     reference, since it costs what the plugin protocol costs;
//   - this program, the load generator, with a client built like the
//     engine's (keep-alive, the engine's request body and Accept header).
//     The fake Vault (vaulttest) runs here too: it is a backend, not a
//     plugin. etcd is a real single-member etcd (/usr/bin/etcd).
//
// Comparisons run in interleaved slices (alternate): each verdict is the
// median over groups of adjacent slices, at least 5, and a second null
// plugin process takes its turns too, so the null2/null ratio of every
// figure, the noise floor, is printed beside each verdict. CPU per request
// is read for every process from /proc/<pid>/stat.
//
// The program prints a table and `bench: N passed, M failed`, and exits 1
// when a target is missed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is what one run measures and how long.
type config struct {
	conc                 int
	tputN                int
	tputWarm, tputDur    time.Duration
	slice                time.Duration
	rounds               int
	latWarm, latDur      time.Duration
	sizes                []int
	rssN, starts, lsRuns int
	lsN, puts, imports   int
	staleDur, staleFirst time.Duration
	burst                int
}

var fullRun = config{
	conc: 8, tputN: 1000, tputWarm: 500 * time.Millisecond, tputDur: 3 * time.Second, slice: 250 * time.Millisecond, rounds: 3,
	latWarm: 300 * time.Millisecond, latDur: 2 * time.Second, sizes: []int{10, 1000, 10000, 100000},
	rssN: 10000, starts: 9, lsRuns: 3, lsN: 100000, puts: 200, imports: 10000,
	staleDur: 1500 * time.Millisecond, staleFirst: 300 * time.Millisecond, burst: 1000,
}

// quickRun is shorter (12 groups for the main comparison instead of 36)
// and has no 100,000-name store, which takes minutes to fill: its RSS is
// skipped, and ls runs on the 10,000-name store (sorted verdict only).
var quickRun = config{
	conc: 8, tputN: 1000, tputWarm: 200 * time.Millisecond, tputDur: 900 * time.Millisecond, slice: 150 * time.Millisecond, rounds: 2,
	latWarm: 100 * time.Millisecond, latDur: 500 * time.Millisecond, sizes: []int{10, 1000, 10000},
	rssN: 10000, starts: 5, lsRuns: 1, lsN: 10000, puts: 50, imports: 2000,
	staleDur: 600 * time.Millisecond, staleFirst: 200 * time.Millisecond, burst: 1000,
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func main() {
	os.Exit(run())
}

func run() int {
	quick := flag.Bool("quick", false, "short run (~1 min with -keep): shorter slices, fewer rounds, no 100,000-name store")
	jsonOut := flag.String("json", "", "also write the figures to `FILE` as JSON")
	keep := flag.String("keep", "", "fill and keep the stores in `DIR`, reusing complete ones from an earlier run")
	shm := flag.Bool("shm", true, "fill stores on /dev/shm, then copy them (fsync-free filling)")
	workers := flag.Int("workers", 8, "parallel Puts when filling a store")
	rootFlag := flag.String("root", "", "repository root (default: found from the working directory)")
	only := flag.String("only", "", "run only these measurements, e.g. `1,4`: 1 shipped vs null at c8 (file, etcd, vault), 2 cold burst, 3 backend stopped, 4 latency by size and RSS, 5 ls, 6 start, 7 put/import, 8 rootfs size")
	flag.Parse()
	want := func(m int) bool { return *only == "" || strings.Contains(*only, strconv.Itoa(m)) }

	cfg := fullRun
	if *quick {
		cfg = quickRun
	}
	rep := newReport(*quick)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := repoRoot(*rootFlag)
	if err != nil {
		logf("%v", err)
		return 2
	}
	tmp, err := os.MkdirTemp("", "swarmkeep-bench-")
	if err != nil {
		logf("%v", err)
		return 2
	}
	defer os.RemoveAll(tmp)
	storeDir := filepath.Join(tmp, "stores")
	if *keep != "" {
		if storeDir, err = filepath.Abs(*keep); err != nil {
			logf("%v", err)
			return 2
		}
	}
	st, err := newStores(storeDir, *workers, *shm, logf)
	if err != nil {
		logf("stores: %v", err)
		return 2
	}
	rep.Settings["stores"] = storeDir
	rep.Settings["run"] = fmt.Sprintf("c%d, %d names; %s slices, %s per target and round, %d rounds; latency: sizes %v, %s per size and round; %d starts; ls %d names x%d; %d puts, %d imported",
		cfg.conc, cfg.tputN, cfg.slice, cfg.tputDur, cfg.rounds, cfg.sizes, cfg.latDur, cfg.starts, cfg.lsN, cfg.lsRuns, cfg.puts, cfg.imports)

	// Build first and fill every store before measuring anything, then
	// flush dirty pages, so neither the compiler nor the writeback of a
	// fresh store runs during a measurement.
	logf("building the shipped binary (scripts/build-rootfs.sh) and the null plugin")
	bins, err := build(ctx, root, tmp)
	if err != nil {
		logf("%v", err)
		rep.failed("build", "", err)
		return finish(rep, *jsonOut)
	}
	if want(8) {
		rep.atMost("plugin rootfs size", float64(bins.rootfs)/mib, 25, "MiB", fmtMiB(bins.rootfs), "<= 25 MiB")
	}
	var sizes []int
	if want(1) {
		sizes = append(sizes, cfg.tputN)
	}
	if want(4) {
		sizes = append(sizes, cfg.sizes...)
	}
	if want(5) {
		sizes = append(sizes, cfg.lsN)
	}
	if want(6) {
		sizes = append(sizes, cfg.rssN)
	}
	for _, n := range sizes {
		if _, err := st.get(ctx, n); err != nil {
			logf("%v", err)
			rep.failed("populate", "", err)
			return finish(rep, *jsonOut)
		}
	}
	shown := fmt.Sprintf("%.1fs", st.took.Seconds())
	if st.reused > 0 {
		shown += fmt.Sprintf(" (%d reused)", st.reused)
	}
	rep.info("populate time, all stores", st.took.Seconds(), "s", shown)
	syscall.Sync()

	if want(1) || want(2) || want(3) {
		dir := filepath.Join(tmp, "remote")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			rep.failed("remote backends", "", err)
			return finish(rep, *jsonOut)
		}
		logf("remote backends: etcd (real, single member) and vault (fake), %d names each", cfg.tputN+1)
		r := newRemote(ctx, dir, st.key, cfg.tputN)
		rep.info("remote setup: etcd start, both filled", r.took.Seconds(), "s", fmt.Sprintf("%.1fs", r.took.Seconds()))
		if want(1) {
			logf("1. shipped vs null plugin at c%d, %s names: file, etcd and vault (warm cache)", cfg.conc, label(cfg.tputN))
			if err := measureThroughput(ctx, cfg, bins, st, r, tmp, rep); err != nil {
				logf("%v", err)
				rep.failed("shipped vs null at c8", "", err)
			}
		}
		if want(2) {
			logf("2. %s concurrent requests for one cold name", label(cfg.burst))
			measureHerd(ctx, cfg, bins, r, tmp, rep)
		}
		if want(3) {
			// It stops the backends: last of the remote measurements.
			logf("3. backend stopped: answers from last-known-good copies (cache_ttl %s)", staleTTL)
			measureStale(ctx, cfg, bins, r, tmp, rep)
		}
		r.close()
	}
	if want(4) {
		logf("4. Get latency at concurrency 1 by store size, then RSS")
		if err := measureScale(ctx, cfg, bins, st, tmp, rep); err != nil {
			logf("%v", err)
			rep.failed("latency by store size, RSS", "", err)
		}
	}
	if want(5) {
		logf("5. swarmkeep ls of %s names", label(cfg.lsN))
		if err := measureLs(ctx, cfg, bins, st, cfg.lsN, rep); err != nil {
			rep.failed("swarmkeep ls", "<= 1s, sorted", err)
		}
	}
	if want(6) {
		logf("6. start to socket ready, %d starts", cfg.starts)
		if err := measureStart(ctx, cfg, bins, st, tmp, rep); err != nil {
			rep.failed("start to socket ready", "<= 50 ms", err)
		}
	}
	if want(7) {
		logf("7. put, %d values, and bulk import, %d values", cfg.puts, cfg.imports)
		if err := measureImport(ctx, cfg, bins, st, tmp, rep); err != nil {
			rep.failed("swarmkeep put", "", err)
		}
	}
	return finish(rep, *jsonOut)
}

// finish prints the table, writes the JSON and returns the exit code.
func finish(rep *report, jsonOut string) int {
	rep.Seconds = time.Since(rep.Started).Seconds()
	rep.LoadAvg[1] = loadAvg()
	rep.print(os.Stdout)
	if jsonOut != "" {
		if err := rep.writeJSON(jsonOut); err != nil {
			logf("json: %v", err)
			return 2
		}
	}
	if _, failed := rep.counts(); failed > 0 {
		return 1
	}
	return 0
}

// repoRoot returns dir, or the nearest parent of the working directory
// holding go.mod.
func repoRoot(dir string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod above the working directory: use -root")
		}
		d = parent
	}
}

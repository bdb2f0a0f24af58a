#!/usr/bin/env bash
# Run every Go fuzz target of the module for a bounded time, one after another.
#
#   scripts/fuzz.sh [SECONDS]     SECONDS per target, default 10
#
# Targets are found, not listed: every `func FuzzX(f *testing.F)` in the test files `go list`
# selects for the default build (tagged suites such as e2e are left out), so a new target is
# run without editing this script. Each runs as
#   go test -run '^$' -fuzz '^FuzzX$' -fuzztime ${SECONDS}s PKG
# and a summary line is printed per target. Any failure (a crash, a broken property, a build
# error) fails the script. A failing input is written by go test to
# PKG/testdata/fuzz/FuzzX/<hash>, where every later `go test` replays it: fix the bug, keep
# the file as a regression seed, and commit both.
# Env: GO (default go), FUZZ_PARALLEL (workers per target, default: GOMAXPROCS),
# FUZZ_MINIMIZE (-fuzzminimizetime, default 2s).
set -euo pipefail

secs=${1:-10}
case $secs in
  '' | *[!0-9]* | 0) echo "usage: $0 [SECONDS]  (a whole number above 0)" >&2; exit 2 ;;
esac
GO=${GO:-go}
minimize=${FUZZ_MINIMIZE:-2s}
cd "$(dirname "$0")/.."

# "PKG DIR FILE..." per package, from go list (no build needed, tags honoured).
targets=()
while read -r pkg dir files; do
  [ -n "$files" ] || continue
  for f in $files; do
    while read -r name; do
      [ -n "$name" ] && targets+=("$pkg $name")
    done < <(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(\([A-Za-z_][A-Za-z0-9_]*\) \*testing\.F).*/\1/p' "$dir/$f")
  done
done < <($GO list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./...)

if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi

parallel=()
[ -z "${FUZZ_PARALLEL:-}" ] || parallel=(-parallel "$FUZZ_PARALLEL")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
summary=()
start=$SECONDS
for t in "${targets[@]}"; do
  pkg=${t% *}
  name=${t#* }
  t0=$SECONDS
  # Minimizing is bounded: it runs for every new interesting input as well as for a crasher,
  # and at the default 60s it ate most of a short budget.
  # Go's fuzz coordinator (go.dev/issue/75804, fixed in Go 1.27) can fail a target with a bare
  # "context deadline exceeded" at the -fuzztime boundary when a worker is still mid-call on a
  # loaded machine; it writes no failing input. Such a run, and only such a run, is tried again
  # once; a second failure, or any failure that wrote an input, fails the script.
  retried=""
  ok=0
  for try in 1 2; do
    if $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "${secs}s" -fuzzminimizetime "$minimize" \
        ${parallel[@]+"${parallel[@]}"} "$pkg" >"$log" 2>&1; then
      ok=1
      break
    fi
    if [ "$try" = 1 ] && grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'testdata/fuzz/' "$log"; then
      retried=" (tried again after Go's fuzz-deadline race, go.dev/issue/75804)"
      continue
    fi
    break
  done
  if [ $ok = 1 ]; then
    # From the last progress line, e.g. "fuzz: elapsed: 11s, execs: 56947 (2/sec), new
    # interesting: 9 (total: 61)"; its per-second figure covers only the last interval, so
    # the average is worked out here.
    stats=$(grep -E '^fuzz: elapsed: [0-9]+s, execs:' "$log" | tail -1 |
      sed -E 's/^fuzz: elapsed: ([0-9]+)s, execs: ([0-9]+) \([0-9]+\/sec\), new interesting: ([0-9]+) \(total: ([0-9]+)\).*/\1 \2 \3 \4/')
    read -r el ex ni tot <<<"${stats:-0 0 0 0}"
    summary+=("ok    $name ($pkg): $ex execs in ${el}s (~$((ex / (el > 0 ? el : 1)))/s), $ni new interesting, corpus $tot$retried")
  else
    failed=1
    summary+=("FAIL  $name ($pkg) after $((SECONDS - t0))s")
    echo "---- $name ($pkg) failed:" >&2
    tail -n 60 "$log" >&2
    crash=$(grep -oE 'testdata/fuzz/[^ ]+' "$log" | tail -1 || true)
    if [ -n "$crash" ]; then
      echo "---- failing input: $($GO list -f '{{.Dir}}' "$pkg")/$crash" >&2
      echo "     replay: $GO test -run '^${name}\$/$(basename "$crash")\$' $pkg" >&2
    fi
  fi
done

for line in "${summary[@]}"; do
  echo "fuzz: $line"
done
echo "fuzz: ${#targets[@]} targets, ${secs}s each, $((SECONDS - start))s in all: $([ $failed = 0 ] && echo PASS || echo FAIL)"
exit $failed

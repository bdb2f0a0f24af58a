#!/usr/bin/env bash
# Run govulncheck on the module against the Go vulnerability database.
#
#   scripts/vulncheck.sh GOVULNCHECK VULNDB OUTDIR
#
# GOVULNCHECK is the pinned tool (golang.org/x/vuln/cmd/govulncheck@vX), run with go run.
# The database normally comes from vuln.go.dev. Where only a Go module proxy is reachable
# (this build machine, many corporate networks), the same data is in the golang.org/x/vulndb
# module: its data/osv holds one OSV file per advisory, and scripts/vulnindex turns that
# folder into the file database govulncheck reads with -db file://. VULNDB is that module's
# version ("latest" by default: an old database silently misses new advisories).
#
# govulncheck's JSON goes through scripts/vulnfilter, which fails on every vulnerability the
# code reaches unless scripts/vulncheck.allow lists it with the reason it does not apply.
# The built database is cached in OUTDIR (by default outside the checkout, so a fresh clone
# on the same machine reuses it). When neither vuln.go.dev nor the module proxy answers, it
# prints SKIPPED and exits 0 so an offline build does not fail; it never prints a pass it did
# not run.
set -euo pipefail

tool=${1:?usage: $0 GOVULNCHECK VULNDB OUTDIR}
ver=${2:?usage: $0 GOVULNCHECK VULNDB OUTDIR}
out=${3:?usage: $0 GOVULNCHECK VULNDB OUTDIR}
go=${GO:-go}

if curl -fsS --max-time 5 -o /dev/null https://vuln.go.dev/index/db.json 2>/dev/null; then
  echo "govulncheck: database vuln.go.dev"
  $go run "$tool" -format json ./... | $go run ./scripts/vulnfilter scripts/vulncheck.allow
  exit
fi

# Outside the module, so resolving the database module leaves go.mod and go.sum alone.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! info=$(cd "$tmp" && $go mod download -json "golang.org/x/vulndb@$ver" 2>&1); then
  echo "govulncheck: SKIPPED: no vulnerability database: vuln.go.dev is unreachable and"
  echo "  the module proxy did not serve golang.org/x/vulndb@$ver:"
  echo "$info" | sed 's/^/  /' | tail -5
  exit 0
fi
dir=$(echo "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
resolved=$(echo "$info" | sed -n 's/^[[:space:]]*"Version": "\(.*\)",\{0,1\}$/\1/p')
out=$(mkdir -p "$out" && cd "$out" && pwd)
db=$out/$resolved
if [ ! -f "$db/index/db.json" ]; then
  rm -rf "$db.tmp"
  $go run ./scripts/vulnindex "$dir/data/osv" "$db.tmp"
  mv "$db.tmp" "$db"
fi
echo "govulncheck: database golang.org/x/vulndb@$resolved (data/osv, $(ls "$dir/data/osv" | wc -l) advisories)"
$go run "$tool" -db "file://$db" -format json ./... | $go run ./scripts/vulnfilter scripts/vulncheck.allow

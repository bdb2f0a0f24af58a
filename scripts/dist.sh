#!/usr/bin/env bash
# Static operator CLI binaries for registry users (make dist).
#
#   scripts/dist.sh OUTDIR [PLATFORMS]
#
# Writes OUTDIR/swarmkeep-linux-ARCH for each platform of PLATFORMS (comma-separated,
# default linux/amd64,linux/arm64) and OUTDIR/SHA256SUMS (sha256sum -c format). It is the
# same binary as the plugin's /swarmkeep (CGO off, static), so `swarmkeep init`, `put`
# and the rest need no Go on the manager: copy the file of its architecture, check it
# with sha256sum --ignore-missing -c SHA256SUMS, install it as /usr/local/bin/swarmkeep.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] && [ $# -le 2 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
out=$1
platforms=${2:-linux/amd64,linux/arm64}
mkdir -p "$out"
rm -f "$out"/swarmkeep-linux-* "$out/SHA256SUMS"
IFS=, read -r -a list <<<"$platforms"
for p in "${list[@]}"; do
  case $p in
    linux/amd64|linux/arm64|linux/ppc64le|linux/s390x|linux/riscv64) ;;
    *) echo "dist.sh: platform $p is not one of linux/amd64, linux/arm64, linux/ppc64le, linux/s390x, linux/riscv64" >&2; exit 2 ;;
  esac
  arch=${p#linux/}
  (cd "$top" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath \
    -ldflags "-s -w ${LDFLAGS:-}" -o "$out/swarmkeep-linux-$arch" ./plugin)
done
(cd "$out" && sha256sum swarmkeep-linux-* >SHA256SUMS)
cat "$out/SHA256SUMS"

#!/usr/bin/env bash
# Assemble the managed-plugin bundle OUT/{config.json,rootfs/} without docker
# build: a static swarmkeep binary, the host's CA bundle (remote backends
# speak TLS) and the empty folders the mounts need. Nothing is pulled.
# GOARCH (default: the build machine's) cross-compiles the binary for
# another architecture; the rest of the bundle is the same for every one.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/plugin}

rm -rf "$out"
mkdir -p "$out/rootfs/etc/ssl/certs" "$out/rootfs/var/lib/swarmkeep" \
  "$out/rootfs/etc/swarmkeep" "$out/rootfs/run/docker/plugins" "$out/rootfs/tmp"
chmod 1777 "$out/rootfs/tmp"
(cd "$top" && CGO_ENABLED=0 GOOS=linux GOARCH=${GOARCH:-$(go env GOARCH)} go build -trimpath -ldflags "-s -w ${LDFLAGS:-}" \
  -o "$out/rootfs/swarmkeep" ./plugin)
ca=/etc/ssl/certs/ca-certificates.crt
if [ -f "$ca" ]; then cp "$ca" "$out/rootfs/etc/ssl/certs/"; fi
cp "$top/config.json" "$out/config.json"
echo "$out"

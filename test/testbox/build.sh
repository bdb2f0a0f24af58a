#!/usr/bin/env bash
# Build the FROM-scratch test image (default tag swarmkeep-testbox:1) on the engine that
# DOCKER_HOST (or /var/run/docker.sock) points at. Nothing is pulled: the image holds only a
# static busybox, taken from Debian's busybox-static (installed when missing and root).
#   test/testbox/build.sh [TAG]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tag=${1:-swarmkeep-testbox:1}
bb=${BUSYBOX:-/bin/busybox}

static() { file -L "$1" 2>/dev/null | grep -q 'statically linked' || ! ldd "$1" >/dev/null 2>&1; }

if [ ! -x "$bb" ] || ! static "$bb"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "testbox: installing busybox-static (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2 && apt-get install -y busybox-static >&2
    bb=/bin/busybox
  fi
  [ -x "$bb" ] && static "$bb" || {
    echo "testbox: error: need a static busybox at $bb (apt-get install -y busybox-static, or set BUSYBOX=)" >&2
    exit 1
  }
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/Dockerfile"
cp "$bb" "$ctx/busybox"
chmod 0755 "$ctx/busybox"
echo "testbox: building $tag (FROM scratch + static busybox, legacy builder)" >&2
if ! out=$(DOCKER_BUILDKIT=0 docker build -q --pull=false -t "$tag" "$ctx" 2>&1); then
  printf '%s\n' "$out" >&2
  echo "testbox: error: docker build failed" >&2
  exit 1
fi
echo "$tag"

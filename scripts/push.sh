#!/usr/bin/env bash
# Push the managed plugin to a registry (make push).
#
#   scripts/push.sh REF [PLATFORMS]
#
# REF is REGISTRY/NAME:TAG. Without PLATFORMS the bundle is built for this machine and
# pushed as REF. With PLATFORMS (comma-separated, e.g. linux/amd64,linux/arm64) one
# bundle is cross-compiled per platform and pushed as REF-ARCH (NAME:TAG-amd64,
# NAME:TAG-arm64): managed plugins have no multi-architecture manifests, so each manager
# installs the tag of its own architecture (uname -m: x86_64 -> amd64, aarch64 -> arm64).
#
# docker plugin push needs a local plugin under the registry name; it is created
# disabled for the push and removed afterwards, so nothing registry-named is left on
# this engine (a plugin of the same name that existed before is refused, not replaced).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] && [ $# -le 2 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
ref=$1
platforms=${2:-}
case $ref in */*:*) ;; *) echo "push.sh: REF must be REGISTRY/NAME:TAG, got $ref" >&2; exit 2 ;; esac

# push_one REF GOARCH: build the bundle for GOARCH, create REF from it, push, remove.
push_one() {
  local r=$1 arch=$2 bundle
  bundle=$top/build/plugin-$arch
  if docker plugin inspect "$r" >/dev/null 2>&1; then
    echo "push.sh: a plugin named $r already exists on this engine; remove it first (docker plugin rm -f $r)" >&2
    return 1
  fi
  GOARCH=$arch "$top/scripts/build-rootfs.sh" "$bundle" >/dev/null
  docker plugin create "$r" "$bundle" >/dev/null
  local rc=0
  docker plugin push "$r" || rc=$?
  docker plugin rm -f "$r" >/dev/null 2>&1 || true
  [ $rc -eq 0 ] || { echo "push.sh: docker plugin push $r failed" >&2; return $rc; }
  echo "pushed $r ($arch)"
}

if [ -z "$platforms" ]; then
  push_one "$ref" "$(cd "$top" && go env GOARCH)"
  exit 0
fi
IFS=, read -r -a list <<<"$platforms"
for p in "${list[@]}"; do
  case $p in
    linux/amd64|linux/arm64|linux/ppc64le|linux/s390x|linux/riscv64) ;;
    *) echo "push.sh: platform $p is not one of linux/amd64, linux/arm64, linux/ppc64le, linux/s390x, linux/riscv64" >&2; exit 2 ;;
  esac
done
for p in "${list[@]}"; do
  arch=${p#linux/}
  push_one "$ref-$arch" "$arch"
done

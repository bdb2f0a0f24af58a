#!/usr/bin/env bash
# Private Docker engine in swarm mode, for tests and the demo.
#
#   scripts/dockerd.sh start DIR   start dockerd with all its state under DIR, wait until
#                                  it answers, init a single-node swarm on 127.0.0.1;
#                                  prints DOCKER_HOST=unix://DIR/docker.sock (only stdout line)
#   scripts/dockerd.sh env DIR     prints DOCKER_HOST=unix://DIR/docker.sock
#                                  (use: export "$(scripts/dockerd.sh env DIR)")
#   scripts/dockerd.sh stop DIR    leave the swarm, stop dockerd and its containerd, remove
#                                  leftovers and unmount everything under DIR (idempotent)
#
# The engine listens on a unix socket only (no TCP API), has no bridge, no iptables/NAT and
# no userland proxy; swarm listens on a free 127.0.0.1 port. It never touches another engine
# on the host: its data-root, exec-root, pidfile, socket and containerd live under DIR, and
# containerd namespaces are private to it. Do not attach services to overlay networks (a
# stack's default network is one): that creates the host-wide docker_gwbridge interface,
# which every engine on the host shares; use the "host" network or none. Needs root.
# Env: DOCKERD_WAIT (seconds to wait for the engine to answer, default 60);
#      SWARM_ADDR (loopback address swarm listens and advertises on, default 127.0.0.1).
#      SWARM_JOIN=TOKEN@HOST:PORT joins that swarm (a manager token makes a manager)
#      instead of initialising a new one (a multi-manager swarm on one host: give each
#      engine its own SWARM_ADDR).
#      Swarm's gossip binds SWARM_ADDR:7946 whatever the swarm port is, so two engines
#      on one host that both use 127.0.0.1 hear each other's swarm: give each engine
#      that runs at the same time its own address, e.g. 127.0.31.1.
set -euo pipefail

log() { printf 'dockerd.sh: %s\n' "$*" >&2; }
die() { printf 'dockerd.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
[ -n "$2" ] || usage
case $2 in
  /) die "refusing DIR=/" ;;
esac
[ "$cmd" != start ] || mkdir -p "$2"
dir=$(realpath -m "$2")
sock=$dir/docker.sock
pidfile=$dir/dockerd.pid
logfile=$dir/dockerd.log
host=unix://$sock
# A short tag derived from DIR keeps the containerd namespaces of parallel engines apart
# when they share a system containerd.
tag=$(printf '%s' "$dir" | cksum | cut -d' ' -f1)

dk() { DOCKER_HOST=$host timeout "${DK_TIMEOUT:-30}" docker "$@"; }

answers() {
  [ -S "$sock" ] || return 1
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 3 --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1
  else
    DK_TIMEOUT=5 dk version --format '{{.Server.Version}}' >/dev/null 2>&1
  fi
}

# pid of our dockerd, if it runs: the pidfile's pid if it really is a dockerd using DIR,
# else (pidfile lost) a dockerd whose command line names our pidfile.
ourpid() {
  local pid p
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--pidfile $pidfile "; then
    echo "$pid"
    return 0
  fi
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = dockerd ] || continue
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "--pidfile $pidfile "; then
      echo "${p#/proc/}"
      return 0
    fi
  done
  return 1
}

# Ports anything listens on or holds (TCP and UDP, v4 and v6), one per line.
used_ports() {
  if command -v ss >/dev/null 2>&1; then
    ss -Htuan 2>/dev/null | awk '{print $5}' | sed 's/.*://'
  else
    local f hex
    for f in /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6; do
      [ -r "$f" ] || continue
      while read -r _ local _; do
        hex=${local##*:}
        [[ $hex =~ ^[0-9A-Fa-f]{4}$ ]] && echo $((16#$hex))
      done <"$f"
    done
  fi | sort -un
}

free_port() {
  local used p i
  used=$(used_ports)
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 20000))
    if ! grep -qx "$p" <<<"$used"; then echo "$p"; return 0; fi
  done
  die "no free loopback port found"
}

# Install what the engine and the test image need: docker.io (dockerd, containerd, runc,
# docker CLI) and busybox-static (the test image's shell).
ensure_packages() {
  local pkgs=()
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then pkgs+=(docker.io); fi
  if ! { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }; then pkgs+=(busybox-static); fi
  [ ${#pkgs[@]} -gt 0 ] || return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${pkgs[*]} and no apt-get: install them yourself"
  log "installing ${pkgs[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2 || die "apt-get update failed"
  apt-get install -y "${pkgs[@]}" >&2 || die "apt-get install ${pkgs[*]} failed"
  command -v dockerd >/dev/null 2>&1 || die "docker.io installed but dockerd still missing"
}

swarm_state() { dk info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || true; }

start() {
  [ "$(id -u)" = 0 ] || die "starting a private dockerd needs root"
  ensure_packages
  if [ ${#sock} -gt 100 ] || [ ${#dir} -gt 60 ]; then
    die "DIR path too long for unix sockets ($dir); use a short path such as /tmp/skd-XXXX"
  fi
  mkdir -p "$dir/data" "$dir/exec"
  if pid=$(ourpid) && answers; then
    log "dockerd already running (pid $pid) at $host"
  else
    if pid=$(ourpid); then die "a dockerd (pid $pid) for $dir runs but does not answer; run: $0 stop $dir"; fi
    rm -f "$pidfile" "$sock"
    log "starting dockerd (data under $dir, log $logfile)"
    # setsid: the engine must outlive this script and not get the caller's signals.
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid dockerd \
      --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$pidfile" \
      -H "$host" \
      --containerd-namespace "sk$tag" --containerd-plugins-namespace "sk$tag-plugins" \
      --bridge none --iptables=false --ip-masq=false --userland-proxy=false \
      </dev/null >>"$logfile" 2>&1 &
    local bgpid=$! waited=0 limit=${DOCKERD_WAIT:-60}
    until answers; do
      if ! kill -0 "$bgpid" 2>/dev/null; then
        tail -n 30 "$logfile" >&2 || true
        die "dockerd exited during startup (log: $logfile)"
      fi
      if [ "$waited" -ge $((limit * 4)) ]; then
        tail -n 30 "$logfile" >&2 || true
        die "dockerd did not answer within ${limit}s (log: $logfile); stop it with: $0 stop $dir"
      fi
      sleep 0.25
      waited=$((waited + 1))
    done
    log "dockerd answers (pid $(cat "$pidfile" 2>/dev/null || echo "$bgpid"))"
  fi

  local state
  state=$(swarm_state)
  if [ "$state" != active ]; then
    local port dport
    port=$(free_port)
    dport=$(free_port)
    [ "$dport" != "$port" ] || dport=$(free_port)
    local addr=${SWARM_ADDR:-127.0.0.1}
    case $addr in 127.*) ;; *) die "SWARM_ADDR must be a loopback address (127.x.y.z), got $addr" ;; esac
    local out
    if [ -n "${SWARM_JOIN:-}" ]; then
      log "swarm join ${SWARM_JOIN#*@} from $addr:$port"
      out=$(dk swarm join --token "${SWARM_JOIN%@*}" --advertise-addr "$addr:$port" --listen-addr "$addr:$port" \
        "${SWARM_JOIN#*@}" 2>&1) || { printf '%s\n' "$out" >&2; die "docker swarm join failed (log: $logfile)"; }
      log "joined the swarm"
    else
      log "swarm init on $addr:$port"
      out=$(dk swarm init --advertise-addr "$addr" --listen-addr "$addr:$port" \
        --data-path-port "$dport" 2>&1) || { printf '%s\n' "$out" >&2; die "docker swarm init failed (log: $logfile)"; }
      log "swarm manager ready (single node)"
    fi
  else
    log "already in swarm mode"
  fi
  echo "DOCKER_HOST=$host"
}

# Processes whose command line mentions DIR (containerd, shims) excluding ourselves.
procs_under_dir() {
  local p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = $$ ] && continue
    [ "$p" = "$BASHPID" ] && continue
    if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "$dir/"; then
      case $(cat "/proc/$p/comm" 2>/dev/null) in
        containerd*|dockerd|runc) echo "$p" ;;
      esac
    fi
  done
}

wait_gone() { # pid seconds
  local i
  for i in $(seq 1 $(($2 * 10))); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

stop() {
  local pid p
  if answers; then
    if [ "$(swarm_state)" != inactive ]; then
      log "leaving the swarm"
      DK_TIMEOUT=30 dk swarm leave --force >/dev/null 2>&1 || log "swarm leave failed (continuing)"
    fi
  fi
  if pid=$(ourpid); then
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 40; then
      log "dockerd still running after 40s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 5 || true
    fi
  fi
  # Containers and plugins still running under our runc roots (only after an unclean stop).
  local root id
  for root in "$dir"/exec/runtime-*/* "$dir"/exec/*/runc/*; do
    [ -d "$root" ] || continue
    for id in $(runc --root "$root" list -q 2>/dev/null); do
      log "killing leftover container $id"
      runc --root "$root" kill "$id" KILL 2>/dev/null || true
      sleep 0.2
      runc --root "$root" delete -f "$id" 2>/dev/null || true
    done
  done
  # Our containerd and its shims.
  for p in $(procs_under_dir); do
    log "stopping leftover $(cat "/proc/$p/comm" 2>/dev/null) (pid $p)"
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in $(procs_under_dir); do
    wait_gone "$p" 10 || kill -KILL "$p" 2>/dev/null || true
  done
  # Plugin folders of this engine live under /run/docker/plugins/<id> (shared path).
  local plugdirs=()
  if [ -d "$dir/data/plugins" ]; then
    for id in "$dir"/data/plugins/*; do
      id=${id##*/}
      [[ $id =~ ^[0-9a-f]{64}$ ]] && plugdirs+=("/run/docker/plugins/$id")
    done
  fi
  # Unmount everything under DIR (and our plugin folders), deepest first.
  local m n=0
  while :; do
    mapfile -t mounts < <(awk '{print $5}' /proc/self/mountinfo | sed 's/\\040/ /g' |
      while IFS= read -r m; do
        case $m in "$dir"/*|"$dir") echo "$m" ;; esac
        for pd in "${plugdirs[@]+"${plugdirs[@]}"}"; do
          case $m in "$pd"/*|"$pd") echo "$m" ;; esac
        done
      done | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
    [ ${#mounts[@]} -gt 0 ] || break
    n=$((n + 1))
    [ $n -le 5 ] || { log "mounts left under $dir: ${mounts[*]}"; break; }
    for m in "${mounts[@]}"; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  done
  for pd in "${plugdirs[@]+"${plugdirs[@]}"}"; do rm -rf "$pd" 2>/dev/null || true; done
  rm -f "$pidfile" "$sock"
  log "stopped ($dir)"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  env) echo "DOCKER_HOST=$host" ;;
  *) usage ;;
esac

#!/usr/bin/env bash
# swarmkeep demo (make demo): store a value, serve it to a Swarm service through the plugin.
#
#   scripts/demo.sh          run the demo
#   scripts/demo.sh clean    remove what the demo created (service, secret, plugin, demo
#                            folders) and stop the private engine if the demo started one
#
# Engine: DOCKER_HOST if set, else /var/run/docker.sock; if neither answers, a private dockerd
# is started with scripts/dockerd.sh (needs root), state under $SWARMKEEP_DEMO_DIR.
# Env: SWARMKEEP_DEMO_DIR (default /tmp/swarmkeep-demo), SWARMKEEP_DEMO_PLUGIN (plugin name,
# default swarmkeep). Nothing is pulled from a registry; no port is published.
set -Eeuo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
demo=${SWARMKEEP_DEMO_DIR:-/tmp/swarmkeep-demo}
plugin=${SWARMKEEP_DEMO_PLUGIN:-swarmkeep}
secret=demo_password
service=swarmkeep-demo
image=swarmkeep-testbox:1
mark=swarmkeep-demo=1 # label on what the demo creates (not a swarmkeep.* label)
state=$demo/state     # plugin mount "state"  -> /var/lib/swarmkeep (store at state/store)
config=$demo/config   # plugin mount "config" -> /etc/swarmkeep (key file)
store=$state/store
keyfile=$config/key
cli=$demo/bin/swarmkeep
engine=$demo/engine   # private dockerd state, when the demo starts one

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
hint=""
fail() {
  printf '\ndemo: FAILED: %s\n' "$*" >&2
  [ -z "$hint" ] || printf 'hint: %s\n' "$hint" >&2
  exit 1
}
trap 'rc=$?; [ $rc -eq 0 ] || printf "\ndemo: FAILED (exit %s) at line %s: %s\n%s\n" "$rc" "$LINENO" "$BASH_COMMAND" "${hint:+hint: $hint}" >&2' ERR

answers() { timeout 10 docker version >/dev/null 2>&1; }

plugin_log_hint() {
  if [ -f "$engine/dockerd.log" ] && [ "${DOCKER_HOST:-}" = "unix://$engine/docker.sock" ]; then
    echo "plugin log: grep 'plugin=' $engine/dockerd.log | tail"
  else
    echo "plugin log: the engine's log, lines tagged plugin=<id> (e.g. journalctl -u docker | grep plugin=)"
  fi
}

# Pick the engine; start a private one when none answers.
use_engine() {
  command -v docker >/dev/null || fail "the docker CLI is not installed (apt-get install -y docker.io)"
  if [ -n "${DOCKER_HOST:-}" ]; then
    answers || fail "DOCKER_HOST=$DOCKER_HOST does not answer"
    info "using the engine at DOCKER_HOST=$DOCKER_HOST"
    return
  fi
  if [ -S "$engine/docker.sock" ] && DOCKER_HOST=unix://$engine/docker.sock answers; then
    export DOCKER_HOST=unix://$engine/docker.sock
    info "using the demo's private engine (DOCKER_HOST=$DOCKER_HOST)"
    return
  fi
  if [ -S /var/run/docker.sock ] && answers; then
    info "using the engine at /var/run/docker.sock"
    return
  fi
  [ "$(id -u)" = 0 ] || fail "no Docker engine answers and starting a private one needs root (run as root, or set DOCKER_HOST)"
  info "no Docker engine answers: starting a private one (state in $engine, nothing else touched)"
  hint="see $engine/dockerd.log"
  local envline
  envline=$("$top/scripts/dockerd.sh" start "$engine")
  export "${envline?}"
  info "private engine ready: $envline"
  hint=""
}

clean() {
  step "cleaning up the demo"
  if [ -z "${DOCKER_HOST:-}" ] && [ -S "$engine/docker.sock" ]; then
    export DOCKER_HOST=unix://$engine/docker.sock
  fi
  if answers; then
    docker service rm "$service" >/dev/null 2>&1 && info "removed service $service" || true
    for _ in $(seq 1 20); do docker secret rm "$secret" >/dev/null 2>&1 && { info "removed secret $secret"; break; }; docker secret inspect "$secret" >/dev/null 2>&1 || break; sleep 0.5; done
    if demo_plugin; then
      docker plugin disable -f "$plugin" >/dev/null 2>&1 || true
      docker plugin rm -f "$plugin" >/dev/null 2>&1 && info "removed plugin $plugin" || true
    fi
    docker image rm "$image" >/dev/null 2>&1 && info "removed image $image" || true
  fi
  if [ -f "$engine/dockerd.pid" ] || [ -d "$engine" ]; then
    "$top/scripts/dockerd.sh" stop "$engine" && info "stopped the private engine"
  fi
  rm -rf "$demo" && info "removed $demo"
  echo "demo: clean"
}

# True when the plugin exists and is the demo's own (its state mount points at our folder).
demo_plugin() {
  local mounts
  mounts=$(docker plugin inspect "$plugin" --format '{{range .Settings.Mounts}}{{.Name}}={{.Source}} {{end}}' 2>/dev/null) || return 1
  case " $mounts " in *" state=$state "*) return 0 ;; esac
  return 1
}

if [ "${1:-}" = clean ]; then clean; exit 0; fi
[ $# -eq 0 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

step "1/9 Docker engine"
use_engine

step "2/9 swarm mode"
swarm=$(docker info --format '{{.Swarm.LocalNodeState}}')
if [ "$swarm" != active ]; then
  port=$((20000 + RANDOM % 20000))
  info "engine not in swarm mode: docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:$port"
  hint="swarm init failed; init it yourself (docker swarm init) and rerun"
  docker swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$port" >/dev/null
  hint=""
fi
[ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = true ] || fail "this engine is a swarm worker; run the demo on a manager"
info "swarm manager: ok"

step "3/9 building the plugin bundle and the swarmkeep CLI"
command -v go >/dev/null || fail "Go is needed to build the plugin (https://go.dev/dl/)"
mkdir -p "$demo/bin" "$state" "$config"
hint="the plugin does not build: run 'go build ./plugin' in $top"
"$top/scripts/build-rootfs.sh" "$demo/bundle" >/dev/null
install -m 0755 "$demo/bundle/rootfs/swarmkeep" "$cli" # the CLI is the same static binary
hint=""
info "bundle: $demo/bundle (config.json + rootfs/swarmkeep)"
info "CLI:    $cli"

step "4/9 swarmkeep init (store $store, key $keyfile)"
# The plugin runs as root and refuses a store folder owned by another user (that user could
# swap files under it), so the CLI that creates the store runs as root too; with a rootless
# engine the plugin's root is this user.
if [ "$(id -u)" != 0 ] && ! docker info --format '{{.SecurityOptions}}' 2>/dev/null | grep -q rootless; then
  fail "run the demo as root (sudo make demo): the plugin runs as root and refuses a store folder owned by another user"
fi
# The CLI reads its store and key paths from these (defaults: the host's real paths).
export SWARMKEEP_STORE=$store SWARMKEEP_KEY_FILE=$keyfile SWARMKEEP_AUDIT_FILE=$state/audit/audit.log
if [ -e "$store" ] && [ -f "$keyfile" ]; then
  info "reusing the demo store from an earlier run"
else
  "$cli" init
fi

step "5/9 installing the plugin as '$plugin'"
docker service rm "$service" >/dev/null 2>&1 && info "removed old service $service" || true
for _ in $(seq 1 20); do
  docker secret inspect "$secret" >/dev/null 2>&1 || break
  docker secret rm "$secret" >/dev/null 2>&1 && { info "removed old secret $secret"; break; }
  sleep 0.5
done
if docker plugin inspect "$plugin" >/dev/null 2>&1; then
  demo_plugin || fail "a plugin named '$plugin' exists and was not created by this demo; remove it yourself or set SWARMKEEP_DEMO_PLUGIN=another-name"
  docker plugin disable -f "$plugin" >/dev/null 2>&1 || true
  docker plugin rm -f "$plugin" >/dev/null
  info "removed old plugin $plugin"
fi
docker plugin create "$plugin" "$demo/bundle" >/dev/null
docker plugin set "$plugin" "state.source=$state" "config.source=$config"
hint=$(plugin_log_hint)
docker plugin enable --timeout 30 "$plugin" >/dev/null
hint=""
docker plugin ls --filter "capability=secretprovider"

step "6/9 storing a value (from stdin) and creating the driver secret"
value="demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s' "$value" | "$cli" put "$secret"
info "stored '$secret' = $value"
docker secret create --driver "$plugin" --label "$mark" "$secret" >/dev/null
docker secret ls --filter "name=$secret"

step "7/9 building the test image $image (FROM scratch + static busybox, no pulls)"
"$top/test/testbox/build.sh" "$image" >/dev/null

step "8/9 starting service $service with --secret $secret"
docker service create --detach --no-resolve-image --name "$service" --label "$mark" \
  --secret "$secret" --restart-delay 1s --stop-grace-period 1s \
  "$image" sh -c 'trap "exit 0" TERM; sleep 86400 & wait' >/dev/null
cid=""
for i in $(seq 1 120); do
  cid=$(docker ps -q --filter "label=com.docker.swarm.service.name=$service" | head -n1)
  [ -n "$cid" ] && break
  if [ $((i % 10)) -eq 0 ]; then
    info "waiting for the task ($(docker service ps "$service" --format '{{.CurrentState}} {{.Error}}' | head -n1))"
  fi
  sleep 0.5
done
if [ -z "$cid" ]; then
  docker service ps --no-trunc "$service" >&2 || true
  hint=$(plugin_log_hint)
  fail "the service did not start within 60s"
fi
docker service ps "$service"

step "9/9 reading the value inside the container"
got=$(docker exec "$cid" cat "/run/secrets/$secret")
info "docker exec $cid cat /run/secrets/$secret"
info "-> $got"
if [ "$got" = "$value" ]; then
  echo
  echo "demo: OK: the container sees exactly the value stored with 'swarmkeep put'."
else
  fail "the container sees '$got', expected '$value'"
fi

cat <<EOF

Try it:
  ${DOCKER_HOST:+export DOCKER_HOST=$DOCKER_HOST
  }export SWARMKEEP_STORE=$store SWARMKEEP_KEY_FILE=$keyfile SWARMKEEP_AUDIT_FILE=$state/audit/audit.log
  printf 'new-value' | $cli put $secret --rollout   # store it, then roll every service that uses it
  $cli uses $secret                                  # each running task and the version it was served
  docker exec \$(docker ps -q --filter label=com.docker.swarm.service.name=$service) cat /run/secrets/$secret

Clean up (service, secret, plugin, $demo${DOCKER_HOST:+, and the private engine if the demo started it}):
  scripts/demo.sh clean
EOF

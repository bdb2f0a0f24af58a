#!/usr/bin/env bash
# Upgrade the installed plugin and keep its settings (make upgrade).
#
#   scripts/upgrade.sh NAME NEWREF      disable NAME, docker plugin upgrade it to NEWREF,
#                                       set its settings again, enable it
#   scripts/upgrade.sh --save NAME FILE write NAME's settings to FILE (0600), one
#                                       "docker plugin set" argument a line
#   scripts/upgrade.sh --apply NAME FILE set them on NAME (only those NAME's config knows)
#
# Why: docker plugin set MOUNT.source=DIR writes the folder into the plugin's config
# (the engine's Config.Mounts), and docker plugin upgrade replaces that config with the new
# version's config.json: the plugin starts with the default /var/lib/swarmkeep and
# /etc/swarmkeep again, although docker plugin inspect still shows the folders that were
# set under .Settings.Mounts. Env settings (BACKENDS, LOG_LEVEL, ...) survive an upgrade.
# So the settings are recorded before the upgrade and set again after it, unconditionally.
# The folders are read from .Config.Mounts, the ones the engine mounts: .Settings.Mounts is
# not updated by a docker plugin set made after a daemon restart, and can show old folders.
set -euo pipefail

die() { printf 'upgrade.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# save NAME FILE: the settings the operator gave (env values and mount sources).
save() {
  local name=$1 file=$2
  (umask 077 && docker plugin inspect "$name" --format \
    '{{range .Settings.Env}}{{println .}}{{end}}{{range .Config.Mounts}}{{if .Source}}{{.Name}}.source={{.Source}}{{println}}{{end}}{{end}}' \
    | sed '/^$/d' >"$file") || die "cannot read the settings of plugin $name (docker plugin inspect $name)"
}

# apply NAME FILE: docker plugin set every recorded setting NAME's config still declares
# settable; report the others (a setting a new version dropped).
apply() {
  local name=$1 file=$2 known line key args=()
  known=$(docker plugin inspect "$name" --format \
    '{{range .Config.Env}}{{.Name}}{{println}}{{end}}{{range .Config.Mounts}}{{.Name}}.source{{println}}{{end}}') ||
    die "cannot read the config of plugin $name"
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    key=${line%%=*}
    if grep -qxF -- "$key" <<<"$known"; then
      args+=("$line")
    else
      printf 'upgrade.sh: setting %s is not in the new version; not set again\n' "$key" >&2
    fi
  done <"$file"
  [ ${#args[@]} -eq 0 ] || docker plugin set "$name" "${args[@]}"
}

case ${1:-} in
  --save) [ $# -eq 3 ] || usage; save "$2" "$3"; exit 0 ;;
  --apply) [ $# -eq 3 ] || usage; apply "$2" "$3"; exit 0 ;;
  -*|"") usage ;;
esac
[ $# -eq 2 ] || usage
name=$1 ref=$2
docker plugin inspect "$name" >/dev/null 2>&1 || die "no plugin $name here; install it first (README: Install)"

tmp=$(mktemp -d /tmp/swarmkeep-upgrade.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
save "$name" "$tmp/settings"
# The mounts' host folders must exist, or enable fails with an OCI stat error.
while IFS= read -r line; do
  case $line in
    *.source=*) src=${line#*=}; [ -d "$src" ] || die "host folder $src (${line%%.source=*}) does not exist; create it (install -d -m 0700 $src) and run again" ;;
  esac
done <"$tmp/settings"

was_enabled=$(docker plugin inspect "$name" --format '{{.Enabled}}')
before=$(docker plugin inspect "$name" --format '{{.PluginReference}}')
if [ "$was_enabled" = true ]; then
  docker plugin disable "$name" >/dev/null || die "docker plugin disable $name failed (above); nothing changed"
fi
echo "upgrading $name: $before -> $ref"
# --skip-remote-check: a new tag of the same repository is not "another plugin".
if ! docker plugin upgrade --grant-all-permissions --skip-remote-check "$name" "$ref"; then
  echo "upgrade.sh: docker plugin upgrade failed; $name stays at $before" >&2
  apply "$name" "$tmp/settings"
  [ "$was_enabled" != true ] || docker plugin enable "$name" >/dev/null || true
  exit 1
fi
apply "$name" "$tmp/settings"
docker plugin enable --timeout 30 "$name" >/dev/null ||
  die "docker plugin enable $name failed (above); run swarmkeep status --plugin $name for the cause"
echo "upgraded $name to $ref with its settings:"
sed 's/^/  /' "$tmp/settings"

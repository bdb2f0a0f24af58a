package main

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/filters"
	"github.com/swarmkeep/swarmkeep/driver/server"
)

// The operator commands and the agent read and add to the plugin's audit
// trail on the host. Where it is depends on the plugin's settings: AUDIT,
// AUDIT_FILE inside the plugin, and the host folder mounted there
// (state.source, settable). One lookup serves why, uses, rollout, the
// agent and the operator records, so none of them reads a file the plugin
// never writes after `docker plugin set swarmkeep state.source=...`.

// hostAuditFile maps the plugin's AUDIT_FILE to the host through the mount
// that holds it; "" with AUDIT=off or when no mount holds it.
func hostAuditFile(p *types.Plugin) string {
	env := pluginEnv(p)
	if a := strings.ToLower(env[server.EnvAudit]); a == "off" || a == "false" {
		return ""
	}
	inside := env[server.EnvAuditFile]
	if inside == "" {
		inside = server.DefaultAuditFile
	}
	host, _ := hostPath(p, inside)
	return host
}

// isSwarmkeep tells a swarmkeep plugin, under whatever name it is
// installed, by the socket its config.json declares or its entrypoint.
func isSwarmkeep(p *types.Plugin) bool {
	if p.Config.Interface.Socket == pluginSocket {
		return true
	}
	e := p.Config.Entrypoint
	return len(e) > 0 && filepath.Base(e[0]) == "swarmkeep"
}

// pluginEnv is the plugin's settings as a map.
func pluginEnv(p *types.Plugin) map[string]string {
	env := map[string]string{}
	for _, kv := range p.Settings.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// hostPath is the host path of inside, a path in the plugin, through the
// mount with the longest destination that holds it. Config.Mounts is what
// the engine mounts (docker plugin set writes there; Settings.Mounts can be
// stale after an engine restart), so it is read first.
func hostPath(p *types.Plugin, inside string) (string, bool) {
	for _, mounts := range [][]types.PluginMount{p.Config.Mounts, p.Settings.Mounts} {
		best, found := -1, ""
		for _, m := range mounts {
			if m.Source == nil || *m.Source == "" || m.Destination == "" {
				continue
			}
			rel, err := filepath.Rel(m.Destination, inside)
			if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || len(m.Destination) <= best {
				continue
			}
			best, found = len(m.Destination), filepath.Join(*m.Source, rel)
		}
		if best >= 0 {
			return found, true
		}
	}
	return "", false
}

// pluginLister is the part of the Docker API the trail lookup needs.
type pluginLister interface {
	PluginList(ctx context.Context, filter filters.Args) (types.PluginsListResponse, error)
}

// installedTrail is the host path of the trail of the swarmkeep plugin
// installed on the engine api reaches (the enabled one first), false when
// it does not answer or no swarmkeep plugin keeps a trail on a mount.
func installedTrail(ctx context.Context, api pluginLister) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ps, err := api.PluginList(ctx, filters.NewArgs(filters.Arg("capability", "secretprovider")))
	if err != nil {
		return "", false
	}
	var found string
	for _, p := range ps {
		if !isSwarmkeep(p) {
			continue
		}
		if f := hostAuditFile(p); f != "" {
			if p.Enabled {
				return f, true
			}
			if found == "" {
				found = f
			}
		}
	}
	return found, found != ""
}

// defaultTrail resolves the trail a command was not told about: env
// SWARMKEEP_AUDIT_FILE, else the installed plugin's, else the default path.
func defaultTrail(ctx context.Context, env *cliEnv) string {
	if v := env.getenv(EnvCLIAuditFile); v != "" {
		return v
	}
	if api, err := newPluginAPI(); err == nil {
		defer api.Close()
		if f, ok := installedTrail(ctx, api); ok {
			return f
		}
	}
	return operatorTrailDefault
}

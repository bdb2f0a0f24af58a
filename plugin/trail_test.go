package main

import (
	"context"
	"testing"

	"github.com/docker/docker/api/types"
)

func trailPlugin(name string, enabled bool, socket, stateSource string, env ...string) *types.Plugin {
	src := stateSource
	p := &types.Plugin{Name: name, Enabled: enabled}
	p.Config.Interface.Socket = socket
	// The engine mounts Config.Mounts; Settings.Mounts is left stale on
	// purpose, as after an engine restart.
	p.Config.Mounts = []types.PluginMount{{Name: "state", Source: &src, Destination: "/var/lib/swarmkeep"}}
	stale := "/stale"
	p.Settings.Mounts = []types.PluginMount{{Name: "state", Source: &stale, Destination: "/var/lib/swarmkeep"}}
	p.Settings.Env = env
	return p
}

// Every command that reads or adds to the trail finds it where the plugin
// writes it: through the plugin's state mount, wherever state.source points.
func TestTrailFollowsThePluginsMount(t *testing.T) {
	f := &fakeDocker{plugins: map[string]*types.Plugin{
		"other:latest":     trailPlugin("other:latest", true, "other.sock", "/srv/other"),
		"old:latest":       trailPlugin("old:latest", false, pluginSocket, "/srv/old"),
		"swarmkeep:latest": trailPlugin("swarmkeep:latest", true, pluginSocket, "/srv/sk", "AUDIT_FILE=/var/lib/swarmkeep/trail/a.log"),
	}}
	got, ok := installedTrail(context.Background(), f)
	if !ok || got != "/srv/sk/trail/a.log" {
		t.Fatalf("installed trail = %q, %v; want the enabled swarmkeep plugin's, through Config.Mounts", got, ok)
	}
	useDocker(t, f)
	env := &cliEnv{getenv: envOf(map[string]string{})}
	if got := defaultTrail(context.Background(), env); got != "/srv/sk/trail/a.log" {
		t.Fatalf("default trail = %q", got)
	}
	var u usesFlags
	u.resolve(env)
	if u.auditFile != "/srv/sk/trail/a.log" {
		t.Fatalf("uses reads %q", u.auditFile)
	}
	env = &cliEnv{getenv: envOf(map[string]string{EnvCLIAuditFile: "/x/audit.log"})}
	if got := defaultTrail(context.Background(), env); got != "/x/audit.log" {
		t.Fatalf("env %s not preferred: %q", EnvCLIAuditFile, got)
	}
	f.plugins["swarmkeep:latest"] = trailPlugin("swarmkeep:latest", true, pluginSocket, "/srv/sk", "AUDIT=off")
	if got, ok := installedTrail(context.Background(), f); !ok || got != "/srv/old/audit/audit.log" {
		t.Fatalf("with AUDIT=off on the enabled plugin: %q, %v; want the disabled one's", got, ok)
	}
}

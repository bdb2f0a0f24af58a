package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types"
)

func withMounts(p *types.Plugin, sources map[string]string) *types.Plugin {
	for _, name := range sortedNames(sources) {
		src := sources[name]
		// What the engine mounts; .Settings.Mounts may show other folders.
		p.Config.Mounts = append(p.Config.Mounts, types.PluginMount{Name: name, Type: "bind", Source: &src})
		stale := "/var/lib/swarmkeep-stale"
		p.Settings.Mounts = append(p.Settings.Mounts, types.PluginMount{Name: name, Type: "bind", Source: &stale})
	}
	return p
}

// The state docker plugin install leaves when a host folder is missing: the
// plugin is there, disabled, and status must name the folder to create.
func TestMountProblemNamesMissingFolders(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	config := filepath.Join(dir, "config")
	if err := os.Mkdir(config, 0o700); err != nil {
		t.Fatal(err)
	}
	p := withMounts(plugin("skd:latest", false), map[string]string{"state": state, "config": config})
	err := mountProblem(p, osStat)
	if err == nil {
		t.Fatal("no problem reported for a missing state folder")
	}
	msg := err.Error()
	for _, want := range []string{"skd:latest is disabled", state, "install -d -m 0700 " + state, "docker plugin enable skd:latest"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, config) {
		t.Errorf("%q names the config folder, which exists", msg)
	}

	// Once created, the mounts are no longer the cause.
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := mountProblem(p, osStat); err != nil {
		t.Fatalf("folders exist, still: %v", err)
	}
}

func TestMountProblemFileInsteadOfFolder(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "key")
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := withMounts(plugin("swarmkeep:latest", false), map[string]string{"config": f, "state": dir})
	err := mountProblem(p, osStat)
	if err == nil || !strings.Contains(err.Error(), f) || !strings.Contains(err.Error(), "not folders") {
		t.Fatalf("got %v, want the file named as not a folder", err)
	}
}

// status shows the missing folder, not only "disabled".
func TestStatusDisabledByMissingFolder(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	p := withMounts(plugin("swarmkeep:latest", false), map[string]string{"state": missing})
	_, err := findPlugin(context.Background(), &fakeDocker{plugins: map[string]*types.Plugin{"swarmkeep:latest": p}}, "swarmkeep")
	if err == nil || !strings.Contains(err.Error(), "install -d -m 0700 "+missing) {
		t.Fatalf("got %v, want the missing folder and its fix", err)
	}
}

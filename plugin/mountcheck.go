package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/docker/docker/api/types"
)

// mountProblem explains a disabled plugin whose bind-mount sources are
// missing on this host. The engine creates none of them: docker plugin
// install (which enables) and docker plugin enable then fail with an OCI
// "stat SOURCE: no such file or directory" and leave the plugin installed
// but disabled, with nothing on it that says which folder to create. status
// runs on the manager the plugin runs on, so it can look at the host paths
// itself. stat is os.Stat outside tests. It returns nil when every source
// is there (the plugin is disabled for another reason) or cannot be
// checked by this user (a permission error is not "missing").
//
// It reads .Config.Mounts, the folders the engine mounts, and not
// .Settings.Mounts: measured on 20.10 (and so in the engine's source), a
// docker plugin set after a daemon restart, or a docker plugin upgrade,
// changes only the former, and .Settings.Mounts then shows folders that
// are not the ones used.
func mountProblem(p *types.Plugin, stat func(string) (fs.FileInfo, error)) error {
	var missing, notDir []string
	for _, m := range p.Config.Mounts {
		if m.Type != "bind" || m.Source == nil || *m.Source == "" {
			continue
		}
		src := *m.Source
		fi, err := stat(src)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, src)
		case err == nil && !fi.IsDir() && isFolderMount(m):
			notDir = append(notDir, src)
		}
	}
	switch {
	case len(missing) > 0:
		return fmt.Errorf("plugin %s is disabled and its host folder(s) %s do not exist, so docker plugin install/enable fails with \"stat …: no such file or directory\"; "+
			"fix: install -d -m 0700 %s && docker plugin enable %s",
			p.Name, strings.Join(missing, ", "), strings.Join(missing, " "), p.Name)
	case len(notDir) > 0:
		return fmt.Errorf("plugin %s is disabled and its mount source(s) %s are files, not folders; fix: point the mount at a folder (docker plugin set %s state.source=DIR config.source=DIR), then docker plugin enable %s",
			p.Name, strings.Join(notDir, ", "), p.Name, p.Name)
	}
	return nil
}

// isFolderMount: swarmkeep's mounts (state, config) are folders; a mount a
// later version declares for a single file is not judged.
func isFolderMount(m types.PluginMount) bool { return m.Name == "state" || m.Name == "config" }

// osStat is mountProblem's stat outside tests.
func osStat(p string) (fs.FileInfo, error) { return os.Stat(p) }

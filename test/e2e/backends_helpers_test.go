//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// Helpers for the remote-backend tests: plugin reconfiguration, the operator CLI against a
// BACKENDS instance, credential files in the config mount, and task waits that tolerate
// other running tasks.

// pluginEnvKeys are the plugin settings the backend tests change; they are put back as they
// were when each test ends, so the other tests see the original configuration.
var pluginEnvKeys = []string{"BACKENDS", "DEFAULT_BACKEND"}

// pluginEnv returns the plugin's current Env settings.
func pluginEnv(ctx context.Context) (map[string]string, error) {
	p, _, err := E.cli.PluginInspectWithRaw(ctx, E.plugin)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, kv := range p.Settings.Env {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out, nil
}

// setPluginEnv disables the plugin (forced: secrets refer to it), applies env and enables it
// again; the plugin keeps its id, so its log lines keep their tag.
func setPluginEnv(ctx context.Context, env map[string]string) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]string, 0, len(keys))
	for _, k := range keys {
		args = append(args, k+"="+env[k])
	}
	if err := E.cli.PluginDisable(ctx, E.plugin, pluginDisableForce); err != nil {
		return fmt.Errorf("PluginDisable %s: %w", E.plugin, err)
	}
	if err := E.cli.PluginSet(ctx, E.plugin, args); err != nil {
		return fmt.Errorf("PluginSet %q: %w", args, err)
	}
	if err := E.cli.PluginEnable(ctx, E.plugin, pluginEnableTimeout(30)); err != nil {
		return fmt.Errorf("PluginEnable %s with %q: %w", E.plugin, args, err)
	}
	p, _, err := E.cli.PluginInspectWithRaw(ctx, E.plugin)
	if err != nil {
		return err
	}
	if !p.Enabled {
		return fmt.Errorf("plugin %s not enabled after PluginEnable", E.plugin)
	}
	if p.ID != E.pluginID {
		return fmt.Errorf("plugin id changed from %.12s to %.12s", E.pluginID, p.ID)
	}
	return nil
}

// reconfigurePlugin restarts the plugin with env (keys of pluginEnvKeys) and restores the
// settings it had before when the test ends (after the test's services and secrets are
// gone, since their clean-ups are registered later and run first). It waits until each
// backend in wantReady reports ready in the plugin log.
func reconfigurePlugin(t *testing.T, env map[string]string, wantReady ...string) {
	t.Helper()
	ctx := ctxFor(t, 90*time.Second)
	before, err := pluginEnv(ctx)
	if err != nil {
		t.Fatalf("PluginInspect: %v", err)
	}
	orig := map[string]string{}
	for _, k := range pluginEnvKeys {
		orig[k] = before[k]
	}
	for k := range env {
		if _, ok := orig[k]; !ok {
			t.Fatalf("reconfigurePlugin: %s is not one of %v", k, pluginEnvKeys)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := setPluginEnv(ctx, orig); err != nil {
			t.Errorf("restoring the plugin settings %v: %v\nplugin log:\n%s", orig, err, E.pluginLogTail(20))
			return
		}
		t.Logf("plugin settings restored: %v", orig)
	})
	m := E.mark()
	if err := setPluginEnv(ctx, env); err != nil {
		t.Fatalf("%v\nplugin log:\n%s", err, E.pluginLogTail(20))
	}
	t.Logf("plugin restarted with %v", env)
	if E.dockerLog != "" {
		for _, b := range wantReady {
			waitLog(t, m, logTimeout, "backend ready", "backend="+b)
		}
	}
}

// backendCLI runs the operator CLI on backend instance name of spec (BACKENDS syntax),
// with the run's key file, and returns stdout.
func backendCLI(t *testing.T, spec, name string, stdin []byte, args ...string) string {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	full := append(append([]string{}, args...), "--backend", name, "--backends", spec)
	out, err := runCmd(ctx, E.tmp, E.cliEnv(), stdin, E.swarmkeep, full...)
	if err != nil {
		t.Fatalf("swarmkeep %s: %v", strings.Join(full, " "), err)
	}
	return out
}

// configFile writes a file under the plugin's config mount and returns its path inside the
// plugin (/etc/swarmkeep/...). The file is removed when the test ends.
func configFile(t *testing.T, rel string, content []byte) string {
	t.Helper()
	// Credentials must not leak either: the leak scan looks for them too.
	recordValue("config file "+rel, content)
	host := filepath.Join(E.configDir, rel)
	if err := os.MkdirAll(filepath.Dir(host), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host, content, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(host) })
	return "/etc/swarmkeep/" + filepath.ToSlash(rel)
}

// scaleService sets the replica count of service id.
func scaleService(t *testing.T, id string, n uint64) {
	t.Helper()
	updateService(t, id, func(s *swarm.ServiceSpec) { s.Mode.Replicated.Replicas = &n })
}

// taskIDs is the set of the tasks' ids.
func taskIDs(tasks []swarm.Task) map[string]bool {
	out := map[string]bool{}
	for _, tk := range tasks {
		out[tk.ID] = true
	}
	return out
}

// notIn returns the tasks whose id is not in old.
func notIn(tasks []swarm.Task, old map[string]bool) []swarm.Task {
	var out []swarm.Task
	for _, tk := range tasks {
		if !old[tk.ID] {
			out = append(out, tk)
		}
	}
	return out
}

// waitNewTaskFailed waits (bounded) for a task of service, not in old, that failed or was
// rejected with an error; unlike waitTaskFailed, other tasks may be running.
func waitNewTaskFailed(t *testing.T, serviceID string, old map[string]bool, timeout time.Duration) swarm.Task {
	t.Helper()
	ctx := ctxFor(t, timeout+10*time.Second)
	deadline := time.Now().Add(timeout)
	for {
		tasks, err := tasksOf(ctx, serviceID)
		if err != nil {
			t.Fatalf("TaskList: %v", err)
		}
		for _, tk := range notIn(tasks, old) {
			if (tk.Status.State == swarm.TaskStateFailed || tk.Status.State == swarm.TaskStateRejected) && tk.Status.Err != "" {
				return tk
			}
			if tk.Status.State == swarm.TaskStateRunning {
				t.Fatalf("service %.12s: new task %.12s is running, want it to fail; tasks:%s\nplugin log:\n%s",
					serviceID, tk.ID, describeTasks(tasks), E.pluginLogTail(20))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %.12s: no new failed task within %s; tasks:%s\nplugin log:\n%s", serviceID, timeout, describeTasks(tasks), E.pluginLogTail(40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

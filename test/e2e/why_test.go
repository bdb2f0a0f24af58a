//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// whyFinding is the part of swarmkeep why --format json the tests read.
type whyFinding struct {
	TaskID string `json:"task_id"`
	Secret string `json:"secret"`
	Kind   string `json:"kind"`
	Cause  string `json:"cause"`
	Fix    string `json:"fix"`
}

// why runs swarmkeep why TARGET --format json, which exits 1 when it found a
// problem, and returns the finding for task (or the first problem).
func why(t *testing.T, target, task string) whyFinding {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	out, err := runCmd(ctx, E.tmp, E.cliEnv(), nil, E.swarmkeep, "why", target, "--format", "json")
	var rep struct {
		Findings []whyFinding `json:"findings"`
	}
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
		t.Fatalf("swarmkeep why %s: %v (%v)", target, jerr, err)
	}
	for _, f := range rep.Findings {
		if f.TaskID == task || (task == "" && f.Kind != "ok" && f.Kind != "waiting_ok") {
			if err == nil {
				t.Errorf("why %s found %s and exited 0", target, f.Kind)
			}
			return f
		}
	}
	t.Fatalf("swarmkeep why %s: no finding for task %q:\n%s", target, task, out)
	return whyFinding{}
}

// restartPlugin disables (forced: secrets refer to it) and enables the plugin.
func restartPlugin(t *testing.T) {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	if err := E.cli.PluginDisable(ctx, E.plugin, pluginDisableForce); err != nil {
		t.Fatalf("disable: %v", err)
	}
	if err := E.cli.PluginEnable(ctx, E.plugin, pluginEnableTimeout(30)); err != nil {
		t.Fatalf("enable: %v\nplugin log:\n%s", err, E.pluginLogTail(10))
	}
}

// A service whose secret names a value nobody stored: docker service ps says only
// "secret <id> not found"; why names the secret, the plugin's cause and the fix, and
// swarmkeep logs finds the plugin's line for that task in the engine's log.
func TestWhyMissingValue(t *testing.T) {
	begin(t)
	name := uniq("why_missing")
	id := createSecret(t, name, nil)
	svc := svcName("whymiss")
	svcID := createService(t, svc, 1, secretRef(id, name, name))
	tk := waitTaskFailed(t, svcID, failTimeout)
	f := why(t, svc, tk.ID)
	if f.Kind != "plugin_error" || f.Secret != name || !strings.Contains(f.Cause, "not found") ||
		!strings.Contains(f.Fix, "swarmkeep put "+name) {
		t.Fatalf("why %s: %+v", svc, f)
	}
	if !needLog(t) {
		return
	}
	ctx := ctxFor(t, 30*time.Second)
	out, err := runCmd(ctx, E.tmp, nil, nil, E.swarmkeep, "logs", "--file", E.dockerLog, "--id", E.pluginID, "--since", "10m")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range strings.Split(out, "\n") {
		// TIME  warning  swarmkeep: secret 'NAME': ... task_id=ID
		if strings.Contains(l, "  warning  swarmkeep: secret '"+name+"'") && strings.Contains(l, "task_id="+tk.ID) {
			found = true
		}
	}
	if !found {
		t.Fatalf("swarmkeep logs has no warning for task %s:\n%s", tk.ID, out)
	}
}

// A disabled plugin is never asked: the engine starts the task without the secret and
// the task fails with "secret not found"; why says the plugin is disabled and how to
// enable it.
func TestWhyPluginDisabled(t *testing.T) {
	begin(t)
	name := uniq("why_disabled")
	put(t, name, []byte("why-disabled-value"))
	id := createSecret(t, name, nil)
	ctx := ctxFor(t, 60*time.Second)
	if err := E.cli.PluginDisable(ctx, E.plugin, pluginDisableForce); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := E.cli.PluginEnable(ctx, E.plugin, pluginEnableTimeout(30)); err != nil {
			t.Errorf("enabling the plugin again: %v", err)
		}
	})
	svc := svcName("whydis")
	svcID := createService(t, svc, 1, secretRef(id, name, name))
	tk := waitTaskFailed(t, svcID, failTimeout)
	f := why(t, tk.ID, tk.ID)
	if f.Kind != "plugin_disabled" || f.Secret != name || !strings.Contains(f.Fix, "docker plugin enable "+E.plugin) {
		t.Fatalf("why %s: %+v", tk.ID, f)
	}
}

// A key file that cannot open the store: enable succeeds, status says degraded with the
// cause, and why shows the plugin's answer for the failed task with that cause.
func TestWhyBrokenKeyFile(t *testing.T) {
	begin(t)
	good, err := os.ReadFile(E.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	writeKey := func(b []byte) {
		os.Chmod(E.keyFile, 0o600)
		if err := os.WriteFile(E.keyFile, b, 0o400); err != nil {
			t.Fatal(err)
		}
		os.Chmod(E.keyFile, 0o400)
	}
	writeKey([]byte("not a key\n"))
	t.Cleanup(func() {
		writeKey(good)
		restartPlugin(t)
	})
	restartPlugin(t)
	const cause = "does not hold a swarmkeep key"
	ctx := ctxFor(t, 30*time.Second)
	out, err := runCmd(ctx, E.tmp, nil, nil, E.swarmkeep, "status", "--plugin", E.plugin)
	if err == nil || !strings.Contains(out, "NOT READY") || !strings.Contains(out, cause) {
		t.Fatalf("status with a broken key: %v\n%s", err, out)
	}
	name := uniq("why_badkey")
	id := createSecret(t, name, nil)
	svc := svcName("whykey")
	svcID := createService(t, svc, 1, secretRef(id, name, name))
	tk := waitTaskFailed(t, svcID, failTimeout)
	f := why(t, svc, tk.ID)
	if f.Kind != "plugin_error" || f.Secret != name || !strings.Contains(f.Cause, cause) {
		t.Fatalf("why %s: %+v", svc, f)
	}
}

// A bad setting: the plugin stays up (serve --stay-up), so enable succeeds at once
// instead of failing with "dial unix"; status and why show the setting and the fix.
func TestWhyBadSetting(t *testing.T) {
	begin(t)
	ctx := ctxFor(t, 60*time.Second)
	if err := setPluginEnv(ctx, map[string]string{"REQUEST_TIMEOUT": "99h"}); err != nil {
		t.Fatalf("enable with a bad setting: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := setPluginEnv(ctx, map[string]string{"REQUEST_TIMEOUT": "5s"}); err != nil {
			t.Errorf("restoring REQUEST_TIMEOUT: %v", err)
		}
	})
	out, err := runCmd(ctx, E.tmp, nil, nil, E.swarmkeep, "status", "--plugin", E.plugin)
	if err == nil || !strings.Contains(out, "problem:") || !strings.Contains(out, "REQUEST_TIMEOUT") {
		t.Fatalf("status with a bad setting: %v\n%s", err, out)
	}
	name := uniq("why_badset")
	id := createSecret(t, name, nil)
	svc := svcName("whyset")
	svcID := createService(t, svc, 1, secretRef(id, name, name))
	tk := waitTaskFailed(t, svcID, failTimeout)
	f := why(t, svc, tk.ID)
	if f.Kind != "plugin_broken" || f.Secret != name || !strings.Contains(f.Cause, "REQUEST_TIMEOUT") ||
		!strings.Contains(f.Fix, "docker plugin set") {
		t.Fatalf("why %s: %+v", svc, f)
	}
}

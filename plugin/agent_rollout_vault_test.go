//go:build !novault

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// vaultPlugin is an installed swarmkeep plugin whose config mount binds
// host folder conf, with BACKENDS as given.
func vaultPlugin(conf, backends, dflt string) *types.Plugin {
	p := &types.Plugin{Name: "swarmkeep:latest", Enabled: true}
	p.Config.Interface.Socket = pluginSocket
	p.Settings.Env = []string{"BACKENDS=" + backends, "DEFAULT_BACKEND=" + dflt, "LOG_LEVEL=info"}
	state := "/var/lib/swarmkeep"
	p.Settings.Mounts = []types.PluginMount{
		{Name: "state", Source: &state, Destination: "/var/lib/swarmkeep"},
		{Name: "config", Source: &conf, Destination: "/etc/swarmkeep"},
	}
	return p
}

// TestVaultWatchUsesThePluginsSettings: the agent learns the Vault
// instances from docker plugin inspect, reads the token file the plugin
// names through the host folder of its config mount, waits out the
// instance's cache TTL, and reopens only when the settings change.
func TestVaultWatchUsesThePluginsSettings(t *testing.T) {
	fake := vaulttest.New(t)
	fake.PutKV2("", "secret", "apps/api", map[string]any{"v": "1"})
	fake.PutKV2("", "secret", "apps/api", map[string]any{"v": "2"})
	conf := t.TempDir()
	if err := os.MkdirAll(filepath.Join(conf, "vault"), 0o700); err != nil {
		t.Fatal(err)
	}
	tok := fake.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/metadata/*"}})
	if err := os.WriteFile(filepath.Join(conf, "vault", "token"), []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := "local:file vlt:vault?address=" + fake.URL + "&token_file=/etc/swarmkeep/vault/token&path_template=apps/{{.Name}}&cache_ttl=45s"
	p := vaultPlugin(conf, spec, "vlt")
	docker := &fakeDocker{plugins: map[string]*types.Plugin{p.Name: p}}
	log, hook := logtest.NewNullLogger()
	w := newVaultWatch(docker, "", log)
	opens := 0
	open := w.open
	w.open = func(ctx context.Context, s backend.Settings) (backend.Backend, error) {
		opens++
		return open(ctx, s)
	}
	defer w.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	views, err := w.views(ctx)
	if err != nil || len(views) != 1 {
		dumpLog(t, hook)
		t.Fatalf("views = %+v, %v", views, err)
	}
	v := views[0]
	rb, ok := v.Backends["vlt"]
	if v.Default != "vlt" || len(v.Plugins) != 1 || v.Plugins[0] != "swarmkeep:latest" || !ok || len(v.Backends) != 1 || rb.Settle != 45*time.Second {
		t.Fatalf("view %+v, want the plugin's vlt instance, default vlt, settle 45s", v)
	}
	path, err := rb.Meta.MetadataPath(backend.Ref{Name: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rb.Meta.LatestVersion(ctx, path); err != nil || got != 2 {
		t.Fatalf("LatestVersion through the mapped token file = %d, %v", got, err)
	}
	if _, err := w.views(ctx); err != nil || opens != 1 {
		t.Fatalf("second round: %v, %d opens; want the instance kept", err, opens)
	}

	// Settings changed (disable, set, enable): the instance is reopened;
	// a token file outside every mount cannot be read by the agent.
	p.Settings.Env[0] = "BACKENDS=" + strings.Replace(spec, "/etc/swarmkeep/vault/token", "/run/secrets/token", 1)
	views, err = w.views(ctx)
	if err != nil || len(views) != 0 || opens != 1 {
		t.Fatalf("token on no mount: views %+v, %v, %d opens", views, err, opens)
	}
	found := false
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && strings.Contains(e.Message, "not watched") && strings.Contains(errText(e), "on none of the plugin's mounts") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no warning naming the unmapped token file in %d entries", len(hook.AllEntries()))
	}
	if _, err := rb.Meta.LatestVersion(ctx, path); err == nil {
		t.Fatal("the replaced instance still answers: not closed")
	}
}

func errText(e *logrus.Entry) string {
	if err, ok := e.Data[logrus.ErrorKey].(error); ok {
		return err.Error()
	}
	return ""
}

// TestVaultWatchWithoutVault: a plugin without Vault gives no view;
// --rollout-plugin names the plugin to inspect.
func TestVaultWatchWithoutVault(t *testing.T) {
	p := vaultPlugin(t.TempDir(), "local:file", "")
	docker := &fakeDocker{plugins: map[string]*types.Plugin{p.Name: p}}
	log := logrus.New()
	log.SetOutput(io.Discard)
	w := newVaultWatch(docker, "swarmkeep", log)
	defer w.close()
	views, err := w.views(context.Background())
	if err != nil || len(views) != 0 || len(docker.asked) != 1 || docker.asked[0] != "swarmkeep" {
		t.Fatalf("views %+v, %v, asked %v", views, err, docker.asked)
	}
}

func TestAgentRolloutVaultPollFlag(t *testing.T) {
	if code, _, errOut := runCLI(t, nil, "", "agent", "--only", "rollout", "--rollout-vault-poll", "-1s"); code != 2 || !strings.Contains(errOut, "--rollout-vault-poll") {
		t.Fatalf("--rollout-vault-poll -1s: %d %q", code, errOut)
	}
}

func dumpLog(t *testing.T, h *logtest.Hook) {
	for _, e := range h.AllEntries() {
		t.Logf("%s %s %v", e.Level, e.Message, e.Data)
	}
}

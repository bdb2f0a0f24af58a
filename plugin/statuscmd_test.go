package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/filters"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
)

// fakeDocker stands in for the daemon: plugins by full name, and the names
// asked for.
type fakeDocker struct {
	plugins map[string]*types.Plugin
	err     error
	asked   []string
}

func (f *fakeDocker) PluginInspectWithRaw(_ context.Context, name string) (*types.Plugin, []byte, error) {
	f.asked = append(f.asked, name)
	if f.err != nil {
		return nil, nil, f.err
	}
	if !strings.Contains(name, ":") {
		name += ":latest" // as the daemon does
	}
	if p, ok := f.plugins[name]; ok {
		return p, nil, nil
	}
	return nil, nil, fmt.Errorf("plugin %q: %w", name, cerrdefs.ErrNotFound)
}

func (f *fakeDocker) PluginList(_ context.Context, args filters.Args) (types.PluginsListResponse, error) {
	if args.Get("capability")[0] != "secretprovider" {
		return nil, errors.New("unexpected filter")
	}
	var out types.PluginsListResponse
	for _, p := range f.plugins {
		out = append(out, p)
	}
	return out, nil
}

func (f *fakeDocker) Close() error { return nil }

func useDocker(t *testing.T, f *fakeDocker) {
	t.Helper()
	prev := newPluginAPI
	newPluginAPI = func() (pluginAPI, error) { return f, nil }
	t.Cleanup(func() { newPluginAPI = prev })
}

const pluginID = "5f1e0c3b9a7d4e2f8c6b1a0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f"

func plugin(name string, enabled bool, env ...string) *types.Plugin {
	return &types.Plugin{Name: name, ID: pluginID, Enabled: enabled, Settings: types.PluginSettings{Env: env}}
}

// healthServer serves a plugin's metrics with two backends, shared one
// failing when degraded.
func healthServer(t *testing.T, degraded bool, tcp string) string {
	t.Helper()
	m := metrics.New(metrics.Options{Version: "9.9.9", ConfigHash: "0123456789abcdef0123456789abcdef", Backends: []string{"local", "shared"},
		Policy: func() (string, string) { return "/etc/swarmkeep/policy.yaml", "sha256:abc" }})
	m.SetBackendReady("local", nil)
	if degraded {
		m.SetBackendReady("shared", fmt.Errorf("%w: dial tcp 10.0.0.1:2379: connection refused", backend.ErrCannotOpen))
	} else {
		m.SetBackendReady("shared", nil)
	}
	m.Observe(driver.Event{Request: &driver.Request{SecretName: "app_db", ServiceName: "web"}, Backend: "local",
		Class: driver.ClassNotFound, Line: "swarmkeep: secret \"app_db\": not found; fix: store it", Latency: time.Millisecond})
	m.Observe(driver.Event{Backend: "local", Class: driver.ClassOK, Latency: time.Millisecond})
	sock := filepath.Join(t.TempDir(), "m.sock")
	stop, err := metrics.Serve(context.Background(), sock, tcp, m.Handler())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	return sock
}

func TestStatusHealthy(t *testing.T) {
	sock := healthServer(t, false, "")
	out := mustRun(t, nil, "", "status", "--socket", sock)
	for _, want := range []string{"version:", "9.9.9", "config hash:", "0123456789abcdef0123456789abcdef", "status:", " ok",
		"policy:", "/etc/swarmkeep/policy.yaml (sha256:abc)",
		"local", "shared", "ready", "requests:", "2 (not_found 1, ok 1)", "not_found local service=web: swarmkeep: secret \"app_db\""} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusDegraded(t *testing.T) {
	sock := healthServer(t, true, "")
	code, out, errOut := runCLI(t, nil, "", "status", "--socket", sock)
	if code != 1 || !strings.Contains(out, "NOT READY") || !strings.Contains(out, "degraded") {
		t.Fatalf("exit %d, stdout:\n%s", code, out)
	}
	if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 ||
		!strings.Contains(errOut, "not ready: shared (") || !strings.Contains(errOut, "refused") || !strings.Contains(errOut, "fix:") {
		t.Fatalf("reason: %q", errOut)
	}

	code, out, _ = runCLI(t, nil, "", "status", "--json", "--socket", sock)
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 {
		t.Fatalf("--json: exit %d, %v:\n%s", code, err, out)
	}
	if rep.Health == nil || rep.Health.Status != metrics.StatusDegraded || rep.Plugin.Enabled != nil ||
		!strings.HasPrefix(rep.Problem, "degraded") || rep.Health.Backends["shared"].Ready {
		t.Fatalf("--json report: %+v", rep)
	}
}

func TestStatusUnreachable(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "", "status", "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != 1 || out != "" || !strings.Contains(errOut, "no metrics socket at") || !strings.Contains(errOut, "fix:") {
		t.Fatalf("exit %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "", "status", "extra"); code != 2 || !strings.Contains(errOut, "no arguments") {
		t.Fatalf("extra argument: %d %q", code, errOut)
	}
}

func TestStatusThroughDocker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	healthServer(t, false, addr)
	// The socket's host path does not exist here: status falls back to
	// METRICS_ADDR, which carries no request details.
	f := &fakeDocker{plugins: map[string]*types.Plugin{
		"swarmkeep:latest": plugin("swarmkeep:latest", true, "LOG_LEVEL=info", "METRICS_ADDR="+addr),
	}}
	useDocker(t, f)
	out := mustRun(t, nil, "", "status", "--plugin", "swarmkeep")
	if f.asked[0] != "swarmkeep" {
		t.Errorf("asked the daemon for %q", f.asked)
	}
	for _, want := range []string{"plugin:", "swarmkeep:latest", pluginID, "enabled:", "true", "health from:", addr,
		"(details on the root-only socket)", "0123456789abcdef0123456789abcdef"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ := runCLI(t, nil, "", "status", "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Plugin.ID != pluginID || rep.Via != addr ||
		rep.Plugin.Socket != "/run/docker/plugins/"+pluginID+"/swarmkeep-metrics.sock" {
		t.Fatalf("--json: exit %d %v %+v", code, err, rep)
	}
}

func TestStatusPluginProblems(t *testing.T) {
	for _, c := range []struct {
		name    string
		docker  *fakeDocker
		args    []string
		reasons []string
	}{
		{"missing", &fakeDocker{plugins: map[string]*types.Plugin{}}, nil,
			[]string{"plugin swarmkeep:latest is not installed", "fix: install"}},
		{"alias", &fakeDocker{plugins: map[string]*types.Plugin{"secrets:v2": plugin("secrets:v2", true)}}, nil,
			[]string{"secret providers here: secrets:v2", "fix: swarmkeep status --plugin secrets:v2"}},
		{"disabled", &fakeDocker{plugins: map[string]*types.Plugin{"sk:1.0": plugin("sk:1.0", false)}}, []string{"--plugin", "sk:1.0"},
			[]string{"plugin sk:1.0 is disabled", "fix: docker plugin enable sk:1.0"}},
		{"daemon down", &fakeDocker{err: errors.New("Cannot connect to the Docker daemon")}, nil,
			[]string{"cannot ask the Docker daemon", "fix: run on a manager"}},
		{"socket outside", &fakeDocker{plugins: map[string]*types.Plugin{"swarmkeep:latest": plugin("swarmkeep:latest", true, "METRICS_SOCKET=/tmp/m.sock")}}, nil,
			[]string{"METRICS_SOCKET=/tmp/m.sock is outside /run/docker/plugins", "fix: pass --socket"}},
		{"no socket", &fakeDocker{plugins: map[string]*types.Plugin{"swarmkeep:latest": plugin("swarmkeep:latest", true, "METRICS_SOCKET=stats")}}, nil,
			[]string{"/run/docker/plugins/" + pluginID + "/stats.sock", "fix:"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			useDocker(t, c.docker)
			code, _, errOut := runCLI(t, nil, "", append([]string{"status"}, c.args...)...)
			if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			for _, r := range c.reasons {
				if !strings.Contains(errOut, r) {
					t.Errorf("stderr lacks %q: %q", r, errOut)
				}
			}
		})
	}
}

// A plugin that has answered nothing yet says so, not "0 ()".
func TestStatusNoRequestsYet(t *testing.T) {
	var b strings.Builder
	printStatus(&b, statusReport{Health: &metrics.Health{Status: metrics.StatusOK}})
	if !strings.Contains(b.String(), "requests:      none yet\n") || strings.Contains(b.String(), "()") {
		t.Fatalf("printed:\n%s", b.String())
	}
}

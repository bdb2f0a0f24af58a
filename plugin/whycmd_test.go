package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/audit"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
	"github.com/swarmkeep/swarmkeep/driver/server"
)

// fakeSwarm adds services, tasks, secrets and nodes to fakeDocker.
type fakeSwarm struct {
	fakeDocker
	services map[string]swarm.Service // by ID and name
	tasks    []swarm.Task
	secrets  map[string]swarm.Secret
	leader   bool
}

func notFoundErr(what string) error { return fmt.Errorf("%s: %w", what, cerrdefs.ErrNotFound) }

func (f *fakeSwarm) TaskInspectWithRaw(_ context.Context, id string) (swarm.Task, []byte, error) {
	for _, t := range f.tasks {
		if t.ID == id {
			return t, nil, nil
		}
	}
	return swarm.Task{}, nil, notFoundErr("task " + id)
}

func (f *fakeSwarm) TaskList(_ context.Context, o swarm.TaskListOptions) ([]swarm.Task, error) {
	var out []swarm.Task
	for _, t := range f.tasks {
		if o.Filters.ExactMatch("service", t.ServiceID) {
			out = append(out, t)
		}
	}
	return out, nil
}

func (f *fakeSwarm) ServiceInspectWithRaw(_ context.Context, id string, _ swarm.ServiceInspectOptions) (swarm.Service, []byte, error) {
	if s, ok := f.services[id]; ok {
		return s, nil, nil
	}
	return swarm.Service{}, nil, notFoundErr("service " + id)
}

func (f *fakeSwarm) SecretInspectWithRaw(_ context.Context, id string) (swarm.Secret, []byte, error) {
	if s, ok := f.secrets[id]; ok {
		return s, nil, nil
	}
	return swarm.Secret{}, nil, notFoundErr("secret " + id)
}

func (f *fakeSwarm) NodeInspectWithRaw(_ context.Context, id string) (swarm.Node, []byte, error) {
	return swarm.Node{ID: id, ManagerStatus: &swarm.ManagerStatus{Leader: f.leader}}, nil, nil
}

func (f *fakeSwarm) Info(context.Context) (system.Info, error) {
	return system.Info{Swarm: swarm.Info{NodeID: "node1", ControlAvailable: true}}, nil
}

const (
	svcID    = "svc0000000000000000000001"
	secretID = "sec0000000000000000000001"
)

// newFakeSwarm: service api with one driver secret, db_pw (driver name
// driverName), and tasks as given.
func newFakeSwarm(driverName string, tasks ...swarm.Task) *fakeSwarm {
	svc := swarm.Service{ID: svcID}
	svc.Spec.Name = "api"
	sec := swarm.Secret{ID: secretID}
	sec.Spec.Name = "db_pw"
	sec.Spec.Driver = &swarm.Driver{Name: driverName}
	for i := range tasks {
		tasks[i].ServiceID = svcID
		tasks[i].Spec.ContainerSpec = &swarm.ContainerSpec{Secrets: []*swarm.SecretReference{{SecretID: secretID, SecretName: "db_pw"}}}
	}
	return &fakeSwarm{fakeDocker: fakeDocker{plugins: map[string]*types.Plugin{}},
		services: map[string]swarm.Service{svcID: svc, "api": svc}, tasks: tasks,
		secrets: map[string]swarm.Secret{secretID: sec}, leader: true}
}

func task(id string, slot int, state swarm.TaskState, err string, age time.Duration) swarm.Task {
	t := swarm.Task{ID: id, Slot: slot, DesiredState: swarm.TaskStateRunning}
	t.Meta.CreatedAt = time.Now().Add(-age)
	t.Status = swarm.TaskStatus{State: state, Err: err, Timestamp: time.Now().Add(-age)}
	return t
}

// failedTask fails as the engine says when a driver secret was left out.
func failedTask(id string, slot int, age time.Duration) swarm.Task {
	return task(id, slot, swarm.TaskStateFailed,
		"starting container failed: unable to get secret from secret store: secret "+secretID+" not found", age)
}

func useWhySwarm(t *testing.T, f *fakeSwarm, health func() (metrics.Health, error)) {
	t.Helper()
	prev, prevH := newWhyAPI, whyHealth
	newWhyAPI = func() (whyAPI, error) { return f, nil }
	whyHealth = func(context.Context, pluginAPI, string) (metrics.Health, error) {
		if health == nil {
			return metrics.Health{Status: metrics.StatusOK}, nil
		}
		return health()
	}
	t.Cleanup(func() { newWhyAPI, whyHealth = prev, prevH })
}

// skPlugin is swarmkeep installed with its state mount at stateDir.
func skPlugin(name string, enabled bool, stateDir string) *types.Plugin {
	p := &types.Plugin{Name: name, ID: pluginID, Enabled: enabled}
	p.Config.Entrypoint = []string{"/swarmkeep", "serve", "--stay-up"}
	src, cfg := stateDir, "/etc/swarmkeep"
	p.Settings.Mounts = []types.PluginMount{
		{Name: "config", Source: &cfg, Destination: "/etc/swarmkeep"},
		{Name: "state", Source: &src, Destination: "/var/lib/swarmkeep"},
	}
	p.Settings.Env = []string{"AUDIT=on", "AUDIT_FILE=/var/lib/swarmkeep/audit/audit.log"}
	return p
}

// writeTrail writes records as the plugin does, under stateDir.
func writeStateTrail(t *testing.T, stateDir string, recs ...audit.Record) {
	t.Helper()
	os.MkdirAll(filepath.Join(stateDir, "audit"), 0o700)
	var b []byte
	for _, r := range recs {
		line, _ := json.Marshal(r)
		b = append(append(b, line...), '\n')
	}
	if err := os.WriteFile(filepath.Join(stateDir, "audit", "audit.log"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func whyJSON(t *testing.T, args ...string) (int, whyReport, string) {
	t.Helper()
	code, out, errOut := runCLI(t, nil, "", append([]string{"why", "--format", "json"}, args...)...)
	var rep whyReport
	if code == 0 || code == 1 {
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("exit %d, not JSON: %v\n%s\n%s", code, err, out, errOut)
		}
	}
	return code, rep, errOut
}

// "secret <id> not found" becomes the secret's name, the plugin's answer
// for that very task from the audit trail, and its fix; an older answer for
// another task does not count.
func TestWhyPluginAnswer(t *testing.T) {
	state := t.TempDir()
	f := newFakeSwarm("swarmkeep", failedTask("task1", 1, time.Minute), task("task2", 1, swarm.TaskStateReady, "", 0))
	f.plugins["swarmkeep:latest"] = skPlugin("swarmkeep:latest", true, state)
	line := `swarmkeep: secret "db_pw": backend local: record "db_pw": not found; fix: store it on a manager with: swarmkeep put db_pw, or fix the swarmkeep.name/swarmkeep.version labels`
	ev := driver.Event{Request: &driver.Request{SecretName: "db_pw", ServiceName: "api", ServiceID: svcID, TaskID: "task1", TaskName: "api.1.task1"},
		Class: driver.ClassNotFound, Line: line, Backend: "local"}
	other := ev
	other.Request = &driver.Request{SecretName: "db_pw", ServiceName: "api", TaskID: "task0"}
	other.Class, other.Line = driver.ClassOK, ""
	writeStateTrail(t, state, audit.FromEvent(ev, time.Now().Add(-time.Minute)), audit.FromEvent(other, time.Now()))
	useWhySwarm(t, f, nil)

	code, rep, _ := whyJSON(t, "api")
	if code != 1 || rep.Service != "api" || len(rep.Findings) != 2 {
		t.Fatalf("exit %d: %+v", code, rep)
	}
	fd := rep.Findings[1]
	if fd.Kind != "plugin_error" || fd.Secret != "db_pw" || fd.SecretID != secretID || fd.Driver != "swarmkeep" ||
		fd.Cause != `secret "db_pw": backend local: record "db_pw": not found` ||
		fd.Fix != "store it on a manager with: swarmkeep put db_pw, or fix the swarmkeep.name/swarmkeep.version labels" ||
		fd.Answer == nil || fd.Answer.Class != "not_found" {
		t.Fatalf("finding %+v", fd)
	}
	if rep.Findings[0].Kind != "waiting_ok" || rep.Findings[0].TaskID != "task2" {
		t.Fatalf("newest task %+v", rep.Findings[0])
	}
	// The text: the secret, the plugin's answer, the cause and the fix.
	code, out, _ := runCLI(t, nil, "", "why", "task1")
	for _, want := range []string{"service api (", "task api.1 (task1) failed", "secret: db_pw (id sec000000000), driver swarmkeep",
		"plugin: answered error at", "cause:  secret \"db_pw\": backend local", "fix:    store it on a manager with: swarmkeep put db_pw"} {
		if !strings.Contains(out, want) {
			t.Errorf("why task1 lacks %q:\n%s", want, out)
		}
	}
	if code != 1 || strings.Contains(out, "task2") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// Where the plugin was never asked: the driver name matches no plugin
// (installed providers are named), the plugin is disabled, or it cannot
// serve (a broken setting: the cause and fix from its /health).
func TestWhyPluginNotAsked(t *testing.T) {
	state := t.TempDir()
	writeStateTrail(t, state)
	for _, tc := range []struct {
		name, driver string
		enabled      bool
		health       func() (metrics.Health, error)
		kind         string
		cause, fix   []string
	}{
		{"missing", "swarmkep", true, nil, "plugin_missing",
			[]string{"no plugin named swarmkep is installed", "about 15 s"},
			[]string{"install and enable the plugin as swarmkep on every manager", "(swarmkeep)", "docker service update --force api"}},
		{"disabled", "swarmkeep", false, nil, "plugin_disabled",
			[]string{"plugin swarmkeep is disabled"}, []string{"docker plugin enable swarmkeep"}},
		{"broken", "swarmkeep", true, func() (metrics.Health, error) {
			_, cause := server.Load(func(k string) string { return map[string]string{"REQUEST_TIMEOUT": "99h"}[k] })
			return server.NewBroken(func(string) string { return "" }, cause, nil, "test").Health(), nil
		}, "plugin_broken", []string{"plugin swarmkeep cannot serve", "REQUEST_TIMEOUT: want a duration"}, []string{server.BrokenFix}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSwarm(tc.driver, failedTask("task1", 1, time.Minute), task("task2", 2, swarm.TaskStateAssigned, "", time.Minute))
			f.plugins["swarmkeep:latest"] = skPlugin("swarmkeep:latest", tc.enabled, state)
			useWhySwarm(t, f, tc.health)
			code, rep, _ := whyJSON(t, "api")
			if code != 1 || len(rep.Findings) != 2 {
				t.Fatalf("exit %d: %+v", code, rep)
			}
			for i, fd := range rep.Findings {
				if fd.Kind != tc.kind || fd.Secret != "db_pw" || fd.Driver != tc.driver {
					t.Errorf("finding %d: %+v", i, fd)
				}
				for _, c := range tc.cause {
					if !strings.Contains(fd.Cause, c) {
						t.Errorf("finding %d cause %q lacks %q", i, fd.Cause, c)
					}
				}
				for _, c := range tc.fix {
					if !strings.Contains(fd.Fix, c) {
						t.Errorf("finding %d fix %q lacks %q", i, fd.Fix, c)
					}
				}
			}
			// The task in Assigned has no error: why says it waits.
			if !strings.HasPrefix(rep.Findings[1].Cause, "the task waits with no error: ") || rep.Findings[1].State != "assigned" {
				t.Errorf("waiting task: %+v", rep.Findings[1])
			}
		})
	}
}

// An enabled plugin with no record of the task: another manager answered,
// and why says where to look; off the leader it says so first.
func TestWhyNoAnswerHere(t *testing.T) {
	state := t.TempDir()
	writeStateTrail(t, state)
	f := newFakeSwarm("swarmkeep", failedTask("task1", 1, time.Minute))
	f.plugins["swarmkeep:latest"] = skPlugin("swarmkeep:latest", true, state)
	f.leader = false
	useWhySwarm(t, f, nil)
	code, rep, _ := whyJSON(t, "task1")
	if code != 1 || len(rep.Findings) != 1 || rep.Findings[0].Kind != "not_asked_here" ||
		!strings.Contains(rep.Findings[0].Fix, "on the manager that was leader") ||
		len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "not the leader") {
		t.Fatalf("exit %d: %+v", code, rep)
	}
	// Without a readable trail, why says so and how to read it.
	os.Remove(filepath.Join(state, "audit", "audit.log"))
	_, rep, _ = whyJSON(t, "task1")
	if fd := rep.Findings[0]; fd.Kind != "not_asked_here" || !strings.Contains(fd.Cause, "cannot be read here") || !strings.Contains(fd.Fix, "--audit-file") {
		t.Fatalf("%+v", fd)
	}
}

func TestWhyTargets(t *testing.T) {
	f := newFakeSwarm("swarmkeep", task("task1", 1, swarm.TaskStateRunning, "", time.Minute))
	f.plugins["swarmkeep:latest"] = skPlugin("swarmkeep:latest", true, t.TempDir())
	useWhySwarm(t, f, nil)
	if code, out, _ := runCLI(t, nil, "", "why", "api"); code != 0 || !strings.Contains(out, "no secret problem: the task is running") {
		t.Fatalf("running: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(t, nil, "", "why", "nosuch"); code != 1 || !strings.Contains(errOut, "no service or task nosuch; fix:") {
		t.Fatalf("unknown: exit %d %s", code, errOut)
	}
	if code, _, _ := runCLI(t, nil, "", "why"); code != 2 {
		t.Fatalf("no argument: exit %d", code)
	}
}

// The trail is found on the host through the mount that holds AUDIT_FILE.
func TestHostAuditFile(t *testing.T) {
	p := skPlugin("swarmkeep:latest", true, "/srv/sk-state")
	if got := hostAuditFile(p); got != "/srv/sk-state/audit/audit.log" {
		t.Errorf("got %q", got)
	}
	p.Settings.Env = []string{"AUDIT_FILE=/var/lib/swarmkeep/trail.log"}
	if got := hostAuditFile(p); got != "/srv/sk-state/trail.log" {
		t.Errorf("got %q", got)
	}
	p.Settings.Env = []string{"AUDIT_FILE=/elsewhere/a.log"}
	if got := hostAuditFile(p); got != "" {
		t.Errorf("outside every mount: %q", got)
	}
	p.Settings.Env = []string{"AUDIT=off"}
	if got := hostAuditFile(p); got != "" {
		t.Errorf("off: %q", got)
	}
}

func TestWhyAndLogsHelp(t *testing.T) {
	for _, c := range []string{"why", "logs"} {
		if code, usage, _ := runCLI(t, nil, "", c, "--help"); code != 0 || !strings.HasPrefix(usage, "Usage: swarmkeep "+c) {
			t.Errorf("%s --help: exit %d %q", c, code, usage)
		}
		if _, out, _ := runCLI(t, nil, "", "--help"); !strings.Contains(out, "\n  "+c+" ") {
			t.Errorf("help lacks %s", c)
		}
	}
	if code, _, errOut := runCLI(t, nil, "", "why", "api", "--format", "yaml"); code != 2 || !strings.Contains(errOut, "text or json") {
		t.Errorf("bad format: exit %d %s", code, errOut)
	}
}

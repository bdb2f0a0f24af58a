package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"
	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/swarm/rollout"
)

// Tests never reach a Docker daemon: one that needs the swarm API stands
// in for it with useSwarm.
func init() {
	newSwarmAPI = func() (swarmAPI, error) { return nil, errors.New("no Docker daemon in tests") }
}

// fakeSwarmAPI answers the listings uses and rm make; the plugin is
// installed under no name (PluginList is empty), so "swarmkeep" is used.
type fakeSwarmAPI struct {
	fakeDocker
	secrets  []swarm.Secret
	services []swarm.Service
	tasks    []swarm.Task
	updates  int
}

func (f *fakeSwarmAPI) SecretList(context.Context, swarm.SecretListOptions) ([]swarm.Secret, error) {
	return f.secrets, nil
}
func (f *fakeSwarmAPI) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	return f.services, nil
}
func (f *fakeSwarmAPI) ServiceInspectWithRaw(_ context.Context, id string, _ swarm.ServiceInspectOptions) (swarm.Service, []byte, error) {
	for _, s := range f.services {
		if s.ID == id {
			return s, nil, nil
		}
	}
	return swarm.Service{}, nil, errors.New("no such service")
}
func (f *fakeSwarmAPI) ServiceUpdate(context.Context, string, swarm.Version, swarm.ServiceSpec, swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error) {
	f.updates++
	return swarm.ServiceUpdateResponse{}, errors.New("not in this test")
}
func (f *fakeSwarmAPI) TaskList(_ context.Context, o swarm.TaskListOptions) ([]swarm.Task, error) {
	var out []swarm.Task
	for _, t := range f.tasks {
		if t.ServiceID == o.Filters.Get("service")[0] {
			out = append(out, t)
		}
	}
	return out, nil
}

func useSwarm(t *testing.T, f *fakeSwarmAPI) {
	t.Helper()
	prev := newSwarmAPI
	newSwarmAPI = func() (swarmAPI, error) { return f, nil }
	t.Cleanup(func() { newSwarmAPI = prev })
}

// webUsingAPI: service web (3 tasks, one served version 2, two version 1)
// mounts secret "api"; service prod mounts "api-prod".
func webUsingAPI(t *testing.T, env map[string]string) *fakeSwarmAPI {
	f := &fakeSwarmAPI{
		secrets: []swarm.Secret{
			{ID: "s1", Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: "api"}, Driver: &swarm.Driver{Name: "swarmkeep"}}},
			{ID: "s2", Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: "api-prod"}, Driver: &swarm.Driver{Name: "swarmkeep"}}},
		},
	}
	mount := func(id string) *swarm.ContainerSpec {
		return &swarm.ContainerSpec{Secrets: []*swarm.SecretReference{{SecretID: id, File: &swarm.SecretReferenceFileTarget{Name: "token"}}}}
	}
	f.services = []swarm.Service{
		{ID: "w1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "web", Labels: map[string]string{rollout.AutoLabel: rollout.AutoValue}}, TaskTemplate: swarm.TaskSpec{ContainerSpec: mount("s1")}}},
		{ID: "p1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "prod"}, TaskTemplate: swarm.TaskSpec{ContainerSpec: mount("s2")}}},
	}
	running := swarm.TaskStatus{State: swarm.TaskStateRunning}
	for i, id := range []string{"taskaaaaaaaaaaaa1", "taskbbbbbbbbbbbb2", "taskcccccccccccc3"} {
		f.tasks = append(f.tasks, swarm.Task{ID: id, ServiceID: "w1", Slot: i + 1, NodeID: "node1", DesiredState: swarm.TaskStateRunning, Status: running})
	}
	f.tasks = append(f.tasks, swarm.Task{ID: "taskprod", ServiceID: "p1", Slot: 1, DesiredState: swarm.TaskStateRunning, Status: running})
	trail := filepath.Join(t.TempDir(), "audit.log")
	rec := func(task, stored string, v int) string {
		return `{"v":1,"time":"2026-01-01T00:00:00Z","secret":"` + stored + `","stored":"` + stored + `","version":` + string(rune('0'+v)) +
			`,"backend":"local","task_id":"` + task + `","decision":"allow","class":"ok","cached":false,"do_not_reuse":false,"latency_ms":0.1}` + "\n"
	}
	data := rec("taskaaaaaaaaaaaa1", "api", 1) + rec("taskbbbbbbbbbbbb2", "api", 1) + rec("taskcccccccccccc3", "api", 2) + rec("taskprod", "api-prod", 5)
	if err := os.WriteFile(trail, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	env["SWARMKEEP_AUDIT_FILE"] = trail
	useSwarm(t, f)
	return f
}

func TestUsesShowsServicesTasksAndMixedVersions(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, "one", "put", "api")
	mustRun(t, env, "two", "put", "api")
	webUsingAPI(t, env)

	out := mustRun(t, env, "", "uses", "api")
	for _, want := range []string{"stored api in backend local (latest version 2", "web", "token", "1, 2  MIXED", "taskaaaaaaaa", "1 (behind)", "swarmkeep rollout api"} {
		if !strings.Contains(out, want) {
			t.Errorf("uses api lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "prod") {
		t.Errorf("uses api lists api-prod's service:\n%s", out)
	}
	// Neither stored nor a secret's: not echoed.
	if code, _, errOut := runCLI(t, env, "", "uses", "MyS3cretPassw0rd"); code != 1 || strings.Contains(errOut, "S3cret") || !strings.Contains(errOut, "not shown") {
		t.Fatalf("uses of an unknown name: %d %q", code, errOut)
	}

	var rep usesReport
	if err := json.Unmarshal([]byte(mustRun(t, env, "", "uses", "api", "--format", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Latest != 2 || len(rep.Services) != 1 || !rep.Services[0].Mixed || !rep.Services[0].Auto || len(rep.Services[0].Tasks) != 3 || rep.Services[0].Tasks[2].Version != 2 {
		t.Fatalf("json report: %+v", rep)
	}
}

func TestRmRefusesANameAServiceUses(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	for _, v := range []string{"one", "two", "three"} {
		mustRun(t, env, v, "put", "api")
	}
	mustRun(t, env, "x", "put", "unused")

	// No Docker: removed, with a note saying the check was not made.
	code, _, errOut := runCLI(t, env, "", "rm", "unused")
	if code != 0 || !strings.Contains(errOut, "could not check whether a service uses it") {
		t.Fatalf("rm without Docker: exit %d %q", code, errOut)
	}

	webUsingAPI(t, env)
	code, _, errOut = runCLI(t, env, "", "rm", "api")
	if code != 1 || !strings.Contains(errOut, "used by service(s) web") || !strings.Contains(errOut, "--force") {
		t.Fatalf("rm api: exit %d %q, want a refusal naming web", code, errOut)
	}
	if code, _, errOut = runCLI(t, env, "", "rm", "api", "--version", "3"); code != 1 || !strings.Contains(errOut, "version 3 of api") {
		t.Fatalf("rm the latest version: exit %d %q, want a refusal", code, errOut)
	}
	// An old version no secret pins goes.
	mustRun(t, env, "", "rm", "api", "--version", "1")
	mustRun(t, env, "", "rm", "api", "--force")
	if code, _, _ := runCLI(t, env, "", "get", "api"); code == 0 {
		t.Fatal("api still stored after rm --force")
	}
}

func TestRollbackPutsTheOldContentAsANewVersion(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, "good", "put", "api")
	mustRun(t, env, "bad", "put", "api")
	out := mustRun(t, env, "", "rollback", "api", "--no-rollout")
	if !strings.Contains(out, "version 3 holds the content of version 1") {
		t.Fatalf("rollback: %q", out)
	}
	if got := mustRun(t, env, "", "get", "api"); got != "good" {
		t.Fatalf("after rollback get api = %q, want good", got)
	}
	if got := mustRun(t, env, "", "get", "api", "--version", "2"); got != "bad" {
		t.Fatalf("version 2 = %q: history lost", got)
	}
	mustRun(t, env, "", "rollback", "api", "--to", "2", "--no-rollout")
	if got := mustRun(t, env, "", "get", "api"); got != "bad" {
		t.Fatalf("after rollback --to 2 get api = %q, want bad", got)
	}
	if code, _, errOut := runCLI(t, env, "", "rollback", "api", "--to", "4", "--no-rollout"); code != 2 || !strings.Contains(errOut, "already the latest") {
		t.Fatalf("rollback to the latest: exit %d %q", code, errOut)
	}
	mustRun(t, env, "x", "put", "single")
	if code, _, errOut := runCLI(t, env, "", "rollback", "single"); code != 1 || !strings.Contains(errOut, "no previous version") {
		t.Fatalf("rollback of a single version: exit %d %q", code, errOut)
	}
}

func TestRolloutDryRunChangesNothing(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, "one", "put", "api")
	f := webUsingAPI(t, env)
	out := mustRun(t, env, "", "rollout", "api", "--dry-run")
	for _, want := range []string{"would roll web (global)", "1 at a time, stop-first", "api version 1 or later", "nothing changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "prod") || f.updates != 0 {
		t.Fatalf("dry run touched prod or updated (%d):\n%s", f.updates, out)
	}
	// put --rollout of a name nobody uses stores it and says so.
	out = mustRun(t, env, "v", "put", "lonely", "--rollout")
	if !strings.Contains(out, "lonely: no service uses it") {
		t.Fatalf("put --rollout lonely: %q", out)
	}
}

// put --rollout must roll only once the change is on every manager's copy:
// the store command runs the body's follow-up after its wait, never inside
// the body, and not at all when the body failed.
func TestAfterCopiesRunsAfterTheBody(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	var order []string
	cmd := storeCommand("x", 0, "no arguments", nil, func(ctx context.Context, _ *cliEnv, _ *store.Store, _ []string) error {
		err := afterCopies(ctx, func(context.Context) error { order = append(order, "then"); return nil })
		order = append(order, "body returned")
		return err
	})
	if err := cmd(&cliEnv{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: envOf(env)}, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "body returned,then" {
		t.Fatalf("order %v: the follow-up ran inside the body", order)
	}
	order = nil
	fail := storeCommand("x", 0, "no arguments", nil, func(ctx context.Context, _ *cliEnv, _ *store.Store, _ []string) error {
		afterCopies(ctx, func(context.Context) error { order = append(order, "then"); return nil })
		return errors.New("change failed")
	})
	if err := fail(&cliEnv{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: envOf(env)}, nil); err == nil || len(order) != 0 {
		t.Fatalf("failed body: err %v, follow-up ran: %v", err, order)
	}
}

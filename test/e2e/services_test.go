//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"
)

// sleeper is the task command: a shell that exits at once on SIGTERM.
var sleeper = []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"}

// createService creates a replicated service of the test image running a sleeper with the
// given secrets; restarts are quick so failing tasks retry fast. It is removed when the test
// ends.
func createService(t *testing.T, name string, replicas uint64, secrets ...*swarm.SecretReference) string {
	t.Helper()
	return createServiceWith(t, name, replicas, nil, secrets...)
}

// createServiceWith is createService with the spec changed by mutate (when
// not nil) before creation: update config, labels, command.
func createServiceWith(t *testing.T, name string, replicas uint64, mutate func(*swarm.ServiceSpec), secrets ...*swarm.SecretReference) string {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	grace, delay := time.Second, 500*time.Millisecond
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: map[string]string{runLabel: E.runID}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: E.image, Command: sleeper, Secrets: secrets, StopGracePeriod: &grace},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &delay},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
	}
	if mutate != nil {
		mutate(&spec)
	}
	resp, err := E.cli.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{QueryRegistry: false})
	if err != nil {
		t.Fatalf("ServiceCreate %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := E.cli.ServiceRemove(ctx, resp.ID); err != nil && !cerrdefs.IsNotFound(err) {
			t.Logf("warning: removing service %s: %v", name, err)
		}
	})
	return resp.ID
}

// updateService applies mutate to the current spec of service id.
func updateService(t *testing.T, id string, mutate func(*swarm.ServiceSpec)) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	svc, _, err := E.cli.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatalf("ServiceInspect %s: %v", id, err)
	}
	spec := svc.Spec
	mutate(&spec)
	resp, err := E.cli.ServiceUpdate(ctx, id, svc.Version, spec, swarm.ServiceUpdateOptions{QueryRegistry: false})
	if err != nil {
		t.Fatalf("ServiceUpdate %s: %v", id, err)
	}
	for _, w := range resp.Warnings {
		t.Logf("ServiceUpdate warning: %s", w)
	}
}

func tasksOf(ctx context.Context, serviceID string) ([]swarm.Task, error) {
	return E.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", serviceID))})
}

func describeTasks(tasks []swarm.Task) string {
	var b strings.Builder
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Meta.CreatedAt.Before(tasks[j].Meta.CreatedAt) })
	for _, tk := range tasks {
		fmt.Fprintf(&b, "\n  task %.12s slot %d desired=%s state=%s msg=%q err=%q", tk.ID, tk.Slot, tk.DesiredState, tk.Status.State, tk.Status.Message, tk.Status.Err)
	}
	return b.String()
}

// waitRunning waits (bounded) until service has exactly n running tasks (desired running,
// state running, with a container) for which ok returns true; it returns them.
func waitRunning(t *testing.T, serviceID string, n int, timeout time.Duration, ok func(swarm.Task) bool) []swarm.Task {
	t.Helper()
	ctx := ctxFor(t, timeout+10*time.Second)
	deadline := time.Now().Add(timeout)
	var last []swarm.Task
	for {
		tasks, err := tasksOf(ctx, serviceID)
		if err != nil {
			t.Fatalf("TaskList: %v", err)
		}
		last = tasks
		var run []swarm.Task
		pending := 0
		for _, tk := range tasks {
			if tk.DesiredState != swarm.TaskStateRunning {
				continue
			}
			if tk.Status.State == swarm.TaskStateRunning && tk.Status.ContainerStatus != nil &&
				tk.Status.ContainerStatus.ContainerID != "" && (ok == nil || ok(tk)) {
				run = append(run, tk)
			} else {
				pending++
			}
		}
		if len(run) == n && pending == 0 {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %.12s: want %d running tasks within %s; tasks:%s\nplugin log:\n%s",
				serviceID, n, timeout, describeTasks(last), E.pluginLogTail(40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitTaskFailed waits (bounded) for a task of service that failed or was rejected with a
// non-empty error, and returns it.
func waitTaskFailed(t *testing.T, serviceID string, timeout time.Duration) swarm.Task {
	t.Helper()
	ctx := ctxFor(t, timeout+10*time.Second)
	deadline := time.Now().Add(timeout)
	for {
		tasks, err := tasksOf(ctx, serviceID)
		if err != nil {
			t.Fatalf("TaskList: %v", err)
		}
		for _, tk := range tasks {
			if (tk.Status.State == swarm.TaskStateFailed || tk.Status.State == swarm.TaskStateRejected) && tk.Status.Err != "" {
				return tk
			}
			if tk.Status.State == swarm.TaskStateRunning {
				t.Fatalf("service %.12s: task %.12s is running, want it to fail; tasks:%s", serviceID, tk.ID, describeTasks(tasks))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %.12s: no failed task within %s; tasks:%s\nplugin log:\n%s", serviceID, timeout, describeTasks(tasks), E.pluginLogTail(40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// execIn runs cmd in container id and returns stdout, stderr and the exit code.
func execIn(t *testing.T, id string, cmd ...string) ([]byte, []byte, int) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	ex, err := E.cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec create in %.12s: %v", id, err)
	}
	att, err := E.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec attach: %v", err)
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		t.Fatalf("exec output: %v", err)
	}
	for {
		insp, err := E.cli.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			t.Fatalf("exec inspect: %v", err)
		}
		if !insp.Running {
			return stdout.Bytes(), stderr.Bytes(), insp.ExitCode
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containerOf(t *testing.T, tk swarm.Task) string {
	t.Helper()
	if tk.Status.ContainerStatus == nil || tk.Status.ContainerStatus.ContainerID == "" {
		t.Fatalf("task %.12s has no container", tk.ID)
	}
	return tk.Status.ContainerStatus.ContainerID
}

// readSecretFile returns /run/secrets/<target> as seen inside the task's container.
func readSecretFile(t *testing.T, tk swarm.Task, target string) []byte {
	t.Helper()
	out, errOut, code := execIn(t, containerOf(t, tk), "cat", "/run/secrets/"+target)
	if code != 0 {
		t.Fatalf("task %.12s: cat /run/secrets/%s: exit %d: %s", tk.ID, target, code, errOut)
	}
	return out
}

// assertSecretInTasks checks that every task sees exactly want at /run/secrets/<target>.
// want is recorded for the leak scan: it covers values seeded straight into a remote backend.
func assertSecretInTasks(t *testing.T, tasks []swarm.Task, target string, want []byte) {
	t.Helper()
	recordValue("served at /run/secrets/"+target, want)
	for _, tk := range tasks {
		got := readSecretFile(t, tk, target)
		if !bytes.Equal(got, want) {
			t.Errorf("task %.12s /run/secrets/%s = %q, want %q", tk.ID, target, got, want)
		}
	}
}

func hasSecret(tk swarm.Task, secretID string) bool {
	if tk.Spec.ContainerSpec == nil {
		return false
	}
	for _, s := range tk.Spec.ContainerSpec.Secrets {
		if s.SecretID == secretID {
			return true
		}
	}
	return false
}

// ---- plugin log (lines of the engine log tagged plugin=<id>) ----

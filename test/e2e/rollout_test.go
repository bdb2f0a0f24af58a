//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// rolloutTimeout bounds a rollout of a few replicas in these tests; the bound
// each test asserts is its own.
const rolloutTimeout = 90 * time.Second

// auditFile is the plugin's audit trail on this host (AUDIT_FILE under the state mount).
func (e *env) auditFile() string { return filepath.Join(e.stateDir, "audit", "audit.log") }

// rolloutEnv is the CLI's environment for commands that talk to Docker and read the trail.
func rolloutEnv() []string {
	return append(E.cliEnv(), "SWARMKEEP_AUDIT_FILE="+E.auditFile())
}

// swarmkeepCmd runs the CLI with the rollout environment; it returns stdout, stderr and
// the run error (an *exec.ExitError on a non-zero exit).
func swarmkeepCmd(t *testing.T, stdin []byte, args ...string) (string, string, error) {
	t.Helper()
	ctx := ctxFor(t, rolloutTimeout+30*time.Second)
	cmd := exec.CommandContext(ctx, E.swarmkeep, args...)
	cmd.Dir, cmd.Env = E.tmp, append(os.Environ(), rolloutEnv()...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// startFirst is an update config that replaces n tasks at a time, each new one started
// before its old one stops, and a short monitor so the tests stay quick.
func startFirst(n uint64, failure string) func(*swarm.ServiceSpec) {
	return func(s *swarm.ServiceSpec) {
		s.UpdateConfig = &swarm.UpdateConfig{Parallelism: n, Order: swarm.UpdateOrderStartFirst, Monitor: time.Second, FailureAction: failure}
		s.RollbackConfig = &swarm.UpdateConfig{Parallelism: n, Order: swarm.UpdateOrderStartFirst, Monitor: time.Second}
	}
}

// sampleRunning counts the service's running tasks every 100ms until stop is closed,
// and returns the smallest count seen and the number of samples.
func sampleRunning(serviceID string, stop <-chan struct{}) (minRunning, samples int) {
	minRunning = -1
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		tasks, err := tasksOf(ctx, serviceID)
		cancel()
		if err == nil {
			n := 0
			for _, tk := range tasks {
				if tk.Status.State == swarm.TaskStateRunning {
					n++
				}
			}
			if minRunning < 0 || n < minRunning {
				minRunning = n
			}
			samples++
		}
		select {
		case <-stop:
			return minRunning, samples
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// A put --rollout replaces every task of a 6-replica start-first service with one
// served the new version, never running fewer than 6; a service using the longer
// name api-prod is untouched.
func TestRolloutStartFirstKeepsReplicasAndSparesPrefixNames(t *testing.T) {
	begin(t)
	name := uniq("api")
	prodName := name + "-prod"
	put(t, name, []byte(name+"=v1"))
	put(t, prodName, []byte(prodName+"=1"))
	id := createSecret(t, name, nil)
	prodID := createSecret(t, prodName, nil)
	svc := createServiceWith(t, svcName("roll"), 6, startFirst(2, swarm.UpdateFailureActionPause), secretRef(id, name, "v"))
	prod := createServiceWith(t, svcName("rollprod"), 1, startFirst(1, ""), secretRef(prodID, prodName, "v"))
	tasks := waitRunning(t, svc, 6, startTimeout, nil)
	assertSecretInTasks(t, tasks, "v", []byte(name+"=v1"))
	prodBefore := taskIDs(waitRunning(t, prod, 1, startTimeout, nil))

	// A put alone, then a replica that crashes: it comes back with version 2, the
	// others keep version 1, and uses says the service is mixed.
	put(t, name, []byte(name+"=v2"))
	ctx := ctxFor(t, 30*time.Second)
	if err := E.cli.ContainerKill(ctx, containerOf(t, tasks[0]), "KILL"); err != nil {
		t.Fatalf("killing a replica: %v", err)
	}
	tasks = waitRunning(t, svc, 6, startTimeout, func(tk swarm.Task) bool { return tk.ID != tasks[0].ID })
	if rep := usesJSON(t, name); len(rep.Services) != 1 || !rep.Services[0].Mixed || len(rep.Services[0].Versions) != 2 {
		t.Errorf("uses after a crashed replica came back on version 2: %+v, want one service, mixed 1 and 2", rep)
	}
	// rm refuses a name a service uses.
	if out, errOut, err := swarmkeepCmd(t, nil, "rm", name, "--plugin", E.plugin); err == nil || !strings.Contains(errOut, "used by service(s) "+svcName("roll")) {
		t.Errorf("rm of a used name: %v\n%s%s", err, out, errOut)
	}

	stop := make(chan struct{})
	var minRunning, samples int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); minRunning, samples = sampleRunning(svc, stop) }()
	recordValue("put "+name, []byte(name+"=v3"))
	start := time.Now()
	out, errOut, err := swarmkeepCmd(t, []byte(name+"=v3"), "put", name, "--rollout", "--plugin", E.plugin, "--timeout", rolloutTimeout.String())
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("put --rollout: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	t.Logf("put --rollout of 6 start-first replicas took %s; running replicas never below %d over %d samples", took.Round(time.Millisecond), minRunning, samples)
	if minRunning < 6 || samples < 3 {
		t.Errorf("running replicas dropped to %d during the rollout (%d samples), want never below 6\n%s", minRunning, samples, out)
	}
	after := waitRunning(t, svc, 6, startTimeout, nil)
	for _, tk := range after {
		if taskIDs(tasks)[tk.ID] {
			t.Errorf("task %.12s was not replaced", tk.ID)
		}
	}
	assertSecretInTasks(t, after, "v", []byte(name+"=v3"))
	if got := taskIDs(waitRunning(t, prod, 1, startTimeout, nil)); !equalSets(got, prodBefore) {
		t.Errorf("service using %s was rolled by a rollout of %s", prodName, name)
	}
	if strings.Contains(out, svcName("rollprod")) {
		t.Errorf("rollout output names the api-prod service:\n%s", out)
	}

	// uses: the service, every task on version 3, nothing mixed, not api-prod's service.
	if rep := usesJSON(t, name); rep.Latest != 3 || len(rep.Services) != 1 || rep.Services[0].Name != svcName("roll") || rep.Services[0].Mixed ||
		len(rep.Services[0].Versions) != 1 || rep.Services[0].Versions[0] != 3 || len(rep.Services[0].Tasks) != 6 {
		t.Errorf("uses %s after the rollout: %+v", name, rep)
	}
}

type usesDoc struct {
	Latest   uint64
	Services []struct {
		Name     string
		Mixed    bool
		Versions []uint64
		Tasks    []struct{ ID string }
	}
}

// usesJSON runs swarmkeep uses NAME --format json.
func usesJSON(t *testing.T, name string) usesDoc {
	t.Helper()
	js, errOut, err := swarmkeepCmd(t, nil, "uses", name, "--format", "json", "--plugin", E.plugin)
	if err != nil {
		t.Fatalf("uses: %v: %s", err, errOut)
	}
	var rep usesDoc
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("uses --format json: %v\n%s", err, js)
	}
	return rep
}

// A value that makes the task exit fails the update; the service rolls itself back
// (FailureAction rollback) and rollout exits non-zero naming it. swarmkeep rollback then
// brings the old value back to every task.
func TestRolloutOfABadValueRollsBackThenRollbackRestores(t *testing.T) {
	begin(t)
	name := uniq("fragile")
	put(t, name, []byte(name+"=good"))
	id := createSecret(t, name, nil)
	svcN := svcName("fragile")
	svc := createServiceWith(t, svcN, 2, func(s *swarm.ServiceSpec) {
		startFirst(1, swarm.UpdateFailureActionRollback)(s)
		// Swarm counts a failure only within the monitor window from a task's
		// creation: long enough for a container to start on a loaded machine.
		s.UpdateConfig.Monitor = 5 * time.Second
		s.TaskTemplate.ContainerSpec.Command = []string{"sh", "-c", "if grep -q =bad /run/secrets/v; then exit 1; fi; trap 'exit 0' TERM; sleep 3600 & wait"}
	}, secretRef(id, name, "v"))
	assertSecretInTasks(t, waitRunning(t, svc, 2, startTimeout, nil), "v", []byte(name+"=good"))

	put(t, name, []byte(name+"=bad"))
	out, errOut, err := swarmkeepCmd(t, nil, "rollout", name, "--plugin", E.plugin, "--timeout", rolloutTimeout.String())
	if err == nil {
		t.Fatalf("rollout of a value the tasks exit on succeeded:\n%s", out)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("rollout: %v, want exit 1", err)
	}
	if !strings.Contains(errOut, "service "+svcN+" rolled itself back") || !strings.Contains(errOut, "swarmkeep rollback") {
		t.Fatalf("rollout error does not name the service's rollback and the fix:\n%s", errOut)
	}

	out, errOut, err = swarmkeepCmd(t, nil, "rollback", name, "--plugin", E.plugin, "--timeout", rolloutTimeout.String())
	if err != nil {
		t.Fatalf("rollback: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if !strings.Contains(out, "version 3 holds the content of version 1") {
		t.Errorf("rollback output: %s", out)
	}
	assertSecretInTasks(t, waitRunning(t, svc, 2, startTimeout, nil), "v", []byte(name+"=good"))
}

// The agent's rollout loop rolls a service labelled swarmkeep.rollout=auto within a bound
// after a put, and leaves an unlabelled service using the same name alone.
func TestAutoRolloutReachesEveryTask(t *testing.T) {
	begin(t)
	const bound = 45 * time.Second
	name := uniq("auto")
	put(t, name, []byte(name+"=a1"))
	id := createSecret(t, name, nil)
	auto := createServiceWith(t, svcName("auto"), 3, func(s *swarm.ServiceSpec) {
		startFirst(3, "")(s)
		s.Labels["swarmkeep.rollout"] = "auto"
	}, secretRef(id, name, "v"))
	manual := createServiceWith(t, svcName("manual"), 1, startFirst(1, ""), secretRef(id, name, "v"))
	before := taskIDs(waitRunning(t, auto, 3, startTimeout, nil))
	manualBefore := taskIDs(waitRunning(t, manual, 1, startTimeout, nil))

	agentLog := startAgent(t, "--rollout-plugin", E.plugin, "--rollout-debounce", "200ms", "--rollout-poll", "5s")
	// The agent takes its baseline at start: wait for it, or the put could land in it.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(agentLog.String(), "watching for new versions") {
		if time.Now().After(deadline) {
			t.Fatalf("agent not watching within 30s; its log:\n%s", agentLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	put(t, name, []byte(name+"=a2"))
	var fresh []swarm.Task
	for {
		ctx := ctxFor(t, 10*time.Second)
		tasks, err := tasksOf(ctx, auto)
		if err != nil {
			t.Fatal(err)
		}
		fresh = fresh[:0]
		for _, tk := range tasks {
			if tk.DesiredState == swarm.TaskStateRunning && tk.Status.State == swarm.TaskStateRunning && !before[tk.ID] {
				fresh = append(fresh, tk)
			}
		}
		if len(fresh) == 3 {
			break
		}
		if time.Since(start) > bound {
			t.Fatalf("auto-rollout did not reach 3 tasks within %s (%d new); agent log:\n%s", bound, len(fresh), agentLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("auto-rollout: put to 3 new running tasks in %s (bound %s)", time.Since(start).Round(time.Millisecond), bound)
	assertSecretInTasks(t, fresh, "v", []byte(name+"=a2"))
	if !equalSets(taskIDs(waitRunning(t, manual, 1, startTimeout, nil)), manualBefore) {
		t.Errorf("the unlabelled service was rolled")
	}
	// Every rollout is an audit record and a log line.
	deadline = time.Now().Add(bound)
	for !strings.Contains(agentLog.String(), "auto-rollout done") {
		if time.Now().After(deadline) {
			t.Fatalf("no 'auto-rollout done' log line; agent log:\n%s", agentLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	trail, err := os.ReadFile(E.auditFile())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(trail, []byte(`"service":"`+svcName("auto")+`"`)) || !bytes.Contains(trail, []byte(`"class":"rollout"`)) {
		t.Errorf("no rollout record for %s in the audit trail", svcName("auto"))
	}
}

// syncBuffer is a bytes.Buffer safe for a process writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startAgent runs `swarmkeep agent --only rollout` against the test engine and store until
// the test ends (SIGTERM, then wait).
func startAgent(t *testing.T, args ...string) *syncBuffer {
	t.Helper()
	return startAgentLoops(t, append([]string{"--only", "rollout",
		"--rollout-store", E.storeDir, "--rollout-key-file", E.keyFile, "--rollout-audit-file", E.auditFile()}, args...)...)
}

// startAgentLoops runs `swarmkeep agent` with args until the test ends, and
// returns its log.
func startAgentLoops(t *testing.T, args ...string) *syncBuffer {
	t.Helper()
	log := &syncBuffer{}
	cmd := exec.Command(E.swarmkeep, append([]string{"agent"}, args...)...)
	cmd.Dir, cmd.Env = E.tmp, append(os.Environ(), rolloutEnv()...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the agent: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("the agent did not stop on SIGTERM within 15s; log:\n%s", log.String())
		}
		// Its log holds no value: the leak scan reads the files under the run's dir.
		_ = os.WriteFile(filepath.Join(E.tmp, "agent-"+strings.ReplaceAll(t.Name(), "/", "_")+".log"), []byte(log.String()), 0o600)
	})
	return log
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

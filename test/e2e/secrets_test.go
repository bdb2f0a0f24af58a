//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

const (
	startTimeout = 60 * time.Second
	failTimeout  = 45 * time.Second
	logTimeout   = 15 * time.Second
)

// warnLevel matches a plugin warning in the engine's log line: the engine logs the plugin's
// stderr at level=error and the plugin says "warning: " first (driver/server/logformat.go).
var warnLevel = regexp.MustCompile(`level=error msg="warning: `)

// doNotReuseField matches the plugin's log field saying it answered DoNotReuse.
var doNotReuseField = regexp.MustCompile(`\b(do_not_reuse=true|donotreuse=true|reuse=false)\b`)

func svcName(base string) string { return "e2e-" + base + "-" + E.runID }

// A replicated service gets the exact stored bytes in every task.
func TestReplicatedServiceGetsValue(t *testing.T) {
	begin(t)
	name := uniq("rep_pw")
	// Exact bytes, including ones a text pipeline would mangle.
	value := []byte("p@ss w0rd: \"quoted\"\t\x00\x01\xfe\xff line2\r\nend\n")
	put(t, name, value)
	id := createSecret(t, name, nil)
	svc := createService(t, svcName("rep"), 3, secretRef(id, name, name))
	tasks := waitRunning(t, svc, 3, startTimeout, nil)
	assertSecretInTasks(t, tasks, name, value)
	// File mode as requested by the service (0444 by default).
	out, _, code := execIn(t, containerOf(t, tasks[0]), "stat", "-c", "%a %u %g", "/run/secrets/"+name)
	if code != 0 || strings.TrimSpace(string(out)) != "444 0 0" {
		t.Errorf("stat /run/secrets/%s = %q (exit %d), want \"444 0 0\"", name, out, code)
	}
}

// SecretList shows the plugin as the secret's driver, by the name it was given.
func TestSecretListShowsDriver(t *testing.T) {
	begin(t)
	name := uniq("list_pw")
	createSecret(t, name, nil)
	ctx := ctxFor(t, 30*time.Second)
	secs, err := E.cli.SecretList(ctx, swarm.SecretListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		t.Fatalf("SecretList: %v", err)
	}
	if len(secs) != 1 {
		t.Fatalf("SecretList name=%s: %d secrets, want 1", name, len(secs))
	}
	if secs[0].Spec.Driver == nil || secs[0].Spec.Driver.Name != E.plugin {
		t.Fatalf("Spec.Driver = %+v, want Name %q", secs[0].Spec.Driver, E.plugin)
	}
	if len(secs[0].Spec.Data) != 0 {
		t.Errorf("SecretList returned %d bytes of Data, want none", len(secs[0].Spec.Data))
	}
	// The CLI's DRIVER column shows the same name.
	if docker, err := exec.LookPath("docker"); err == nil {
		out, err := runCmd(ctx, E.tmp, nil, nil, docker, "secret", "ls", "--filter", "name="+name, "--format", "{{.Name}} {{.Driver}}")
		if err != nil {
			t.Fatalf("docker secret ls: %v", err)
		}
		if got, want := strings.TrimSpace(out), name+" "+E.plugin; got != want {
			t.Errorf("docker secret ls = %q, want %q", got, want)
		}
	}
}

// swarmkeep.reuse=false: the plugin answers DoNotReuse, the engine gives each task its own
// copy; every task still gets the exact value.
func TestDoNotReuse(t *testing.T) {
	begin(t)
	m := E.mark()
	name := uniq("dnr_pw")
	value := []byte("per-task copy value")
	put(t, name, value)
	id := createSecret(t, name, map[string]string{"swarmkeep.reuse": "false"})
	svc := createService(t, svcName("dnr"), 2, secretRef(id, name, "dnr"))
	tasks := waitRunning(t, svc, 2, startTimeout, nil)
	assertSecretInTasks(t, tasks, "dnr", value)
	// The plugin logs (debug) that it answered DoNotReuse for each task's request.
	if needLog(t) {
		for _, tk := range tasks {
			waitLogRe(t, m, logTimeout, doNotReuseField, "secret served", "secret="+name, tk.ID)
		}
	}

	// What the engine received: ask the running plugin the same question over its socket.
	base := getSecretRequest{
		SecretName: name, ServiceName: svcName("dnr"), ServiceID: svc,
		TaskID: tasks[0].ID, TaskName: "x.1." + tasks[0].ID, TaskImage: E.image, NodeID: tasks[0].NodeID,
	}
	req := base
	req.SecretLabels = map[string]string{"swarmkeep.reuse": "false"}
	code, resp := callPlugin(t, req)
	if code != 200 || resp.Err != "" || !bytes.Equal(resp.Value, value) || !resp.DoNotReuse {
		t.Errorf("GetSecret reuse=false: HTTP %d %+v, want 200, value %q, DoNotReuse=true", code, resp, value)
	}
	// Without the label too: the plugin always runs an access policy, and
	// a node's shared copy would reach tasks the policy denied.
	req = base
	code, resp = callPlugin(t, req)
	if code != 200 || resp.Err != "" || !bytes.Equal(resp.Value, value) || !resp.DoNotReuse {
		t.Errorf("GetSecret (default reuse): HTTP %d %+v, want 200, value %q, DoNotReuse=true", code, resp, value)
	}
}

// A missing value fails the task; the plugin log says which secret and why.
func TestMissingValueFailsTask(t *testing.T) {
	begin(t)
	m := E.mark()
	name := uniq("missing_pw")
	id := createSecret(t, name, nil)
	svc := svcName("missing")
	svcID := createService(t, svc, 1, secretRef(id, name, name))
	tk := waitTaskFailed(t, svcID, failTimeout)
	if !strings.Contains(tk.Status.Err, "secret") || !strings.Contains(tk.Status.Err, "not found") {
		t.Errorf("task error = %q, want it to mention the secret not being found", tk.Status.Err)
	}
	if needLog(t) {
		// The line for the failed task names the secret, the cause, the service, the task
		// and the node.
		line := waitLog(t, m, logTimeout, name, "not found", tk.ID)
		if !warnLevel.MatchString(line) {
			t.Errorf("plugin log line is not at warning level: %s", line)
		}
		for _, field := range []string{"service=" + svc, "task", "node=" + tk.NodeID} {
			if !strings.Contains(line, field) {
				t.Errorf("plugin log line lacks %q: %s", field, line)
			}
		}
	}
}

// service update --secret-rm old --secret-add new: new tasks get the new value, and the old
// file is gone.
func TestServiceUpdateSwapsSecret(t *testing.T) {
	begin(t)
	oldName, newName := uniq("swap_old"), uniq("swap_new")
	oldVal, newVal := []byte("old value v1"), []byte("new value v2")
	put(t, oldName, oldVal)
	put(t, newName, newVal)
	oldID := createSecret(t, oldName, nil)
	newID := createSecret(t, newName, nil)
	svc := createService(t, svcName("swap"), 2, secretRef(oldID, oldName, oldName))
	tasks := waitRunning(t, svc, 2, startTimeout, nil)
	assertSecretInTasks(t, tasks, oldName, oldVal)

	updateService(t, svc, func(s *swarm.ServiceSpec) {
		s.TaskTemplate.ContainerSpec.Secrets = []*swarm.SecretReference{secretRef(newID, newName, newName)}
	})
	tasks = waitRunning(t, svc, 2, startTimeout, func(tk swarm.Task) bool { return hasSecret(tk, newID) && !hasSecret(tk, oldID) })
	assertSecretInTasks(t, tasks, newName, newVal)
	for _, tk := range tasks {
		out, _, code := execIn(t, containerOf(t, tk), "ls", "-1", "/run/secrets")
		if code != 0 || strings.TrimSpace(string(out)) != newName {
			t.Errorf("task %.12s: ls /run/secrets = %q (exit %d), want only %s", tk.ID, out, code, newName)
		}
	}
}

// docker stack deploy: the secret is <stack>_api_key, the plugin reads stored name <stack>/api_key.
func TestStackDeploy(t *testing.T) {
	begin(t)
	docker, err := exec.LookPath("docker")
	if err != nil {
		if E.ci {
			t.Fatalf("docker CLI needed for stack deploy: %v", err)
		}
		t.Skipf("docker CLI needed for stack deploy: %v", err)
	}
	stack := stackPrefix(E) + "st"
	value := []byte("stack api key 0123456789")
	// The stack's secret <stack>_api_key reads the stored name <stack>/api_key:
	// each stack has its own namespace, which the default policy lets it read.
	put(t, stack+"/api_key", value)
	compose := fmt.Sprintf(`version: "3.8"
services:
  web:
    image: %s
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    secrets: [api_key]
    stop_grace_period: 1s
    deploy:
      replicas: 2
      restart_policy: {condition: any, delay: 1s}
    networks: [hostnet]
# The host network: a stack's default overlay network would add a gateway bridge on the host.
networks:
  hostnet:
    external: true
    name: host
secrets:
  api_key:
    driver: %s
    labels:
      %s: "%s"
`, E.image, E.plugin, runLabel, E.runID)
	file := filepath.Join(E.tmp, stack+".yml")
	if err := os.WriteFile(file, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 90*time.Second)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = E.cli.ServiceRemove(ctx, stack+"_web")
		removeSecret(t, stack+"_api_key")
	})
	args := []string{"stack", "deploy", "--resolve-image", "never", "-c", file}
	if help, _ := runCmd(ctx, E.tmp, nil, nil, docker, "stack", "deploy", "--help"); strings.Contains(help, "--detach") {
		args = append(args, "--detach=true")
	}
	if _, err := runCmd(ctx, E.tmp, nil, nil, docker, append(args, stack)...); err != nil {
		t.Fatalf("docker stack deploy: %v", err)
	}
	sec, _, err := E.cli.SecretInspectWithRaw(ctx, stack+"_api_key")
	if err != nil {
		t.Fatalf("secret %s_api_key: %v", stack, err)
	}
	if sec.Spec.Labels["com.docker.stack.namespace"] != stack || sec.Spec.Driver == nil || sec.Spec.Driver.Name != E.plugin {
		t.Fatalf("stack secret spec: labels %v driver %+v", sec.Spec.Labels, sec.Spec.Driver)
	}
	svc, _, err := E.cli.ServiceInspectWithRaw(ctx, stack+"_web", swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatalf("service %s_web: %v", stack, err)
	}
	tasks := waitRunning(t, svc.ID, 2, startTimeout, nil)
	assertSecretInTasks(t, tasks, "api_key", value)
}

// A value put while the plugin runs reaches the next tasks (scale up, then force update).
func TestPutWhileRunningReachesNewTasks(t *testing.T) {
	begin(t)
	name := uniq("live_pw")
	v1, v2, v3 := []byte("live v1"), []byte("live v2"), []byte("live v3")
	put(t, name, v1)
	id := createSecret(t, name, nil)
	svc := createService(t, svcName("live"), 1, secretRef(id, name, name))
	first := waitRunning(t, svc, 1, startTimeout, nil)
	assertSecretInTasks(t, first, name, v1)

	put(t, name, v2)
	updateService(t, svc, func(s *swarm.ServiceSpec) {
		n := uint64(2)
		s.Mode.Replicated.Replicas = &n
	})
	both := waitRunning(t, svc, 2, startTimeout, nil)
	var added []swarm.Task
	for _, tk := range both {
		if tk.ID != first[0].ID {
			added = append(added, tk)
		}
	}
	if len(added) != 1 {
		t.Fatalf("after scale-up: %d new tasks, want 1:%s", len(added), describeTasks(both))
	}
	assertSecretInTasks(t, added, name, v2)

	put(t, name, v3)
	old := map[string]bool{both[0].ID: true, both[1].ID: true}
	updateService(t, svc, func(s *swarm.ServiceSpec) { s.TaskTemplate.ForceUpdate++ })
	fresh := waitRunning(t, svc, 2, startTimeout, func(tk swarm.Task) bool { return !old[tk.ID] })
	assertSecretInTasks(t, fresh, name, v3)
}

// swarmkeep.version pins a version; without it the latest is served.
func TestVersionPin(t *testing.T) {
	begin(t)
	stored := uniq("pin_pw")
	v1, v2 := []byte("pinned version one"), []byte("latest version two")
	put(t, stored, v1)
	put(t, stored, v2)
	if got := cliRun(t, nil, "get", stored, "--version", "1"); got != string(v1) {
		t.Fatalf("swarmkeep get %s --version 1 = %q, want %q", stored, got, v1)
	}
	pinName, latestName := uniq("pin_one"), uniq("pin_latest")
	pinID := createSecret(t, pinName, map[string]string{"swarmkeep.name": stored, "swarmkeep.version": "1"})
	latestID := createSecret(t, latestName, map[string]string{"swarmkeep.name": stored})
	svc := createService(t, svcName("pin"), 1, secretRef(pinID, pinName, "pinned"), secretRef(latestID, latestName, "latest"))
	tasks := waitRunning(t, svc, 1, startTimeout, nil)
	assertSecretInTasks(t, tasks, "pinned", v1)
	assertSecretInTasks(t, tasks, "latest", v2)

	// A pin to a version that does not exist is an error.
	code, resp := callPlugin(t, getSecretRequest{SecretName: pinName, SecretLabels: map[string]string{"swarmkeep.name": stored, "swarmkeep.version": "9"}, TaskID: "e2etask"})
	if code == 200 || resp.Err == "" || len(resp.Value) != 0 {
		t.Errorf("GetSecret version 9: HTTP %d %+v, want an error and no value", code, resp)
	}
}

// swarmkeep.encoding=base64: the stored text is base64, the task gets the decoded bytes.
func TestBase64Encoding(t *testing.T) {
	begin(t)
	stored := uniq("b64_pw")
	raw := []byte{0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, '\n', 'k', 'e', 'y', '\r', '\n', 0x00}
	put(t, stored, []byte(base64.StdEncoding.EncodeToString(raw)))
	id := createSecret(t, stored, map[string]string{"swarmkeep.encoding": "base64"})
	svc := createService(t, svcName("b64"), 1, secretRef(id, stored, "blob"))
	tasks := waitRunning(t, svc, 1, startTimeout, nil)
	assertSecretInTasks(t, tasks, "blob", raw)
}

// A tampered store record is refused: the task fails, the plugin log names the record.
func TestTamperedRecordRefused(t *testing.T) {
	begin(t)
	name := uniq("tamper_pw")
	objects := filepath.Join(E.storeDir, "objects")
	before := fileSums(t, objects)
	put(t, name, []byte("value that will be tampered with"))
	after := fileSums(t, objects)
	var changed []string
	for p, sum := range after {
		if before[p] != sum {
			changed = append(changed, p)
		}
	}
	sort.Strings(changed)
	if len(changed) == 0 {
		t.Fatalf("put %s changed no file under %s (store layout changed?)", name, objects)
	}
	for _, p := range changed {
		flipByte(t, p)
	}
	t.Logf("flipped a byte in %v", changed)

	m := E.mark()
	id := createSecret(t, name, nil)
	svcID := createService(t, svcName("tamper"), 1, secretRef(id, name, name))
	tk := waitTaskFailed(t, svcID, failTimeout)
	if !strings.Contains(tk.Status.Err, "not found") {
		t.Errorf("task error = %q, want the engine's 'secret … not found'", tk.Status.Err)
	}
	if needLog(t) {
		waitLog(t, m, logTimeout, name, "cannot be opened", tk.ID)
	}
}

// fileSums maps each regular file under dir to its contents (files are small).
func fileSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[p] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

// flipByte inverts one bit pattern near the end of the file (inside the sealed part).
func flipByte(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		t.Fatalf("read %s: %v (%d bytes)", p, err, len(b))
	}
	i := len(b) - 1 - len(b)/8
	b[i] ^= 0x5a
	st, _ := os.Stat(p)
	if err := os.WriteFile(p+".e2e", b, st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".e2e", p); err != nil {
		t.Fatal(err)
	}
}

// A bad swarmkeep.* label fails the task, and the plugin log names the label.
func TestBadLabelRefused(t *testing.T) {
	begin(t)
	name := uniq("badlabel_pw")
	put(t, name, []byte("never delivered"))
	m := E.mark()
	id := createSecret(t, name, map[string]string{"swarmkeep.reuse": "maybe"})
	svcID := createService(t, svcName("badlabel"), 1, secretRef(id, name, name))
	tk := waitTaskFailed(t, svcID, failTimeout)
	if !strings.Contains(tk.Status.Err, "not found") {
		t.Errorf("task error = %q, want the engine's 'secret … not found'", tk.Status.Err)
	}
	if needLog(t) {
		waitLog(t, m, logTimeout, name, "swarmkeep.reuse", tk.ID)
	}

	// An unknown swarmkeep.* label is an error too, and the answer names it.
	code, resp := callPlugin(t, getSecretRequest{SecretName: name, SecretLabels: map[string]string{"swarmkeep.colour": "red"}, TaskID: "e2etask"})
	if code == 200 || !strings.Contains(resp.Err, "swarmkeep.colour") || len(resp.Value) != 0 {
		t.Errorf("GetSecret with swarmkeep.colour: HTTP %d %+v, want an error naming the label", code, resp)
	}
}

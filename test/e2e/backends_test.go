//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/etcdstore/etcdtest"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// Remote backends (BACKENDS): an etcd store and a Vault KV engine behind the plugin's cache.
// Each test starts its own server on 127.0.0.1 (the plugin runs on the host network),
// restarts the plugin with BACKENDS naming it, and puts the original settings back at the
// end.

// etcdSpec is a BACKENDS entry for instance name on c, with extra query settings.
func etcdSpec(name string, c *etcdtest.Cluster, extra string) string {
	s := name + ":etcd?endpoints=" + strings.Join(c.Endpoints(), ",") + "&prefix=/swarmkeep-e2e-" + E.runID + "/"
	if extra != "" {
		s += "&" + extra
	}
	return s
}

// A 2-replica service reads a value from an etcd store made with the operator CLI; the
// same stored name in the local store (the default backend) is a different value.
func TestEtcdBackendServesService(t *testing.T) {
	begin(t)
	etcd := etcdtest.Start(t, etcdtest.Options{})
	spec := etcdSpec("shared", etcd, "")
	if out := backendCLI(t, spec, "shared", nil, "init"); !strings.Contains(out, "backend shared") {
		t.Errorf("swarmkeep init --backend shared printed %q, want it to name the backend", out)
	}
	stored := uniq("etcd_pw")
	value := []byte("etcd value: \"q\"\t\x00\x01\xfe\xff\r\nend\n")
	localValue := []byte("local value under the same name")
	backendCLI(t, spec, "shared", value, "put", stored)
	put(t, stored, localValue)
	if got := backendCLI(t, spec, "shared", nil, "get", stored); got != string(value) {
		t.Fatalf("swarmkeep get %s --backend shared = %q, want %q", stored, got, value)
	}

	reconfigurePlugin(t, map[string]string{"BACKENDS": "local:file " + spec, "DEFAULT_BACKEND": ""}, "shared", "local")

	// The secret named as the stored value reads etcd; one naming it by label, without
	// swarmkeep.backend, reads the default (local) store.
	etcdName, localName := stored, uniq("etcd_sec_local")
	etcdID := createSecret(t, etcdName, map[string]string{"swarmkeep.backend": "shared"})
	localID := createSecret(t, localName, map[string]string{"swarmkeep.name": stored})
	svc := createService(t, svcName("etcd"), 2, secretRef(etcdID, etcdName, "from_etcd"), secretRef(localID, localName, "from_local"))
	tasks := waitRunning(t, svc, 2, startTimeout, nil)
	assertSecretInTasks(t, tasks, "from_etcd", value)
	assertSecretInTasks(t, tasks, "from_local", localValue)
}

// swarmkeep put to etcd returns once the plugin's replica holds the new version, so the
// very next task gets it. Behind the old 30 s TTL cache the next task got the old value.
func TestEtcdPutSeenByNextTask(t *testing.T) {
	begin(t)
	etcd := etcdtest.Start(t, etcdtest.Options{})
	spec := etcdSpec("coherent", etcd, "")
	backendCLI(t, spec, "coherent", nil, "init")
	stored := uniq("coherent_pw")
	backendCLI(t, spec, "coherent", []byte("coherent v1"), "put", stored)
	reconfigurePlugin(t, map[string]string{"BACKENDS": "local:file " + spec, "DEFAULT_BACKEND": ""}, "coherent")

	id := createSecret(t, stored, map[string]string{"swarmkeep.backend": "coherent"})
	svc := createService(t, svcName("coherent"), 1, secretRef(id, stored, "pw"))
	first := waitRunning(t, svc, 1, startTimeout, nil)
	assertSecretInTasks(t, first, "pw", []byte("coherent v1"))
	// Scaled to 0 so the node holds no copy of the secret for the next task.
	scaleService(t, svc, 0)
	waitRunning(t, svc, 0, startTimeout, nil)

	// put waits for the plugin's applied revision (and fails naming it if it lags).
	backendCLI(t, spec, "coherent", []byte("coherent v2"), "put", stored)
	scaleService(t, svc, 1)
	next := notIn(waitRunning(t, svc, 1, startTimeout, nil), taskIDs(first))
	if len(next) != 1 {
		t.Fatalf("after scale-up: want one new task:%s", describeTasks(next))
	}
	assertSecretInTasks(t, next, "pw", []byte("coherent v2"))
}

// Vault KV v2 through the fake server: one field, the whole document (compact JSON, sorted
// keys, no HTML escaping), and a swarmkeep.path override (whole document and one non-string
// field).
func TestVaultBackendServesService(t *testing.T) {
	begin(t)
	srv := vaulttest.New(t)
	token := srv.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/data/e2e/*", "secret/data/other/*"}})
	tokenFile := configFile(t, filepath.Join("vault-"+E.runID, "token"), []byte(token+"\n"))
	spec := "vaultkv:vault?address=" + srv.URL + "&mount=secret&kv_version=2&path_template=e2e/{{.Name}}&token_file=" + tokenFile

	stored := uniq("db")
	password := "pässw0rd <&> \"q\" \\ end"
	recordValue("vault old password", []byte("old password"))
	srv.PutKV2("", "secret", "e2e/"+stored, map[string]any{"username": "app-user", "password": "old password"})
	srv.PutKV2("", "secret", "e2e/"+stored, map[string]any{"username": "app-user", "password": password})
	otherPath := "other/" + E.runID + "/cfg"
	srv.PutKV2("", "secret", otherPath, map[string]any{
		"tls": true, "port": 5432, "hosts": []any{"b", "a"}, "nested": map[string]any{"z": 1, "a": "x"},
	})

	reconfigurePlugin(t, map[string]string{"BACKENDS": "local:file " + spec, "DEFAULT_BACKEND": ""}, "vaultkv")

	pwName, docName, pathName, portName := uniq("vault_pw"), uniq("vault_doc"), uniq("vault_path"), uniq("vault_port")
	pwID := createSecret(t, pwName, map[string]string{"swarmkeep.backend": "vaultkv", "swarmkeep.name": stored, "swarmkeep.field": "password"})
	docID := createSecret(t, docName, map[string]string{"swarmkeep.backend": "vaultkv", "swarmkeep.name": stored})
	pathID := createSecret(t, pathName, map[string]string{"swarmkeep.backend": "vaultkv", "swarmkeep.path": otherPath})
	portID := createSecret(t, portName, map[string]string{"swarmkeep.backend": "vaultkv", "swarmkeep.path": otherPath, "swarmkeep.field": "port"})
	svc := createService(t, svcName("vault"), 2,
		secretRef(pwID, pwName, "password"), secretRef(docID, docName, "doc.json"),
		secretRef(pathID, pathName, "other.json"), secretRef(portID, portName, "port"))
	tasks := waitRunning(t, svc, 2, startTimeout, nil)
	assertSecretInTasks(t, tasks, "password", []byte(password))
	assertSecretInTasks(t, tasks, "doc.json", []byte(`{"password":"pässw0rd <&> \"q\" \\ end","username":"app-user"}`))
	assertSecretInTasks(t, tasks, "other.json", []byte(`{"hosts":["b","a"],"nested":{"a":"x","z":1},"port":5432,"tls":true}`))
	assertSecretInTasks(t, tasks, "port", []byte("5432"))
}

// An etcd backend stops while a service scales: new tasks get the last-known-good copy
// within max_stale, then fail with a clear error past it, and get the value again once
// etcd is back.
//
// The secret is reusable (the default): a copy is only cached, and served stale, for those.
// The engine then asks the plugin for every new task, but when the answer is an error and
// the node already holds the secret for another of its tasks, it starts the new task with
// the node's copy. So the service is scaled to 0 before the step that must fail.
func TestEtcdStoppedWhileScaling(t *testing.T) {
	begin(t)
	const maxStale = 20 * time.Second
	etcd := etcdtest.Start(t, etcdtest.Options{})
	spec := etcdSpec("flaky", etcd, fmt.Sprintf("max_stale=%s", maxStale))
	backendCLI(t, spec, "flaky", nil, "init")
	stored := uniq("flaky_pw")
	v1 := []byte("flaky v1 \x00\xff\n")
	backendCLI(t, spec, "flaky", v1, "put", stored)
	reconfigurePlugin(t, map[string]string{"BACKENDS": "local:file " + spec, "DEFAULT_BACKEND": ""}, "flaky")

	id := createSecret(t, stored, map[string]string{"swarmkeep.backend": "flaky"})
	svc := createService(t, svcName("flaky"), 1, secretRef(id, stored, "pw"))
	first := waitRunning(t, svc, 1, startTimeout, nil)
	assertSecretInTasks(t, first, "pw", v1)

	// 1. etcd stops; within max_stale, new tasks get the copy and the log says so.
	if err := etcd.Stop(0); err != nil {
		t.Fatalf("stopping etcd: %v", err)
	}
	stoppedAt := time.Now() // no read can succeed after this
	t.Logf("etcd stopped")
	// The plugin answers from its replica, kept by a watch; it marks the replica stale once
	// etcd has not confirmed it for 3 s. Until then nothing can have changed (etcd is down),
	// so its answers are current.
	time.Sleep(3*time.Second + 500*time.Millisecond)
	m := E.mark()
	scaleService(t, svc, 3)
	three := waitRunning(t, svc, 3, startTimeout, nil)
	added := notIn(three, taskIDs(first))
	if len(added) != 2 {
		t.Fatalf("after scale-up to 3: %d new tasks, want 2:%s", len(added), describeTasks(three))
	}
	assertSecretInTasks(t, added, "pw", v1)
	if needLog(t) {
		// The outage's first stale answer is a warning; the next ones are
		// counted in a summary and keep a debug line each (LOG_LEVEL=debug).
		warned := false
		for _, tk := range added {
			line := waitLog(t, m, logTimeout, "last-known-good", "backend=flaky", "secret="+stored, tk.ID)
			warned = warned || warnLevel.MatchString(line)
		}
		if !warned {
			t.Errorf("no stale-copy line at warning level for tasks %v", taskIDs(added))
		}
	}
	if age := time.Since(stoppedAt); age > maxStale-2*time.Second {
		t.Fatalf("the stale phase took %s, too close to max_stale %s for the next step to mean anything", age, maxStale)
	}

	// 2. Past max_stale, a new task fails and the log says why: backend unavailable and
	// the copy too old. Scaled to 0 first, so the node holds no copy of the secret.
	scaleService(t, svc, 0)
	waitRunning(t, svc, 0, startTimeout, nil)
	wait := time.Until(stoppedAt.Add(maxStale + time.Second))
	t.Logf("waiting %s until the copy is older than max_stale (%s)", wait.Round(time.Second), maxStale)
	time.Sleep(wait)
	m = E.mark()
	old, err := tasksOf(ctxFor(t, 10*time.Second), svc)
	if err != nil {
		t.Fatal(err)
	}
	earlier := taskIDs(old)
	scaleService(t, svc, 1)
	failed := waitNewTaskFailed(t, svc, earlier, failTimeout)
	t.Logf("task %.12s failed: %s", failed.ID, failed.Status.Err)
	if needLog(t) {
		line := waitLog(t, m, logTimeout, "secret="+stored, "backend flaky", "unavailable", "max stale", failed.ID)
		if !warnLevel.MatchString(line) {
			t.Errorf("too-old line is not at warning level: %s", line)
		}
		if strings.Contains(strings.ToLower(line), "served the last-known-good") {
			t.Errorf("too-old line claims a copy was served: %s", line)
		}
	}

	// 3. etcd is back: a later task (the retried slot) gets the value, fresh from etcd.
	m = E.mark()
	if err := etcd.Restart(0); err != nil {
		t.Fatalf("restarting etcd: %v", err)
	}
	t.Logf("etcd restarted")
	one := waitRunning(t, svc, 1, startTimeout, nil)
	recovered := notIn(one, earlier)
	if len(recovered) != 1 || recovered[0].ID == failed.ID {
		t.Fatalf("after etcd restart: want a new running task:%s", describeTasks(one))
	}
	assertSecretInTasks(t, recovered, "pw", v1)
	if needLog(t) {
		line := waitLog(t, m, logTimeout, "backend=flaky", "secret="+stored, recovered[0].ID)
		if !strings.Contains(line, "secret served") || strings.Contains(line, "last-known-good") {
			t.Errorf("the recovered task's line is not a fresh serve: %s", line)
		}
	}
}

// The Vault server goes down: a new task gets the last-known-good copy; once it is back, a
// new version reaches the next task.
func TestVaultStoppedWhileScaling(t *testing.T) {
	begin(t)
	srv := vaulttest.New(t)
	token := srv.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/data/flaky/*"}})
	tokenFile := configFile(t, filepath.Join("vault-flaky-"+E.runID, "token"), []byte(token))
	spec := "flakyvault:vault?address=" + srv.URL + "&path_template=flaky/{{.Name}}&token_file=" + tokenFile +
		"&cache_ttl=1s&max_stale=1m&retry_after=500ms"
	const cacheTTL = time.Second // as in spec
	stored := uniq("vflaky")
	srv.PutKV2("", "secret", "flaky/"+stored, map[string]any{"password": "vault v1"})
	reconfigurePlugin(t, map[string]string{"BACKENDS": "local:file " + spec, "DEFAULT_BACKEND": ""}, "flakyvault")

	labels := map[string]string{"swarmkeep.backend": "flakyvault", "swarmkeep.field": "password"}
	id := createSecret(t, stored, labels)
	svc := createService(t, svcName("vflaky"), 1, secretRef(id, stored, "pw"))
	first := waitRunning(t, svc, 1, startTimeout, nil)
	assertSecretInTasks(t, first, "pw", []byte("vault v1"))

	srv.Stop()
	t.Logf("vault stopped")
	time.Sleep(cacheTTL + 500*time.Millisecond)
	m := E.mark()
	scaleService(t, svc, 2)
	two := waitRunning(t, svc, 2, startTimeout, nil)
	added := notIn(two, taskIDs(first))
	if len(added) != 1 {
		t.Fatalf("after scale-up to 2: %d new tasks, want 1:%s", len(added), describeTasks(two))
	}
	assertSecretInTasks(t, added, "pw", []byte("vault v1"))
	if needLog(t) {
		waitLog(t, m, logTimeout, "last-known-good", "backend=flakyvault", "secret="+stored, added[0].ID)
	}

	srv.Restart(t)
	srv.PutKV2("", "secret", "flaky/"+stored, map[string]any{"password": "vault v2"})
	t.Logf("vault restarted with a new version")
	// The first request after retry_after is answered the copy while it probes Vault in the
	// background; ask until the plugin has the new version, as the engine would.
	m = E.mark()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, resp := callPlugin(t, getSecretRequest{SecretName: stored, SecretLabels: labels, TaskID: "e2eprobe"})
		if code == 200 && string(resp.Value) == "vault v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin still answers HTTP %d %q (err %q) 15s after Vault came back, want \"vault v2\"", code, resp.Value, resp.Err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	scaleService(t, svc, 3)
	three := waitRunning(t, svc, 3, startTimeout, nil)
	fresh := notIn(three, taskIDs(two))
	if len(fresh) != 1 {
		t.Fatalf("after scale-up to 3: %d new tasks, want 1:%s", len(fresh), describeTasks(three))
	}
	assertSecretInTasks(t, fresh, "pw", []byte("vault v2"))
	if needLog(t) {
		line := waitLog(t, m, logTimeout, "backend=flakyvault", "secret="+stored, fresh[0].ID)
		if !strings.Contains(line, "secret served") || strings.Contains(line, "last-known-good") {
			t.Errorf("the new task's line is not a fresh serve: %s", line)
		}
	}
}

//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// policyReload bounds the wait for the plugin's policy file poll (2 s)
// with room to spare; the wait ends as soon as /health shows the policy.
const policyReload = 15 * time.Second

// waitPolicyHash polls the plugin's /health (through swarmkeep status) until
// it names the policy with hash want, and returns the plugin's source for
// it. It fails the test at policyReload.
func waitPolicyHash(t *testing.T, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), policyReload)
	defer cancel()
	var last string
	for {
		// status exits 1 when a backend is not ready; the JSON is printed
		// either way, and only the policy matters here.
		out, err := runCmd(ctx, E.tmp, E.cliEnv(), nil, E.swarmkeep, "status", "--plugin", E.plugin, "--json")
		var rep struct {
			Health *struct {
				Policy     string `json:"policy"`
				PolicyHash string `json:"policy_hash"`
			} `json:"health"`
		}
		if jerr := json.Unmarshal([]byte(out), &rep); jerr == nil && rep.Health != nil {
			if rep.Health.PolicyHash == want {
				return rep.Health.Policy
			}
			last = rep.Health.Policy + " " + rep.Health.PolicyHash
		} else {
			last = fmt.Sprintf("%v %v", err, jerr)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/health did not show policy %s within %v; last: %s", want, policyReload, last)
			return ""
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// An access policy in the config mount grants one service a namespaced
// name; a second service using the same secret fails, and only it: its
// task error is Swarm's "not found", the plugin's log and audit trail say
// the policy denied it. The default policy (no file) would deny both, since
// services outside a stack read only top-level and shared/ names.
func TestPolicyDenialFailsOnlyTheDeniedService(t *testing.T) {
	begin(t)
	stored := "pol" + E.runID + "/db"
	value := []byte("policy-granted-value-5d21")
	put(t, stored, value)
	name := uniq("pol_db")
	id := createSecret(t, name, map[string]string{"swarmkeep.name": stored})

	okSvc, deniedSvc := svcName("pol-ok"), svcName("pol-denied")
	policy := fmt.Sprintf(`version: 1
rules:
  - name: e2e-grant
    match:
      service: %q
    allow: [%q]
`, okSvc, "pol"+E.runID+"/**")
	sum := sha256.Sum256([]byte(policy))
	hash := "sha256:" + hex.EncodeToString(sum[:])
	file := filepath.Join(E.configDir, "policy.yaml")
	m := E.mark()
	if err := os.WriteFile(file, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(file)
		waitPolicyHash(t, "builtin") // later tests see the default policy again
	})
	// The reload shows in /health and in the log, with the policy's hash.
	if src := waitPolicyHash(t, hash); !strings.HasSuffix(src, "policy.yaml") {
		t.Errorf("/health names policy source %q, want the config mount's policy.yaml", src)
	}
	if needLog(t) {
		waitLog(t, m, logTimeout, "access policy reloaded", hex.EncodeToString(sum[:]))
	}

	m = E.mark()
	okID := createService(t, okSvc, 1, secretRef(id, name, name))
	assertSecretInTasks(t, waitRunning(t, okID, 1, startTimeout, nil), name, value)

	deniedID := createService(t, deniedSvc, 1, secretRef(id, name, name))
	tk := waitTaskFailed(t, deniedID, failTimeout)
	if !strings.Contains(tk.Status.Err, "not found") {
		t.Errorf("denied task error = %q, want Swarm's secret not found", tk.Status.Err)
	}
	if needLog(t) {
		line := waitLog(t, m, logTimeout, "access denied by policy", "service="+deniedSvc)
		if strings.Contains(line, string(value)) {
			t.Fatal("the denial log line holds the value")
		}
	}
	trail := cliRun(t, nil, "audit", "--file", E.stateDir+"/audit/audit.log", "--secret", name, "--json")
	if !strings.Contains(trail, `"decision":"deny"`) || !strings.Contains(trail, `"service":"`+deniedSvc+`"`) ||
		!strings.Contains(trail, `"rule":"e2e-grant"`) {
		t.Errorf("audit trail lacks the denial or the grant:\n%s", trail)
	}
	// The granted service is still running: only the denied one failed.
	waitRunning(t, okID, 1, startTimeout, nil)
}

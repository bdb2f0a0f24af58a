//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// policyReload covers the plugin's policy file poll (2 s) with room to spare.
const policyReload = 5 * time.Second

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
	file := filepath.Join(E.configDir, "policy.yaml")
	if err := os.WriteFile(file, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(file)
		time.Sleep(policyReload) // later tests see the default policy again
	})
	time.Sleep(policyReload)

	m := E.mark()
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

//go:build e2e

package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// swarmkeep status finds the running plugin through the Docker API, reads
// its health socket under /run/docker/plugins/<id>/ and reports it; the
// audit trail on the state mount holds a record of an answer, and of the
// put that stored the value, never a value.
func TestStatusAndAuditOnRealPlugin(t *testing.T) {
	begin(t)
	name := uniq("status_pw")
	value := []byte("status-check-value-8c1f")
	put(t, name, value)
	id := createSecret(t, name, nil)
	svc := createService(t, svcName("status"), 1, secretRef(id, name, name))
	assertSecretInTasks(t, waitRunning(t, svc, 1, startTimeout, nil), name, value)

	out := cliRun(t, nil, "status", "--plugin", E.plugin)
	for _, want := range []string{"config hash:", "status:        ok", "local  ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}

	trail := E.stateDir + "/audit/audit.log"
	got := cliRun(t, nil, "audit", "--file", trail, "--secret", name, "--decision", "allow", "--json")
	if !strings.Contains(got, `"secret":"`+name+`"`) || !strings.Contains(got, `"decision":"allow"`) {
		t.Fatalf("audit has no allow record for %s:\n%s", name, got)
	}
	// The put is in the same trail, as an operator record with the user.
	ops := cliRun(t, nil, "audit", "--file", trail, "--secret", name, "--decision", "operator", "--format", "{{.Action}} {{.Stored}}@{{.Version}} {{.UID}}")
	if ops != "put "+name+"@1 "+strconv.Itoa(os.Getuid())+"\n" {
		t.Errorf("audit has no operator record of the put:\n%s", ops)
	}
	raw, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), string(value)) {
		t.Fatal("the audit trail holds a value")
	}
}

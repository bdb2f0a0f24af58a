//go:build e2e

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// TestRolloutTiming measures, for a 10-replica service, the time from a put to every task
// running on the new version: swarmkeep put --rollout (which waits for convergence and
// checks the audit trail) next to a put then a hand-run docker service update --force
// (which waits for convergence), in the same run, with the same update config. It only
// prints figures, never asserts on them, and runs only when asked:
//
//	SWARMKEEP_E2E_BENCH=1 SWARM_ADDR=... go test -tags e2e -count=1 -v -run TestRolloutTiming ./test/e2e/
func TestRolloutTiming(t *testing.T) {
	begin(t)
	if os.Getenv("SWARMKEEP_E2E_BENCH") != "1" {
		t.Skip("a measurement, not a test: set SWARMKEEP_E2E_BENCH=1")
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI for the hand-run comparison")
	}
	name := uniq("bench")
	put(t, name, []byte(name+"=0"))
	id := createSecret(t, name, nil)
	svcN := svcName("bench")
	svc := createServiceWith(t, svcN, 10, startFirst(2, swarm.UpdateFailureActionPause), secretRef(id, name, "v"))
	waitRunning(t, svc, 10, startTimeout, nil)

	const rounds = 3
	for i := 1; i <= rounds; i++ {
		v := []byte(name + "=sk" + string(rune('0'+i)))
		recordValue("put "+name, v)
		start := time.Now()
		out, errOut, err := swarmkeepCmd(t, v, "put", name, "--rollout", "--plugin", E.plugin)
		sk := time.Since(start)
		if err != nil {
			t.Fatalf("put --rollout: %v\n%s\n%s", err, out, errOut)
		}
		assertSecretInTasks(t, waitRunning(t, svc, 10, startTimeout, nil), "v", v)

		v = []byte(name + "=dk" + string(rune('0'+i)))
		recordValue("put "+name, v)
		ctx := ctxFor(t, rolloutTimeout)
		start = time.Now()
		if _, err := runCmd(ctx, E.tmp, rolloutEnv(), v, E.swarmkeep, "put", name); err != nil {
			t.Fatal(err)
		}
		var dout bytes.Buffer
		cmd := exec.CommandContext(ctx, docker, "service", "update", "--force", "--detach=false", "--quiet", svcN)
		cmd.Stdout, cmd.Stderr = &dout, &dout
		if err := cmd.Run(); err != nil {
			t.Fatalf("docker service update --force: %v\n%s", err, dout.String())
		}
		dk := time.Since(start)
		assertSecretInTasks(t, waitRunning(t, svc, 10, startTimeout, nil), "v", v)
		t.Logf("round %d, 10 replicas, parallelism 2, start-first, monitor 1s: swarmkeep put --rollout %s (converged and audit-checked); put + docker service update --force %s (converged)",
			i, sk.Round(time.Millisecond), dk.Round(time.Millisecond))
	}
}

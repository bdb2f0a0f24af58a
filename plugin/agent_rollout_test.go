package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/swarm/rollout"
)

// TestAgentRolloutSnapshotAndRecord: the loop's view of the store is every
// name's latest version, and its audit record is one root-only line the
// audit command reads.
func TestAgentRolloutSnapshotAndRecord(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, "a1", "put", "a")
	mustRun(t, env, "a2", "put", "a")
	mustRun(t, env, "b1", "put", "st/b")
	sf := storeFlags{dir: env[EnvCLIStore], keyFile: env[EnvCLIKeyFile]}
	s, err := sf.open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap, err := snapshot(context.Background(), s)
	if err != nil || len(snap) != 2 || snap["a"] != 2 || snap["st/b"] != 1 {
		t.Fatalf("snapshot = %v, %v", snap, err)
	}

	trail := filepath.Join(t.TempDir(), "audit", "audit.log")
	ev := rollout.Event{Name: "a", Version: 2, Backend: "local", Service: "web", ServiceID: "w1", Took: time.Second}
	if err := appendAudit(trail, ev.Record(time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := appendAudit(trail, ev.Record(time.Now())); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(trail)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("trail mode %v, %v; want 0600", st.Mode(), err)
	}
	env["SWARMKEEP_AUDIT_FILE"] = trail
	out := mustRun(t, env, "", "audit", "--service", "web")
	if strings.Count(out, "rollout") != 2 || !strings.Contains(out, "a@2") {
		t.Fatalf("audit shows:\n%s", out)
	}
}

func TestAgentListsTheRolloutLoop(t *testing.T) {
	code, out, _ := runCLI(t, nil, "", "agent", "--help")
	if code != 0 || !strings.Contains(out, "rollout") || !strings.Contains(out, "swarmkeep.rollout=auto") {
		t.Fatalf("agent --help: %d\n%s", code, out)
	}
	// Bad durations are a usage error before anything is started.
	if code, _, errOut := runCLI(t, nil, "", "agent", "--only", "rollout", "--rollout-poll", "0s"); code != 2 || !strings.Contains(errOut, "--rollout-poll") {
		t.Fatalf("--rollout-poll 0s: %d %q", code, errOut)
	}
}

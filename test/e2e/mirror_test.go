//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A manager whose store folder holds its own file store is never replaced
// by the replicated store's mirror unasked; the agent publishes why its
// mirror waits and `swarmkeep status` shows it with the fix.
func TestMirrorRefusalShownInStatus(t *testing.T) {
	begin(t)
	prefix := "e2em-" + E.runID
	// As the README's replicated-store install does: init from a manager,
	// with a key of its own (a new one is written).
	env := []string{"SWARMKEEP_BACKENDS=src:swarm?prefix=" + prefix, "SWARMKEEP_BACKEND=src",
		"SWARMKEEP_KEY_FILE=" + filepath.Join(E.tmp, "mirror-src.key"), "SWARMKEEP_STORE=" + filepath.Join(E.tmp, "mirror-src"),
		"SWARMKEEP_AUDIT_FILE=off"}
	if out, err := runCmd(ctxFor(t, time.Minute), E.tmp, env, nil, E.swarmkeep, "init", "--wait", "0"); err != nil {
		t.Fatalf("init of a replicated store under %s: %v\n%s", prefix, err, out)
	}
	label := "swarmkeep.mirror-refused." + prefix
	t.Cleanup(func() { setNodeLabel(t, label, "") })
	agentLog := startAgentLoops(t, "--only", "mirror", "--mirror-store", E.storeDir, "--mirror-prefix", prefix, "--mirror-resync", "1s")

	deadline := time.Now().Add(30 * time.Second)
	var out string
	for {
		var err error
		out, err = runCmd(ctxFor(t, 30*time.Second), E.tmp, nil, nil, E.swarmkeep, "status", "--plugin", E.plugin)
		if err != nil {
			t.Fatalf("status with one manager whose mirror waits: %v\n%s", err, out)
		}
		if strings.Contains(out, "WAITING") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status does not show the waiting mirror within 30s:\n%s\nagent log:\n%s", out, agentLog.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, want := range []string{prefix + " waiting", "mirror " + prefix + ": " + E.storeDir, "--mirror-adopt"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	t.Logf("status with the mirror waiting:\n%s", out)
	// The plugin's own store is untouched: it still serves what it held.
	name := uniq("mirror_keep")
	put(t, name, []byte("kept-by-the-file-store"))
	if got := cliRun(t, nil, "get", name); got != "kept-by-the-file-store" {
		t.Fatalf("the file store after the mirror's refusal: get %s = %q", name, got)
	}
}

// setNodeLabel sets (or, with "", removes) a label on the test engine's node.
func setNodeLabel(t *testing.T, key, value string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info, err := E.cli.Info(ctx)
	if err != nil {
		t.Errorf("engine info: %v", err)
		return
	}
	n, _, err := E.cli.NodeInspectWithRaw(ctx, info.Swarm.NodeID)
	if err != nil {
		t.Errorf("node inspect: %v", err)
		return
	}
	spec := n.Spec
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	if value == "" {
		delete(spec.Labels, key)
	} else {
		spec.Labels[key] = value
	}
	if err := E.cli.NodeUpdate(ctx, n.ID, n.Version, spec); err != nil {
		t.Errorf("node update: %v", err)
	}
}

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/metrics"
	"github.com/swarmkeep/swarmkeep/driver/server"
)

// TestPublishedLabelHoldsNoSettingValue: the node label is stored in Raft
// and shown by docker node inspect on every manager, so a plugin that
// cannot serve is published by its summary, never by its problem text,
// which may quote a setting (here a token pasted into BACKENDS).
func TestPublishedLabelHoldsNoSettingValue(t *testing.T) {
	const leak = "hvs.CAESIJleakedTokenValue0123"
	env := map[string]string{server.EnvBackends: "kv:vault&token=" + leak}
	getenv := func(k string) string { return env[k] }
	_, cause := server.Load(getenv)
	if cause == nil {
		t.Fatal("Load accepted a bad BACKENDS")
	}
	// The problem text as an older plugin would have served it, value and
	// all: the label must not carry it either way.
	h := server.NewBroken(getenv, cause, nil, "test").Health()
	h.Problem += " (" + leak + ")"
	var pp publishedPlugin
	pp.fromHealth(h)
	label, _ := json.Marshal(pp)
	if strings.Contains(string(label), leak) || !strings.Contains(pp.Problem, "bad setting BACKENDS") || pp.Status != metrics.StatusDegraded {
		t.Fatalf("label %s", label)
	}
	h.ProblemSummary = "" // a plugin from before the summary
	pp = publishedPlugin{}
	pp.fromHealth(h)
	if label, _ := json.Marshal(pp); strings.Contains(string(label), leak) || pp.Problem == "" {
		t.Fatalf("label for an older plugin %s", label)
	}
	// A plugin that serves, with a backend not ready, still says which.
	pp = publishedPlugin{}
	pp.fromHealth(metrics.Health{Status: metrics.StatusDegraded, Backends: map[string]metrics.BackendHealth{"kv": {Error: "connection refused"}}})
	if !strings.Contains(pp.Problem, "kv (connection refused)") {
		t.Fatalf("not-ready backend published as %q", pp.Problem)
	}
}

// TestHealthProblemOverTCP: the TCP /health of a plugin that cannot serve
// carries only the summary; status must say that, not "backend not ready".
func TestHealthProblemOverTCP(t *testing.T) {
	const sum = "plugin cannot serve: bad setting BACKENDS; fix: " + server.BrokenFix
	err := healthProblem(metrics.Health{Status: metrics.StatusDegraded, ProblemSummary: sum})
	if err == nil || err.Error() != sum {
		t.Fatalf("got %v, want %q", err, sum)
	}
}

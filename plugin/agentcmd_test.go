package main

import (
	"context"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/swarm/agent"
)

func TestAgentLoopNames(t *testing.T) {
	saved, savedCmd := agentLoops, commands["agent"]
	defer func() { agentLoops, commands["agent"] = saved, savedCmd }()
	agentLoops = map[string]agentLoopDef{}
	if _, err := agentLoopNames(""); err == nil {
		t.Fatal("no loops registered: no error")
	}
	noop := func() (agent.Loop, error) {
		return agent.Loop{Name: "x", Run: func(context.Context, *agent.Env) error { return nil }}, nil
	}
	registerAgentLoop("b", agentLoopDef{summary: "second", build: noop})
	registerAgentLoop("a", agentLoopDef{summary: "first", build: noop})
	if got, err := agentLoopNames(""); err != nil || strings.Join(got, ",") != "a,b" {
		t.Fatalf("all loops = %v, %v; want a,b", got, err)
	}
	if got, err := agentLoopNames("b"); err != nil || strings.Join(got, ",") != "b" {
		t.Fatalf("--only b = %v, %v", got, err)
	}
	if _, err := agentLoopNames("a,nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("--only with an unknown loop: %v", err)
	}
	if u := commands["agent"].usage; !strings.Contains(u, "first") || !strings.Contains(u, "second") {
		t.Fatalf("agent usage does not list the registered loops:\n%s", u)
	}
}

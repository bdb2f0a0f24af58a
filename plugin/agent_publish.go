package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
	"github.com/swarmkeep/swarmkeep/swarm/agent"
)

// pluginLabel is the node label under which each manager's agent publishes
// what its plugin serves, for `swarmkeep status` on any manager.
const pluginLabel = "swarmkeep.plugin"

// publishedPlugin is that label's JSON: what status compares across
// managers. Only fingerprints: never a name or a value.
type publishedPlugin struct {
	Enabled bool                           `json:"enabled"`
	Version string                         `json:"version,omitempty"`
	Config  string                         `json:"config,omitempty"` // settings hash
	Status  string                         `json:"status,omitempty"`
	Stores  map[string]backend.StoreDigest `json:"stores,omitempty"`
	Problem string                         `json:"problem,omitempty"`
}

func init() {
	var name string
	var every time.Duration
	registerAgentLoop("publish", agentLoopDef{
		summary: "publish what this manager's plugin serves (node label swarmkeep.plugin) for status",
		flags: func(fs *flag.FlagSet, env *cliEnv) {
			fs.StringVar(&name, "publish-plugin", "swarmkeep:latest", "publish: the plugin")
			fs.DurationVar(&every, "publish-every", 2*time.Second, "publish: read the plugin's /health every")
		},
		build: func() (agent.Loop, error) {
			if every < 100*time.Millisecond {
				return agent.Loop{}, fmt.Errorf("%w: --publish-every must be at least 100ms", errUsage)
			}
			return agent.Loop{Name: "publish", Run: func(ctx context.Context, env *agent.Env) error {
				t := time.NewTicker(every)
				defer t.Stop()
				for {
					if err := env.SetNodeLabels(ctx, map[string]string{pluginLabel: readPlugin(ctx, env, name)}); err != nil {
						return err
					}
					select {
					case <-ctx.Done():
						return nil
					case <-t.C:
					}
				}
			}}, nil
		},
	})
}

// readPlugin reads the local plugin's /health on its root-only socket and
// returns the label value; a plugin missing, disabled or unreachable is
// published as such, with the reason.
func readPlugin(ctx context.Context, env *agent.Env, name string) string {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	var pp publishedPlugin
	info, err := findPlugin(ctx, env.Docker, name)
	if info.Enabled != nil {
		pp.Enabled = *info.Enabled
	}
	if err == nil {
		h, _, herr := fetchHealth(ctx, info)
		if err = herr; err == nil {
			pp.fromHealth(h)
		}
	}
	if err != nil {
		pp.Problem = err.Error()
	}
	b, _ := json.Marshal(pp)
	return string(b)
}

// fromHealth fills pp from the plugin's /health. The label is stored in
// Raft and shown by docker node inspect on every manager, so a plugin that
// cannot serve is published by its value-free summary, never by its
// Problem, which may quote what a setting holds.
func (pp *publishedPlugin) fromHealth(h metrics.Health) {
	pp.Version, pp.Config, pp.Status, pp.Stores = h.Version, h.ConfigHash, h.Status, h.Stores
	switch {
	case h.Problem != "" || h.ProblemSummary != "":
		pp.Problem = h.ProblemSummary
		if pp.Problem == "" { // a plugin from before the summary
			pp.Problem = "plugin cannot serve; run swarmkeep status on this manager for the cause"
		}
	default:
		if err := healthProblem(h); err != nil {
			pp.Problem = err.Error()
		}
	}
}

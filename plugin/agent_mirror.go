package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/swarmkeep/swarmkeep/driver/server"
	"github.com/swarmkeep/swarmkeep/swarm/agent"
	"github.com/swarmkeep/swarmkeep/swarm/configstore"
)

// The mirror loop copies the replicated ("swarm") store from the swarm's
// configs into this manager's store folder, which the plugin reads.
func init() {
	var dir, prefix string
	var resync time.Duration
	var adopt bool
	registerAgentLoop("mirror", agentLoopDef{
		summary: "copy the replicated store (swarm configs) into this manager's store folder",
		flags: func(fs *flag.FlagSet, env *cliEnv) {
			fs.StringVar(&dir, "mirror-store", server.DefaultStoreDir, "mirror: the plugin's store folder on this host")
			fs.StringVar(&prefix, "mirror-prefix", configstore.DefaultPrefix, "mirror: the replicated store's prefix")
			fs.DurationVar(&resync, "mirror-resync", time.Minute, "mirror: full comparison every")
			fs.BoolVar(&adopt, "mirror-adopt", false, "mirror: replace a store in --mirror-store that the mirror did not fill (a file store being moved to the swarm's)")
		},
		build: func() (agent.Loop, error) {
			if resync < time.Second {
				return agent.Loop{}, fmt.Errorf("%w: --mirror-resync must be at least 1s", errUsage)
			}
			return agent.Loop{Name: "mirror", Run: func(ctx context.Context, env *agent.Env) error {
				m := &configstore.Mirror{API: env.Docker, Prefix: prefix, Dir: dir, Resync: resync, Adopt: adopt,
					// Waiting, not failing: the agent's other loops run on.
					// A folder refused for holding another store is
					// published too, for swarmkeep status; no swarm store
					// at all is how a file-store manager runs the agent.
					Refused: func(err error) error {
						if env.Log != nil {
							env.Log.Warnf("mirror: %v", err)
						}
						why := ""
						if errors.Is(err, configstore.ErrForeignStore) {
							why = clipLabel(err.Error())
						}
						lerr := env.SetNodeLabels(ctx, map[string]string{configstore.MirrorRefusedLabel(prefix): why})
						if lerr != nil && env.Log != nil {
							env.Log.Warnf("mirror: publishing why it waits (tried again next pass): %v", lerr)
						}
						return lerr
					},
					Publish: func(ctx context.Context, index uint64) error {
						return env.SetNodeLabels(ctx, map[string]string{
							configstore.MirrorLabel(prefix):        strconv.FormatUint(index, 10),
							configstore.MirrorRefusedLabel(prefix): "", // a pass succeeded
						})
					}}
				return m.Run(ctx)
			}}, nil
		},
	})
}

// maxLabelReason bounds a reason published in a node label, which every
// manager stores in Raft and status prints on one line.
const maxLabelReason = 300

// clipLabel keeps the start and the end of s (the reason's fix comes last),
// cut at rune boundaries.
func clipLabel(s string) string {
	if len(s) <= maxLabelReason {
		return s
	}
	head, tail := maxLabelReason/2, maxLabelReason/2-3
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	t := len(s) - tail
	for t < len(s) && !utf8.RuneStart(s[t]) {
		t++
	}
	return s[:head] + "..." + s[t:]
}

package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

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
					Refused: func(err error) {
						if env.Log != nil {
							env.Log.Warnf("mirror: %v", err)
						}
					},
					Publish: func(ctx context.Context, index uint64) error {
						return env.SetNodeLabels(ctx, map[string]string{configstore.MirrorLabel(prefix): strconv.FormatUint(index, 10)})
					}}
				return m.Run(ctx)
			}}, nil
		},
	})
}

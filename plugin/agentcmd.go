package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/client"
	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/swarm/agent"
)

// agentLoopDef is one loop `swarmkeep agent` can run. Each concern registers
// its own in its file's init, with the flags it needs.
type agentLoopDef struct {
	summary string
	// flags binds the loop's flags; build is called after parsing.
	flags func(fs *flag.FlagSet, env *cliEnv)
	build func() (agent.Loop, error)
}

var agentLoops = map[string]agentLoopDef{}

func registerAgentLoop(name string, d agentLoopDef) {
	if _, dup := agentLoops[name]; dup {
		panic("agent loop registered twice: " + name)
	}
	agentLoops[name] = d
	// Init order across files is not ours to rely on: keep the usage's
	// list of loops current whichever registers first.
	if c, ok := commands["agent"]; ok {
		c.usage = agentUsage()
		commands["agent"] = c
	}
}

func init() {
	register("agent", command{
		summary: "run the manager agent (the Docker-side work the plugin never does)",
		usage:   agentUsage(),
		run:     runAgent,
	})
}

func agentUsage() string {
	var b strings.Builder
	b.WriteString(`Usage: swarmkeep agent [--only LOOP,...] [loop flags]

Runs beside each manager's engine (DOCKER_HOST, or the default socket) until
SIGTERM: the work that needs the Docker API, which the plugin never gets. Run
it as the systemd unit in scripts/swarmkeep-agent.service. A loop that fails
is logged and restarted with a backoff; the others go on.

  --only LOOP,...   run only these loops (default all)

Loops:
`)
	names := make([]string, 0, len(agentLoops))
	for n := range agentLoops {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-14s %s\n", n, agentLoops[n].summary)
	}
	return b.String()
}

func runAgent(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	only := fs.String("only", "", "run only these loops")
	for _, d := range agentLoops {
		if d.flags != nil {
			d.flags(fs, env)
		}
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	names, err := agentLoopNames(*only)
	if err != nil {
		return err
	}
	loops := make([]agent.Loop, 0, len(names))
	for _, n := range names {
		l, err := agentLoops[n].build()
		if err != nil {
			return fmt.Errorf("loop %s: %w", n, err)
		}
		loops = append(loops, l)
	}

	log := logrus.New()
	log.SetOutput(env.stderr)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: false, FullTimestamp: true})
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer docker.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	a, err := agent.NewEnv(sctx, docker, log)
	cancel()
	if err != nil {
		return err
	}
	log.WithFields(logrus.Fields{"node": a.NodeID, "loops": strings.Join(names, ","), "version": version}).Info("swarmkeep agent running")
	return agent.Run(ctx, a, loops)
}

// agentLoopNames resolves --only: every registered loop when empty.
func agentLoopNames(only string) ([]string, error) {
	var names []string
	if only == "" {
		for n := range agentLoops {
			names = append(names, n)
		}
	} else {
		for _, n := range strings.Split(only, ",") {
			n = strings.TrimSpace(n)
			if _, ok := agentLoops[n]; !ok {
				return nil, fmt.Errorf("%w: --only: unknown loop %q (see swarmkeep agent --help)", errUsage, n)
			}
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no agent loop is built into this binary")
	}
	sort.Strings(names)
	return names, nil
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/sirupsen/logrus"
)

// Env is what every loop gets: the local engine's API and this node's identity.
type Env struct {
	// Docker is the engine this agent runs beside, a swarm manager.
	Docker client.APIClient
	// NodeID is that engine's swarm node ID.
	NodeID string
	// Log is the agent's logger; loops log through Run's errors, or here
	// for progress an operator wants to read (never a value).
	Log logrus.FieldLogger
}

// NewEnv checks that docker is an active swarm manager and returns its Env.
func NewEnv(ctx context.Context, docker client.APIClient, log logrus.FieldLogger) (*Env, error) {
	info, err := docker.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking the engine at %s: %w", docker.DaemonHost(), err)
	}
	if info.Swarm.LocalNodeState != swarm.LocalNodeStateActive || !info.Swarm.ControlAvailable {
		return nil, fmt.Errorf("the engine at %s is not an active swarm manager (state %q): run the agent on each manager", docker.DaemonHost(), info.Swarm.LocalNodeState)
	}
	return &Env{Docker: docker, NodeID: info.Swarm.NodeID, Log: log}, nil
}

// Leader tells whether this node leads the swarm now. Leadership can move at
// any moment; a loop that acts only on the leader asks before each action and
// keeps its actions idempotent, so two agents that both believed they led for
// a moment do no harm.
func (e *Env) Leader(ctx context.Context) (bool, error) {
	n, _, err := e.Docker.NodeInspectWithRaw(ctx, e.NodeID)
	if err != nil {
		return false, fmt.Errorf("inspecting this node %s: %w", e.NodeID, err)
	}
	return n.ManagerStatus != nil && n.ManagerStatus.Leader, nil
}

// Loop is one concern of the agent.
type Loop struct {
	// Name is the loop's name in logs and in `swarmkeep agent --only`.
	Name string
	// Run works until ctx ends (then it returns ctx's error or nil) or until
	// it fails (then Run restarts it after a backoff).
	Run func(ctx context.Context, env *Env) error
}

// Backoff bounds for a loop that fails: the first restart waits backoffMin,
// each further failure doubles it up to backoffMax, and a loop that ran for
// backoffReset before failing starts again from backoffMin.
var (
	backoffMin   = time.Second
	backoffMax   = 30 * time.Second
	backoffReset = time.Minute
)

// Run runs every loop until ctx ends, restarting a failed loop after a
// backoff, and returns once all loops have returned.
func Run(ctx context.Context, env *Env, loops []Loop) error {
	if len(loops) == 0 {
		return errors.New("no agent loop to run")
	}
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			supervise(ctx, env, l)
		}()
	}
	wg.Wait()
	return nil
}

// supervise runs l again and again until ctx ends.
func supervise(ctx context.Context, env *Env, l Loop) {
	log := env.Log.WithField("loop", l.Name)
	wait := backoffMin
	for {
		started := time.Now()
		err := runOnce(ctx, env, l)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) >= backoffReset {
			wait = backoffMin
		}
		if err == nil {
			err = errors.New("returned before the agent stopped")
		}
		log.WithError(err).Warnf("agent loop failed; restarting in %s", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, backoffMax)
	}
}

// runOnce runs l once, turning a panic into an error so one loop's defect
// cannot stop the others.
func runOnce(ctx context.Context, env *Env, l Loop) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return l.Run(ctx, env)
}

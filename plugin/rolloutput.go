package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/swarm/rollout"
)

// putRollout is put's --rollout: the put, then a rollout of the name.
type putRollout struct {
	on bool
	o  rolloutOpts
	fs *flag.FlagSet
}

func (p *putRollout) bind(fs *flag.FlagSet) {
	p.fs = fs
	fs.BoolVar(&p.on, "rollout", false, "roll out the services using NAME")
	p.o.bind(fs)
}

func (p *putRollout) run(ctx context.Context, env *cliEnv, s *store.Store, name string) error {
	if !p.on {
		return nil
	}
	return rolloutNames(ctx, env, s, storeFlagsOf(p.fs), p.o, []string{name})
}

// rmGuard is rm's check that no service needs what is removed.
type rmGuard struct {
	force bool
	u     usesFlags
	fs    *flag.FlagSet
}

func (g *rmGuard) bind(fs *flag.FlagSet) {
	g.fs = fs
	fs.BoolVar(&g.force, "force", false, "remove even when services use it")
	g.u.bind(fs)
}

// check refuses to remove name (or its version, 0 for all) when a service
// mounts a secret resolving to it and the removal changes what its tasks
// get: the whole name, the latest version (tasks would silently get an
// older one) or a version a secret pins. An old version nobody pins goes.
func (g *rmGuard) check(ctx context.Context, env *cliEnv, s *store.Store, name string, version uint64) error {
	if g.force {
		return nil
	}
	g.u.resolve(env)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	users, err := g.users(ctx, name)
	if err != nil {
		// Not named: the name may not exist (a value typed in the wrong place).
		fmt.Fprintf(env.stderr, "note: could not check whether a service uses it (%v); removing it anyway\n", err)
		return nil
	}
	if len(users.Services) == 0 {
		return nil
	}
	if version != 0 {
		latest, err := latestVersion(ctx, s, name)
		if err != nil {
			return err
		}
		pinned := false
		for _, sec := range users.Secrets {
			pinned = pinned || sec.Pinned == version
		}
		if version != latest && !pinned {
			return nil
		}
	}
	var names []string
	for _, u := range users.Services {
		names = append(names, u.Name)
	}
	slices.Sort(names)
	what := name
	if version != 0 {
		what = fmt.Sprintf("version %d of %s (the latest or a pinned one)", version, name)
	}
	return fmt.Errorf("%s is used by service(s) %s: their next tasks would fail or get another value; "+
		"swarmkeep uses %s shows how, and --force removes it anyway", what, strings.Join(names, ", "), name)
}

func (g *rmGuard) users(ctx context.Context, name string) (rollout.Report, error) {
	api, err := connectSwarm()
	if err != nil {
		return rollout.Report{}, err
	}
	defer api.Close()
	t, err := g.u.target(ctx, api, storeFlagsOf(g.fs), name)
	if err != nil {
		return rollout.Report{}, err
	}
	return rollout.Find(ctx, api, t)
}

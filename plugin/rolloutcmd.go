package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/swarmkeep/swarmkeep/driver/audit"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/swarm/rollout"
)

// rolloutOpts are the flags of every command that rolls services out.
type rolloutOpts struct {
	usesFlags
	dryRun, noVerify bool
	timeout          time.Duration
}

const rolloutFlagsUsage = `  --dry-run                print the plan (each service's own update config) and change nothing
  --timeout DURATION       bound on each service's update (default 10m)
  --no-verify              do not check the audit trail for the version new tasks were served
` + usesFlagsUsage

func (o *rolloutOpts) bind(fs *flag.FlagSet) {
	o.usesFlags.bind(fs)
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the plan")
	fs.BoolVar(&o.noVerify, "no-verify", false, "skip the audit check")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on each service's update")
}

func init() {
	register("rollout", command{
		summary: "roll every service that uses stored names, so all tasks get the latest versions",
		usage: `Usage: swarmkeep rollout NAME... [flags] [store flags]

Starts a rolling update of every service that mounts a secret resolving to
a NAME (see swarmkeep uses), one service after another: the same update as
docker service update --force, following each service's own update config
(--update-parallelism, --update-order start-first, --update-failure-action,
--update-delay, --update-monitor). Each new task asks the plugin again and
gets the latest version. It waits until the update converged, then checks
in the audit trail that every new task was served the latest version.
Services are never repointed and no secret object is created or removed.

Exits 1 naming the service when its update fails, pauses or rolls back (a
value the tasks cannot live with: swarmkeep rollback NAME), and stops there.

` + rolloutFlagsUsage + storeFlagsUsage,
		run: runRollout,
	})
	register("rollback", command{
		summary: "make the previous (or a named) version current again, then roll out",
		usage: `Usage: swarmkeep rollback NAME [--to VERSION] [--no-rollout] [flags] [store flags]

Puts the content of the version before the latest (or of --to VERSION) as a
new version of NAME, so history is kept and version numbers only grow, then
rolls out every service that uses NAME, as swarmkeep rollout does.

docker service rollback restores a service's previous spec, not a value: the
tasks it starts ask the plugin again and get the latest version, the one
being rolled back from. swarmkeep rollback changes the value, and is recorded
in the audit trail with the OS user.

  --to VERSION             the version whose content becomes current (default: the one before the latest)
  --no-rollout             only make the version current; tasks get it when they next start
` + rolloutFlagsUsage + storeFlagsUsage,
		run: runRollback,
	})
}

func runRollout(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("rollout", flag.ContinueOnError)
	var sf storeFlags
	var o rolloutOpts
	sf.bind(fs, env)
	o.bind(fs)
	names, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("%w: want one or more NAME arguments", errUsage)
	}
	for _, n := range names {
		if err := store.ValidateName(n); err != nil {
			return err
		}
	}
	ctx, s, done, err := sf.openInterruptible()
	if err != nil {
		return err
	}
	defer done()
	return rolloutNames(ctx, env, s, sf, o, names)
}

// rolled is one service to roll and the names it must end on.
type rolled struct {
	id, name string
	checks   []rollout.Check
}

// rolloutNames rolls every service using one of names, one at a time.
func rolloutNames(ctx context.Context, env *cliEnv, s *store.Store, sf storeFlags, o rolloutOpts, names []string) error {
	o.resolve(env)
	api, err := connectSwarm()
	if err != nil {
		return err
	}
	defer api.Close()
	var order []*rolled
	byID := map[string]*rolled{}
	for i, name := range names {
		latest, err := latestVersion(ctx, s, name)
		if err != nil {
			return notStored(i+1, err)
		}
		t, err := o.target(ctx, api, sf, name)
		if err != nil {
			return err
		}
		rep, err := rollout.Find(ctx, api, t)
		if err != nil {
			return fmt.Errorf("%w (rollout needs the Docker API of a swarm manager: set DOCKER_HOST)", err)
		}
		for _, w := range rep.Warnings {
			fmt.Fprintf(env.stderr, "warning: %s\n", w)
		}
		if len(rep.Services) == 0 {
			fmt.Fprintf(env.stdout, "%s: no service uses it (backend %s, driver %s)\n", name, t.Backend, strings.Join(t.Plugins, ", "))
		}
		for _, u := range rep.Services {
			if !u.Rollable() {
				fmt.Fprintf(env.stdout, "%s: skipped: every secret of it that resolves to %s pins a version (swarmkeep.version)\n", u.Name, name)
				continue
			}
			r := byID[u.ID]
			if r == nil {
				r = &rolled{id: u.ID, name: u.Name}
				byID[u.ID] = r
				order = append(order, r)
			}
			if !o.noVerify {
				r.checks = append(r.checks, rollout.Check{Name: name, Want: latest, Served: func() (rollout.Served, error) { return o.served(t) }})
			}
		}
		fmt.Fprintf(env.stdout, "%s: latest version %d\n", name, latest)
	}
	if o.dryRun {
		for _, r := range order {
			svc, _, err := api.ServiceInspectWithRaw(ctx, r.id, swarm.ServiceInspectOptions{})
			if err != nil {
				return fmt.Errorf("service %s: %w", r.name, err)
			}
			fmt.Fprintf(env.stdout, "would roll %s\n", rollout.PlanOf(svc))
			for _, c := range r.checks {
				fmt.Fprintf(env.stdout, "  then check that every new task was served %s version %d or later\n", c.Name, c.Want)
			}
		}
		fmt.Fprintln(env.stdout, "dry run: nothing changed")
		return nil
	}
	for i, r := range order {
		svc, _, err := api.ServiceInspectWithRaw(ctx, r.id, swarm.ServiceInspectOptions{})
		if err != nil {
			return fmt.Errorf("service %s: %w", r.name, err)
		}
		fmt.Fprintf(env.stdout, "rolling %s\n", rollout.PlanOf(svc))
		sctx, cancel := context.WithTimeout(ctx, o.timeout)
		res, err := rollout.Roll(sctx, api, r.id, rollout.Options{
			Checks: r.checks,
			Progress: func(p rollout.Progress) {
				line := p.Service + ": " + p.State
				if p.Total > 0 { // none yet while waiting or requested
					line += fmt.Sprintf(", %d/%d tasks updated", p.Updated, p.Total)
				}
				if p.Message != "" {
					line += ": " + p.Message
				}
				fmt.Fprintln(env.stdout, line)
			},
		})
		cancel()
		if err != nil {
			return rolloutFailed(err, names, order[i+1:])
		}
		fmt.Fprintf(env.stdout, "%s: done in %s, %d task(s) on the new spec\n", r.name, res.Took.Round(100*time.Millisecond), len(res.Tasks))
	}
	return nil
}

// rolloutFailed explains a failed rollout: what the service did, what its
// tasks get now, and what was not rolled.
func rolloutFailed(err error, names []string, left []*rolled) error {
	msg := err.Error()
	if rollout.IsRolledBack(err) {
		fix := "swarmkeep rollback NAME"
		if len(names) == 1 {
			fix = "swarmkeep rollback " + names[0]
		}
		msg += fmt.Sprintf("; its spec is back, but every task it starts still gets the latest %s from the store: %s makes the previous value current again",
			strings.Join(names, ", "), fix)
	}
	var f *rollout.Failure
	if errors.As(err, &f) && !f.RolledBack && strings.Contains(f.Reason, "paused") {
		msg += fmt.Sprintf(" (docker service update --rollback %s, or swarmkeep rollback NAME then swarmkeep rollout NAME)", f.Service)
	}
	if len(left) > 0 {
		var ns []string
		for _, r := range left {
			ns = append(ns, r.name)
		}
		msg += "; not rolled: " + strings.Join(ns, ", ")
	}
	return errors.New(msg)
}

func runRollback(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("rollback", flag.ContinueOnError)
	var sf storeFlags
	var o rolloutOpts
	sf.bind(fs, env)
	auditFile := auditFileFlag(fs, env)
	o.bind(fs)
	to := fs.Uint64("to", 0, "version")
	noRollout := fs.Bool("no-rollout", false, "only make the version current")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 1, "NAME"); err != nil {
		return err
	}
	name := pos[0]
	ctx, s, done, err := sf.openInterruptible()
	if err != nil {
		return err
	}
	defer done()
	e, err := s.Info(ctx, name)
	if err != nil {
		return notStored(1, err)
	}
	if len(e.Versions) == 0 {
		return fmt.Errorf("%s has no version to roll back to", name)
	}
	current := e.Versions[len(e.Versions)-1].Version
	target := *to
	if target == 0 {
		if len(e.Versions) < 2 {
			return fmt.Errorf("%s keeps only version %d: there is no previous version to roll back to (swarmkeep ls %s)", name, current, name)
		}
		target = e.Versions[len(e.Versions)-2].Version
	}
	if target == current {
		return fmt.Errorf("%w: version %d of %s is already the latest", errUsage, target, name)
	}
	if o.dryRun {
		fmt.Fprintf(env.stdout, "would put the content of %s version %d as a new version (latest is %d)\n", name, target, current)
		if *noRollout {
			return nil
		}
		return rolloutNames(ctx, env, s, sf, o, []string{name})
	}
	sec, err := s.Get(ctx, name, target)
	if err != nil {
		return fmt.Errorf("%w (swarmkeep ls %s lists the versions kept)", err, name)
	}
	ver, err := s.Put(ctx, name, sec.Value)
	clear(sec.Value)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s: version %d holds the content of version %d (version %d stays in the history)\n", name, ver, target, current)
	recordAction(env, *auditFile, sf.backend, audit.Record{Action: audit.ActionRollback, Stored: name, Version: ver})
	if err := sf.awaitCopies(ctx, env, s); err != nil {
		return err
	}
	if *noRollout {
		return nil
	}
	return rolloutNames(ctx, env, s, sf, o, []string{name})
}

// notStored reports a NAME argument that names nothing stored without
// echoing it: a value typed in the wrong place lands there.
func notStored(arg int, err error) error {
	if errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("argument %d is not a stored name (not shown: it could be a value); swarmkeep ls lists the names", arg)
	}
	return err
}

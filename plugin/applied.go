package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/store"
)

// defaultApplyWait bounds how long put and rm wait for the plugins' etcd
// replicas: the watch delivers in milliseconds, so seconds mean a plugin
// that cannot reach etcd.
const defaultApplyWait = 5 * time.Second

const applyWaitUsage = `  --wait D      with an etcd backend, wait up to D for every running plugin's replica
                to hold the change, and name any that do not (default 5s; 0: do not wait)
`

func bindApplyWait(fs *flag.FlagSet, d *time.Duration) {
	fs.DurationVar(d, "wait", defaultApplyWait, "wait for the plugins' replicas")
}

// applied is the medium side of that wait (etcdstore.Medium has it): how
// many plugins confirmed, and the ones that lag, named.
type applied interface {
	WaitApplied(ctx context.Context) (int, []string, error)
}

// confirmApplied waits until every plugin that publishes its replica's
// revision holds this command's write, so that when put or rm returns, the
// next GetSecret on every manager answers the new state. Media without
// replicas (the file store, read from disk on every request) need nothing.
func confirmApplied(ctx context.Context, env *cliEnv, s *store.Store, wait time.Duration) error {
	m, ok := s.Medium().(applied)
	if !ok || wait <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	n, lag, err := m.WaitApplied(ctx)
	if err != nil {
		return fmt.Errorf("stored, but the plugins' applied revisions could not be read: %w", err)
	}
	if len(lag) > 0 {
		return fmt.Errorf("stored, but %d plugin(s) have not applied the change within %s and answer the previous state until they do: %s "+
			"(check that manager's connection to etcd: its answers are marked stale in the audit trail and swarmkeep status until it lists the store again)",
			len(lag), wait, strings.Join(lag, ", "))
	}
	if n > 0 {
		fmt.Fprintf(env.stderr, "applied by %d plugin(s)\n", n)
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/store"
)

// applied is the medium side of that wait (etcdstore.Medium has it): how
// many plugins confirmed, and the ones that lag, named.
type applied interface {
	WaitApplied(ctx context.Context) (int, []string, error)
}

// confirmApplied waits (up to --wait) until every plugin that publishes its
// etcd replica's revision holds this command's write, so that when put or rm returns, the
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

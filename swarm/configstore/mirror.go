package configstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// MirrorAPI is what the mirror needs of the manager's engine.
type MirrorAPI interface {
	API
	Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error)
}

// ErrNoStore is returned by Sync when the swarm holds no replicated store
// under the prefix while the folder holds one: the folder is left alone,
// and Run waits for the store to appear (a manager that uses a file store
// runs the agent for its other loops).
var ErrNoStore = errors.New("the swarm holds no replicated store")

// ErrForeignStore is returned by Sync when the folder holds another store
// than the swarm's and nothing says the mirror put it there: most likely a
// manager's own file store, which the mirror must never replace unasked.
// Like ErrNoStore, Run waits (and reports it through Refused) rather than
// fail; Adopt allows the replacement.
var ErrForeignStore = errors.New("holds another store than the swarm's")

// MirrorLabel is the node label under which a manager's agent publishes the
// Raft index its store folder has caught up with, for a store prefix: every
// write at or below that index is in the folder, so this manager's plugin
// answers it.
func MirrorLabel(prefix string) string { return "swarmkeep.mirror." + prefix }

// MirrorRefusedLabel is the node label under which a manager's agent
// publishes why its mirror leaves the folder alone (empty once a pass
// succeeds), so swarmkeep status on any manager can say why that manager's
// copy falls behind.
func MirrorRefusedLabel(prefix string) string { return "swarmkeep.mirror-refused." + prefix }

// Mirror keeps a local store folder equal to a swarm store: it lists the
// heads at start (a manager that joins or returns catches up), then follows
// the engine's config events, with a full pass every Resync in case an
// event was missed. It writes with a DirMedium, atomically, so the plugin
// reading the folder (inotify) sees each record whole and at once.
type Mirror struct {
	API    MirrorAPI
	Prefix string
	Dir    string
	Resync time.Duration
	// Publish is called after each pass that brought the folder up to
	// index (a Raft index), to tell the other managers.
	Publish func(ctx context.Context, index uint64) error
	// Adopt lets the mirror replace a store in the folder that it did not
	// put there (the migration of a manager's file store to the swarm's).
	Adopt bool
	// Refused, if set, is told why a pass left the folder alone
	// (ErrNoStore, ErrForeignStore), once per distinct reason, so the
	// operator reads it while Run waits; an error it returns (the reason
	// could not be published) makes the next pass tell it again.
	Refused func(err error) error

	applied  map[string]uint64 // key -> head index written to the folder
	swarmID  string            // store ID of the swarm keyring last fetched
	owned    bool              // the last pass found the folder ours to write
	lastDeny string            // the reason last given to Refused
	// afterWrite, if set, runs after each write of a pass to the folder:
	// tests read the folder there, as the plugin may at any moment.
	afterWrite func()
}

func (m *Mirror) wrote() {
	if m.afterWrite != nil {
		m.afterWrite()
	}
}

// idle reports whether err only means the folder is left alone for now.
func idle(err error) bool { return errors.Is(err, ErrNoStore) || errors.Is(err, ErrForeignStore) }

// Run mirrors until ctx ends.
func (m *Mirror) Run(ctx context.Context) error {
	if err := checkPrefix(m.Prefix); err != nil {
		return err
	}
	local, err := store.OpenDir(m.Dir)
	if err != nil {
		return err
	}
	defer local.Close()
	m.applied = map[string]uint64{}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Events first, then the listing: nothing committed in between is missed.
	msgs, errs := m.API.Events(ectx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", string(events.ConfigEventType)))})
	if err := m.Sync(ctx, local); err != nil && !idle(err) {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	resync := m.Resync
	if resync <= 0 {
		resync = time.Minute
	}
	tick := time.NewTicker(resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("following config events: %w", err)
		case ev := <-msgs:
			// The heads named by the events first, so this manager's
			// plugin answers at once; then the full pass, whose listing
			// is what proves the index published.
			if err := m.applyHeads(ctx, local, drain(ev, msgs)); err != nil && ctx.Err() == nil {
				return err
			}
		case <-tick.C:
			m.applied = map[string]uint64{} // compare every blob again
		}
		if err := m.Sync(ctx, local); err != nil && !idle(err) {
			if ctx.Err() != nil {
				return nil // stopping: not a failure
			}
			return err
		}
	}
}

// drain takes the events already queued (one pass covers them all) and
// returns the configs created or updated, in order, once each.
func drain(first events.Message, c <-chan events.Message) []string {
	var ids []string
	seen := map[string]bool{}
	ev, ok := first, true
	for ok {
		if ev.Action != events.ActionRemove && !seen[ev.Actor.ID] {
			seen[ev.Actor.ID] = true
			ids = append(ids, ev.Actor.ID)
		}
		select {
		case ev = <-c:
		default:
			ok = false
		}
	}
	return ids
}

// applyHeads copies the heads named by a burst of events, one at a time,
// if they are this store's and newer than what the folder holds. A burst
// that changed the keyring is left whole to the full pass that follows:
// the head read now may be a later keyring than the records beside it (a
// rekey's last step, coalesced with its re-sealed records), and only the
// pass orders the keyring against the records and writes them as one
// batch. Anything unexpected is left to the pass too.
func (m *Mirror) applyHeads(ctx context.Context, local *store.DirMedium, ids []string) error {
	if !m.owned {
		return nil // a folder the last pass refused is left to the next pass
	}
	heads := make([]swarm.Config, 0, len(ids))
	for _, id := range ids {
		h, _, err := m.API.ConfigInspectWithRaw(ctx, id)
		if err != nil || h.Spec.Labels[LabelStore] != m.Prefix || h.Spec.Labels[LabelKind] != kindHead {
			continue
		}
		if string(h.Spec.Data) == "keyring" {
			return nil
		}
		heads = append(heads, h)
	}
	for _, h := range heads {
		if err := m.applyHead(ctx, local, h); err != nil {
			return err
		}
	}
	return nil
}

func (m *Mirror) applyHead(ctx context.Context, local *store.DirMedium, h swarm.Config) error {
	key := string(h.Spec.Data)
	if headName(m.Prefix, key) != h.Spec.Name || m.applied[key] >= h.Version.Index {
		return nil
	}
	var err error
	var blob []byte
	if !isTombstone(h) {
		if blob, err = Assemble(h, func(id string) ([]byte, error) {
			c, _, err := m.API.ConfigInspectWithRaw(ctx, id)
			return c.Spec.Data, err
		}); err != nil {
			return nil // superseded meanwhile: the pass copies the newer one
		}
	}
	if err := apply(ctx, local, key, blob); err != nil {
		return err
	}
	m.wrote()
	m.applied[key] = h.Version.Index
	return nil
}

// bulkFetch is the number of changed heads above which a pass lists the
// data configs at once instead of inspecting each chunk.
const bulkFetch = 16

// syncAttempts bounds the passes Sync makes when heads move under it.
const syncAttempts = 5

// Sync brings the folder up to the swarm store as it is now and publishes
// the index it reached.
func (m *Mirror) Sync(ctx context.Context, local *store.DirMedium) error {
	if m.applied == nil {
		m.applied = map[string]uint64{}
	}
	for range syncAttempts {
		index, moved, err := m.pass(ctx, local)
		m.owned = err == nil
		if idle(err) {
			m.refused(err)
		}
		if err != nil {
			return err
		}
		m.lastDeny = ""
		if moved {
			continue // a head changed while we copied it: look again
		}
		if m.Publish != nil {
			if err := m.Publish(ctx, index); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("swarm store %s keeps changing while being mirrored; trying again", m.Prefix)
}

// IndexOf parses a published mirror label.
func IndexOf(label string) (uint64, bool) {
	n, err := strconv.ParseUint(label, 10, 64)
	return n, err == nil
}

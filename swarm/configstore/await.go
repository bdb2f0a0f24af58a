package configstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// NodeAPI lists the swarm's nodes.
type NodeAPI interface {
	NodeList(ctx context.Context, opts swarm.NodeListOptions) ([]swarm.Node, error)
}

// Manager is one manager as its agent's mirror published it.
type Manager struct {
	ID, Host, Addr string
	Leader         bool
	Down           bool   // unreachable or down: it catches up when it returns
	Index          uint64 // published mirror index; 0 none
	Published      bool
}

func (m Manager) String() string {
	return m.Host + " (" + m.Addr + ")"
}

// Managers returns every manager with its published mirror index for prefix.
func Managers(ctx context.Context, api NodeAPI, prefix string) ([]Manager, error) {
	nodes, err := api.NodeList(ctx, swarm.NodeListOptions{Filters: filters.NewArgs(filters.Arg("role", "manager"))})
	if err != nil {
		return nil, fmt.Errorf("listing managers: %w", err)
	}
	out := make([]Manager, 0, len(nodes))
	for _, n := range nodes {
		m := Manager{ID: n.ID, Host: n.Description.Hostname}
		if ms := n.ManagerStatus; ms != nil {
			m.Addr, m.Leader = ms.Addr, ms.Leader
			m.Down = ms.Reachability == swarm.ReachabilityUnreachable
		}
		m.Down = m.Down || n.Status.State == swarm.NodeStateDown
		m.Index, m.Published = IndexOf(n.Spec.Labels[MirrorLabel(prefix)])
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out, nil
}

// ErrLagging is wrapped by AwaitMirrors when a reachable manager has not
// applied the write in time.
var ErrLagging = errors.New("managers have not applied the change")

// AwaitMirrors waits until every reachable manager's mirror has applied
// this handle's latest write (see LastWrite), polling every poll, until ctx
// ends. It returns the managers that are down (they catch up when they
// return) and, on timeout, an error naming those that lag.
func (m *Medium) AwaitMirrors(ctx context.Context, poll time.Duration) (down []Manager, err error) {
	index := m.LastWrite()
	if index == 0 {
		return nil, nil
	}
	api, ok := m.api.(NodeAPI)
	if !ok {
		return nil, errors.New("this Docker client cannot list nodes")
	}
	var lag []string
	for {
		ms, err := Managers(ctx, api, m.prefix)
		if err != nil {
			if ctx.Err() != nil && lag != nil {
				return down, fmt.Errorf("%w (write at index %d): %s", ErrLagging, index, strings.Join(lag, "; "))
			}
			return nil, err
		}
		lag = lag[:0]
		down = down[:0]
		for _, mg := range ms {
			switch {
			case mg.Down:
				down = append(down, mg)
			case mg.Index < index:
				why := fmt.Sprintf("at %d", mg.Index)
				if !mg.Published {
					why = "no mirror published: is its swarmkeep agent running?"
				}
				lag = append(lag, mg.String()+": "+why)
			}
		}
		if len(lag) == 0 {
			return down, nil
		}
		select {
		case <-ctx.Done():
			return down, fmt.Errorf("%w (write at index %d): %s", ErrLagging, index, strings.Join(lag, "; "))
		case <-time.After(poll):
		}
	}
}

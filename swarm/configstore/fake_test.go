package configstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/swarm"
)

// fakeSwarm is an in-memory stand-in for a manager's config API with the
// semantics the medium relies on, as measured on a real engine: unique
// names (409 conflict), one Raft index per commit, and an update at a
// stale version refused with "update out of sequence". The real engines
// are in test/e2e/multi.
type fakeSwarm struct {
	mu       sync.Mutex
	index    uint64
	byID     map[string]*swarm.Config
	events   chan events.Message
	removes  int
	inspects int
}

func newFakeSwarm() *fakeSwarm {
	return &fakeSwarm{byID: map[string]*swarm.Config{}, events: make(chan events.Message, 1024)}
}

func (f *fakeSwarm) commit() swarm.Version {
	f.index++
	return swarm.Version{Index: f.index}
}

func (f *fakeSwarm) find(idOrName string) *swarm.Config {
	if c, ok := f.byID[idOrName]; ok {
		return c
	}
	for _, c := range f.byID {
		if c.Spec.Name == idOrName {
			return c
		}
	}
	return nil
}

func (f *fakeSwarm) event(action, id string) {
	select {
	case f.events <- events.Message{Type: events.ConfigEventType, Action: events.Action(action), Actor: events.Actor{ID: id}}:
	default:
	}
}

func (f *fakeSwarm) ConfigCreate(_ context.Context, spec swarm.ConfigSpec) (swarm.ConfigCreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(spec.Data) == 0 || len(spec.Data) >= 1024000 {
		return swarm.ConfigCreateResponse{}, cerrdefs.ErrInvalidArgument.WithMessage("config data must be larger than 0 and less than 1024000 bytes")
	}
	if f.find(spec.Name) != nil {
		return swarm.ConfigCreateResponse{}, cerrdefs.ErrConflict.WithMessage("config " + spec.Name + " already exists")
	}
	id := fmt.Sprintf("id%06d", f.index+1)
	f.byID[id] = &swarm.Config{ID: id, Meta: swarm.Meta{Version: f.commit()}, Spec: clone(spec)}
	f.event("create", id)
	return swarm.ConfigCreateResponse{ID: id}, nil
}

func clone(s swarm.ConfigSpec) swarm.ConfigSpec {
	labels := map[string]string{}
	for k, v := range s.Labels {
		labels[k] = v
	}
	s.Labels = labels
	s.Data = append([]byte(nil), s.Data...)
	return s
}

func (f *fakeSwarm) ConfigInspectWithRaw(_ context.Context, id string) (swarm.Config, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inspects++
	c := f.find(id)
	if c == nil {
		return swarm.Config{}, nil, cerrdefs.ErrNotFound.WithMessage("config " + id + " not found")
	}
	out := *c
	out.Spec = clone(c.Spec)
	return out, nil, nil
}

func (f *fakeSwarm) ConfigList(_ context.Context, opts swarm.ConfigListOptions) ([]swarm.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []swarm.Config
	for _, c := range f.byID {
		ok := true
		for _, l := range opts.Filters.Get("label") {
			k, v, _ := strings.Cut(l, "=")
			ok = ok && c.Spec.Labels[k] == v
		}
		if ok {
			cp := *c
			cp.Spec = clone(c.Spec)
			out = append(out, cp)
		}
	}
	return out, nil
}

func (f *fakeSwarm) ConfigUpdate(_ context.Context, id string, v swarm.Version, spec swarm.ConfigSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	switch {
	case c == nil:
		return cerrdefs.ErrNotFound.WithMessage("config " + id + " not found")
	case c.Version != v:
		return errors.New("rpc error: code = Unknown desc = update out of sequence")
	case string(spec.Data) != string(c.Spec.Data) || spec.Name != c.Spec.Name:
		return cerrdefs.ErrInvalidArgument.WithMessage("only updates to Labels are allowed")
	}
	c.Spec.Labels = clone(spec).Labels
	c.Version = f.commit()
	f.event("update", id)
	return nil
}

func (f *fakeSwarm) ConfigRemove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	if c == nil {
		return cerrdefs.ErrNotFound.WithMessage("config " + id + " not found")
	}
	delete(f.byID, c.ID)
	f.commit()
	f.removes++
	f.event("remove", c.ID)
	return nil
}

func (f *fakeSwarm) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	return f.events, make(chan error)
}

func (f *fakeSwarm) count(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.byID {
		if c.Spec.Labels[LabelKind] == kind {
			n++
		}
	}
	return n
}

package rollout

import (
	"context"
	"strings"

	"github.com/docker/docker/api/types/swarm"
)

// API is the part of the Docker client this package uses;
// *client.Client implements it.
type API interface {
	SecretList(ctx context.Context, o swarm.SecretListOptions) ([]swarm.Secret, error)
	ServiceList(ctx context.Context, o swarm.ServiceListOptions) ([]swarm.Service, error)
	ServiceInspectWithRaw(ctx context.Context, id string, o swarm.ServiceInspectOptions) (swarm.Service, []byte, error)
	ServiceUpdate(ctx context.Context, id string, v swarm.Version, spec swarm.ServiceSpec, o swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error)
	TaskList(ctx context.Context, o swarm.TaskListOptions) ([]swarm.Task, error)
}

// AutoLabel is the service label that opts a service in to auto-rollout:
// swarmkeep.rollout=auto. It is a service label, not a secret label: the
// plugin checks every swarmkeep.* secret label, never service labels.
const (
	AutoLabel = "swarmkeep.rollout"
	AutoValue = "auto"
)

// Target is a stored name as the plugin reaches it: the backend instance
// and the name in it.
type Target struct {
	// Name is the stored name (after the stack mapping), matched exactly.
	Name string
	// Backend is the instance that holds Name.
	Backend string
	// Default is the plugin's DEFAULT_BACKEND: where a secret without a
	// swarmkeep.backend label is read.
	Default string
	// Plugins are the names the plugin is installed under; a secret object
	// is the plugin's when its Spec.Driver.Name is one of them.
	Plugins []string
}

// SamePlugin compares driver names the way the engine resolves them: a
// name without a tag means :latest.
func SamePlugin(a, b string) bool {
	norm := func(s string) string {
		if i := strings.LastIndex(s, ":"); i < 0 || strings.Contains(s[i:], "/") {
			return s + ":latest"
		}
		return s
	}
	return a != "" && norm(a) == norm(b)
}

func (t Target) ours(d *swarm.Driver) bool {
	if d == nil {
		return false
	}
	for _, p := range t.Plugins {
		if SamePlugin(d.Name, p) {
			return true
		}
	}
	return false
}

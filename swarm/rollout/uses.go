package rollout

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/swarmkeep/swarmkeep/driver"
)

// SecretObject is a Swarm secret object whose requests the plugin resolves
// to the target.
type SecretObject struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Pinned is the swarmkeep.version label: tasks get that version
	// whatever is put, so a rollout changes nothing for them.
	Pinned uint64 `json:"pinned,omitempty"`
	// Services are the names of the services that mount it.
	Services []string `json:"services"`
}

// Mount is one secret reference of a service that resolves to the target.
type Mount struct {
	Secret string `json:"secret"`
	Target string `json:"target"`
	Pinned uint64 `json:"pinned,omitempty"`
}

// Task is one running task of a service and the version it was served.
type Task struct {
	ID   string `json:"id"`
	Slot int    `json:"slot,omitempty"`
	Node string `json:"node"`
	// Version is the stored version the audit trail says the plugin served
	// this task; 0 when no record was found.
	Version uint64 `json:"version,omitempty"`
}

// ServiceUse is a service that mounts at least one secret resolving to the
// target.
type ServiceUse struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Auto   bool    `json:"auto_rollout"`
	Mounts []Mount `json:"mounts"`
	Tasks  []Task  `json:"tasks"`
	// Versions are the distinct versions served to running tasks, sorted;
	// Mixed is set when there is more than one.
	Versions []uint64 `json:"versions"`
	Mixed    bool     `json:"mixed"`
}

// Rollable reports whether a rollout can change what the service's tasks
// get: some mount follows the latest version.
func (u ServiceUse) Rollable() bool {
	for _, m := range u.Mounts {
		if m.Pinned == 0 {
			return true
		}
	}
	return false
}

// Report is what uses a stored name.
type Report struct {
	Name     string         `json:"name"`
	Backend  string         `json:"backend"`
	Secrets  []SecretObject `json:"secrets"`
	Services []ServiceUse   `json:"services"`
	// Warnings are secret objects of the plugin that no request can
	// resolve (a bad swarmkeep.* label): they use nothing.
	Warnings []string `json:"warnings"`
}

// Find lists the plugin's secret objects that resolve to t and the services
// that mount them, with their running tasks. Served versions are left to
// [Report.Annotate].
func Find(ctx context.Context, api API, t Target) (Report, error) {
	rep := Report{Name: t.Name, Backend: t.Backend, Secrets: []SecretObject{}, Services: []ServiceUse{}, Warnings: []string{}}
	secrets, err := api.SecretList(ctx, swarm.SecretListOptions{})
	if err != nil {
		return rep, fmt.Errorf("listing secrets: %w", err)
	}
	byID := map[string]int{}
	for _, s := range secrets {
		if !t.ours(s.Spec.Driver) {
			continue
		}
		// Resolved as the plugin resolves a request for this object:
		// same name, same labels, same rules.
		spec, err := driver.ParseSpec(s.Spec.Name, s.Spec.Labels)
		if err != nil {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("secret %s resolves to nothing, every request for it fails: %v", s.Spec.Name, err))
			continue
		}
		if spec.Name != t.Name || spec.Route(t.Default) != t.Backend {
			continue
		}
		byID[s.ID] = len(rep.Secrets)
		rep.Secrets = append(rep.Secrets, SecretObject{ID: s.ID, Name: s.Spec.Name, Pinned: spec.Version, Services: []string{}})
	}
	if len(rep.Secrets) == 0 {
		return rep, nil
	}
	services, err := api.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil {
		return rep, fmt.Errorf("listing services: %w", err)
	}
	for _, svc := range services {
		u := ServiceUse{ID: svc.ID, Name: svc.Spec.Name, Auto: svc.Spec.Labels[AutoLabel] == AutoValue, Tasks: []Task{}, Versions: []uint64{}}
		if cs := svc.Spec.TaskTemplate.ContainerSpec; cs != nil {
			for _, ref := range cs.Secrets {
				i, ok := byID[ref.SecretID]
				if !ok {
					continue
				}
				so := &rep.Secrets[i]
				m := Mount{Secret: so.Name, Pinned: so.Pinned}
				if ref.File != nil {
					m.Target = ref.File.Name
				}
				u.Mounts = append(u.Mounts, m)
				if !slices.Contains(so.Services, u.Name) {
					so.Services = append(so.Services, u.Name)
				}
			}
		}
		if len(u.Mounts) == 0 {
			continue
		}
		if u.Tasks, err = runningTasks(ctx, api, svc.ID); err != nil {
			return rep, err
		}
		rep.Services = append(rep.Services, u)
	}
	sort.Slice(rep.Services, func(i, j int) bool { return rep.Services[i].Name < rep.Services[j].Name })
	for i := range rep.Secrets {
		sort.Strings(rep.Secrets[i].Services)
	}
	return rep, nil
}

// runningTasks are the service's tasks that run and are meant to.
func runningTasks(ctx context.Context, api API, serviceID string) ([]Task, error) {
	tasks, err := api.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", serviceID))})
	if err != nil {
		return nil, fmt.Errorf("listing tasks of service %s: %w", serviceID, err)
	}
	out := []Task{}
	for _, tk := range tasks {
		if tk.DesiredState == swarm.TaskStateRunning && tk.Status.State == swarm.TaskStateRunning {
			out = append(out, Task{ID: tk.ID, Slot: tk.Slot, Node: tk.NodeID})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Slot != out[j].Slot {
			return out[i].Slot < out[j].Slot
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Annotate fills in each running task's served version and flags services
// whose running tasks were served different versions.
func (r *Report) Annotate(s Served) {
	for i := range r.Services {
		u := &r.Services[i]
		u.Versions = []uint64{}
		for j := range u.Tasks {
			v := s[u.Tasks[j].ID]
			u.Tasks[j].Version = v
			if v != 0 && !slices.Contains(u.Versions, v) {
				u.Versions = append(u.Versions, v)
			}
		}
		slices.Sort(u.Versions)
		u.Mixed = len(u.Versions) > 1
	}
}

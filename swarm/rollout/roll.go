package rollout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// Progress is one step of a service's rollout, for the operator.
type Progress struct {
	Service string
	// State is the service's UpdateStatus state ("updating", "completed",
	// ...), or "converging" while tasks settle after "completed".
	State string
	// Updated counts running tasks of the new spec, Total the tasks wanted.
	Updated, Total int
	Message        string
}

// Options tune one rollout.
type Options struct {
	// Poll is the time between looks at the service (default 500ms).
	Poll time.Duration
	// Progress, when set, is called whenever the progress changes.
	Progress func(Progress)
	// Settle is how long the new tasks must stay up, unchanged, after
	// Swarm says the update completed; 0 means the service's update
	// monitor period (Swarm's default 5s when it sets none).
	Settle time.Duration
	// Checks run once the update converged: every new task must have
	// been served at least each check's version of its name.
	Checks []Check
}

// Check is one stored name whose new version every new task must have
// been served.
type Check struct {
	Name string
	Want uint64
	// Served reads what the plugin served (the audit trail).
	Served func() (Served, error)
}

// Failure is a rollout that did not bring the new version to every task.
type Failure struct {
	Service string
	// RolledBack: the service rolled itself back (UpdateConfig
	// FailureAction rollback), which restores its spec, not the value.
	RolledBack bool
	// Busy: nothing was changed, because an update or rollback of the
	// service already under way did not end in time; try again later.
	Busy   bool
	Reason string
}

func (f *Failure) Error() string {
	if f.RolledBack {
		return fmt.Sprintf("service %s rolled itself back: %s", f.Service, f.Reason)
	}
	return fmt.Sprintf("service %s: %s", f.Service, f.Reason)
}

// Result is a converged rollout.
type Result struct {
	Service string
	// Tasks are the new running tasks, with the version each was served
	// when the rollout verified them.
	Tasks []Task
	Took  time.Duration
}

// Roll starts a rolling update of the service that changes nothing but
// TaskTemplate.ForceUpdate, exactly what `docker service update --force`
// sends, so Swarm replaces every task following the service's own
// UpdateConfig (parallelism, delay, order, failure action, monitor) and each
// new task asks the plugin for its secrets again. It waits until the update
// completed and every task wanted runs the new spec, then checks what the
// new tasks were served. It fails with a *Failure when the update pauses,
// rolls back, is replaced by another update, or a new task was served an
// older version than a check wants.
func Roll(ctx context.Context, api API, serviceID string, o Options) (Result, error) {
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	start := time.Now()
	var (
		name string
		last Progress
	)
	report := func(p Progress) {
		p.Service = name
		if p != last && o.Progress != nil {
			o.Progress(p)
		}
		last = p
	}
	if err := awaitIdle(ctx, api, serviceID, o.Poll, &name, report); err != nil {
		return Result{}, err
	}
	before, force, err := forceUpdate(ctx, api, serviceID)
	if err != nil {
		return Result{}, err
	}
	name = before.Spec.Name
	report(Progress{State: "requested", Message: fmt.Sprintf("update %d of the task template requested", force)})
	settle := o.Settle
	if settle <= 0 {
		settle = PlanOf(before).Monitor
	}
	var (
		knownFailed map[string]string
		settledAt   time.Time
		settledSet  map[string]bool
		rollingBack bool // our update is being rolled back by Swarm
	)
	for {
		select {
		case <-ctx.Done():
			if rollingBack {
				return Result{}, &Failure{Service: name, RolledBack: true, Reason: fmt.Sprintf("rollback_started, not finished in time: %v (it goes on in Swarm: docker service ps %s)", ctx.Err(), name)}
			}
			return Result{}, &Failure{Service: name, Reason: fmt.Sprintf("not converged: %v (the update goes on in Swarm: docker service ps %s)", ctx.Err(), name)}
		case <-time.After(o.Poll):
		}
		svc, _, err := api.ServiceInspectWithRaw(ctx, serviceID, swarm.ServiceInspectOptions{})
		if err != nil {
			if ctx.Err() != nil {
				continue // reported as not converged above
			}
			return Result{}, fmt.Errorf("service %s: inspecting: %w", name, err)
		}
		us := svc.UpdateStatus
		ours := us != nil && us.StartedAt != nil && us.StartedAt.After(before.Meta.UpdatedAt)
		// Before the spec check: a rollback puts the previous spec back
		// (ForceUpdate included) in the same write as its status. It is
		// reported once Swarm finished it, so that the operator's next
		// step (swarmkeep rollback) does not interrupt it.
		if ours && us.State == swarm.UpdateStateRollbackStarted {
			rollingBack = true
			report(Progress{State: string(us.State), Message: us.Message})
			continue
		}
		if ours && strings.HasPrefix(string(us.State), "rollback") {
			return Result{}, &Failure{Service: name, RolledBack: true, Reason: fmt.Sprintf("%s: %s", us.State, us.Message)}
		}
		if svc.Spec.TaskTemplate.ForceUpdate != force {
			return Result{}, &Failure{Service: name, Reason: "another update of the service replaced this rollout; run it again"}
		}
		tasks, err := api.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", serviceID))})
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			return Result{}, fmt.Errorf("service %s: listing tasks: %w", name, err)
		}
		fresh, stale, pending := classify(tasks, force)
		total := wanted(svc, len(fresh)+len(stale)+pending)
		state := "pending"
		if ours {
			state = string(us.State)
		}
		switch {
		case !ours:
		case us.State == swarm.UpdateStatePaused:
			return Result{}, &Failure{Service: name, Reason: "the update paused (UpdateConfig FailureAction pause): " + us.Message}
		case us.State == swarm.UpdateStateCompleted:
			// Swarm judges a new task only within its monitor window
			// from creation; one slow to start can fail after it, with
			// the update "completed". So the new tasks must then stay
			// up, unchanged, for one more monitor period, and no task
			// of the new spec may fail meanwhile.
			failed := failedTasks(tasks, force)
			if knownFailed == nil {
				knownFailed = failed // tolerated by Swarm (MaxFailureRatio)
			}
			for id, msg := range failed {
				if _, ok := knownFailed[id]; !ok {
					return Result{}, &Failure{Service: name, Reason: fmt.Sprintf("task %s of the new spec failed after the update completed (%s); every task it starts gets the same value", short(id), msg)}
				}
			}
			state = "converging"
			if len(stale) == 0 && pending == 0 && len(fresh) >= total {
				ids := taskSet(fresh)
				if settledAt.IsZero() || !maps.Equal(ids, settledSet) {
					settledAt, settledSet = time.Now(), ids
				}
				if time.Since(settledAt) >= settle {
					report(Progress{State: "completed", Updated: len(fresh), Total: total})
					res := Result{Service: name, Tasks: fresh, Took: time.Since(start)}
					return res, verify(&res, o)
				}
				state = "settling"
			} else {
				settledAt = time.Time{}
			}
		}
		report(Progress{State: state, Updated: len(fresh), Total: total, Message: updateMessage(us, ours)})
	}
}

// awaitIdle waits (bounded by ctx) until no update or rollback of the
// service is under way. Swarm's updater and its restart supervisor act on
// the same slots: an update started while a rollback still replaces tasks
// can leave a slot with two running tasks that Swarm never removes
// (moby/moby#41804, moby/swarmkit#2242, seen with start-first order).
func awaitIdle(ctx context.Context, api API, serviceID string, poll time.Duration, name *string, report func(Progress)) error {
	for {
		svc, _, err := api.ServiceInspectWithRaw(ctx, serviceID, swarm.ServiceInspectOptions{})
		if err != nil {
			return fmt.Errorf("service %s: inspecting: %w", cmp.Or(*name, serviceID), err)
		}
		*name = svc.Spec.Name
		us := svc.UpdateStatus
		if us == nil || (us.State != swarm.UpdateStateUpdating && us.State != swarm.UpdateStateRollbackStarted) {
			return nil
		}
		report(Progress{State: "waiting", Message: fmt.Sprintf("the service's own %s is under way (%s); waiting for it to end", updateKind(us.State), us.State)})
		select {
		case <-ctx.Done():
			return &Failure{Service: svc.Spec.Name, Busy: true, Reason: fmt.Sprintf("its own %s did not end in time, nothing was changed: %v (wait for docker service ps %s to settle, then run this again)", updateKind(us.State), ctx.Err(), svc.Spec.Name)}
		case <-time.After(poll):
		}
	}
}

func updateKind(s swarm.UpdateState) string {
	if strings.HasPrefix(string(s), "rollback") {
		return "rollback"
	}
	return "update"
}

// forceUpdate bumps ForceUpdate on the current spec. A concurrent change
// of the service (out of sequence) is read again and retried.
func forceUpdate(ctx context.Context, api API, serviceID string) (swarm.Service, uint64, error) {
	var err error
	for range 3 {
		var svc swarm.Service
		if svc, _, err = api.ServiceInspectWithRaw(ctx, serviceID, swarm.ServiceInspectOptions{}); err != nil {
			return svc, 0, fmt.Errorf("service %s: inspecting: %w", serviceID, err)
		}
		spec := svc.Spec
		spec.TaskTemplate.ForceUpdate++
		// No registry query: the image stays the one the spec names,
		// digest and all. Only the task template's counter changes.
		_, err = api.ServiceUpdate(ctx, svc.ID, svc.Version, spec, swarm.ServiceUpdateOptions{})
		if err == nil {
			return svc, spec.TaskTemplate.ForceUpdate, nil
		}
		if !strings.Contains(err.Error(), "out of sequence") {
			return svc, 0, fmt.Errorf("service %s: update: %w", svc.Spec.Name, err)
		}
	}
	return swarm.Service{}, 0, fmt.Errorf("service %s: update: %w", serviceID, err)
}

// classify sorts the tasks meant to run: running on the new spec (fresh),
// of an older spec (stale), and new ones not running yet (pending).
func classify(tasks []swarm.Task, force uint64) (fresh []Task, stale []Task, pending int) {
	for _, tk := range tasks {
		if tk.DesiredState != swarm.TaskStateRunning {
			continue
		}
		t := Task{ID: tk.ID, Slot: tk.Slot, Node: tk.NodeID}
		switch {
		case tk.Spec.ForceUpdate != force:
			stale = append(stale, t)
		case tk.Status.State == swarm.TaskStateRunning:
			fresh = append(fresh, t)
		default:
			pending++
		}
	}
	sort.Slice(fresh, func(i, j int) bool {
		return fresh[i].Slot < fresh[j].Slot || fresh[i].Slot == fresh[j].Slot && fresh[i].ID < fresh[j].ID
	})
	return fresh, stale, pending
}

// failedTasks are the tasks of the new spec that failed or were rejected,
// with Swarm's reason.
func failedTasks(tasks []swarm.Task, force uint64) map[string]string {
	out := map[string]string{}
	for _, tk := range tasks {
		if tk.Spec.ForceUpdate == force && (tk.Status.State == swarm.TaskStateFailed || tk.Status.State == swarm.TaskStateRejected) {
			out[tk.ID] = strings.TrimSpace(tk.Status.Err + " " + tk.Status.Message)
		}
	}
	return out
}

func taskSet(tasks []Task) map[string]bool {
	out := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		out[t.ID] = true
	}
	return out
}

// wanted is the number of tasks the service should run: its replicas, or
// for a global service the tasks Swarm wants running.
func wanted(svc swarm.Service, desired int) int {
	if r := svc.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
		return int(*r.Replicas)
	}
	return desired
}

func updateMessage(us *swarm.UpdateStatus, ours bool) string {
	if !ours {
		return "waiting for Swarm to start the update"
	}
	return us.Message
}

// verify runs o's checks on the new tasks.
func verify(res *Result, o Options) error {
	var reasons []string
	for _, c := range o.Checks {
		served, err := c.Served()
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("the audit trail cannot be read to check what was served: %v", err))
			continue
		}
		var old, missing []string
		for i := range res.Tasks {
			t := &res.Tasks[i]
			t.Version = served[t.ID]
			switch {
			case t.Version == 0:
				missing = append(missing, short(t.ID))
			case t.Version < c.Want:
				old = append(old, fmt.Sprintf("%s (version %d)", short(t.ID), t.Version))
			}
		}
		if len(old) > 0 {
			reasons = append(reasons, fmt.Sprintf("new tasks were served %s older than version %d: %s (a backend cache still held it? run the rollout again)", c.Name, c.Want, strings.Join(old, ", ")))
		}
		if len(missing) > 0 {
			reasons = append(reasons, fmt.Sprintf("no audit record of what new tasks %s were served of %s (is this the trail of the manager that leads the swarm?)", strings.Join(missing, ", "), c.Name))
		}
	}
	if len(reasons) > 0 {
		return &Failure{Service: res.Service, Reason: "converged, but " + strings.Join(reasons, "; ")}
	}
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// IsBusy reports whether err is a rollout that changed nothing because an
// update or rollback of the service under way did not end in time.
func IsBusy(err error) bool {
	var f *Failure
	return errors.As(err, &f) && f.Busy
}

// IsRolledBack reports whether err is a rollout the service rolled back.
func IsRolledBack(err error) bool {
	var f *Failure
	return errors.As(err, &f) && f.RolledBack
}

package rollout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// fakeSwarm stands in for the Docker API of a manager. Its update
// orchestrator is driven by inspections: each ServiceInspectWithRaw during
// an update replaces one batch of tasks (the service's parallelism), so a
// test needs no wall clock. Every task created records the version the
// "plugin" serves at that moment, as the audit trail would.
type fakeSwarm struct {
	mu       sync.Mutex
	now      time.Time
	secrets  []swarm.Secret
	services map[string]*swarm.Service
	tasks    []swarm.Task
	nextID   int
	// version is what the plugin serves a task created now.
	version uint64
	served  Served
	// Faults.
	outOfSequence int    // ServiceUpdate calls that fail with "update out of sequence"
	delayStart    int    // inspections before the updater starts
	failAfter     int    // batches after which the update fails (0: never)
	failureAction string // what a failure does: rollback or pause
	crashLate     bool   // a new task crashes (and is replaced) after the update completed
	stuckRollback bool   // a rollback under way never ends
	rollbackSeen  int    // inspections of the rollback under way
	updates       int    // ServiceUpdate calls that succeeded
	// updateStates is the service's update state at each ServiceUpdate.
	updateStates []swarm.UpdateState
	listErr      error
}

func newFake() *fakeSwarm {
	return &fakeSwarm{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), services: map[string]*swarm.Service{}, version: 1, served: Served{}}
}

func (f *fakeSwarm) tick() time.Time { f.now = f.now.Add(time.Millisecond); return f.now }

func (f *fakeSwarm) id(prefix string) string {
	f.nextID++
	return fmt.Sprintf("%s%04d", prefix, f.nextID)
}

func (f *fakeSwarm) addSecret(name, driverName string, labels map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := swarm.Secret{ID: f.id("sec"), Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}}}
	if driverName != "" {
		s.Spec.Driver = &swarm.Driver{Name: driverName}
	}
	f.secrets = append(f.secrets, s)
	return s.ID
}

// addService creates a replicated service mounting the secrets (ID to
// target) with running tasks.
func (f *fakeSwarm) addService(name string, replicas uint64, labels map[string]string, uc *swarm.UpdateConfig, secretIDs ...string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs := &swarm.ContainerSpec{Image: "app:1@sha256:abc"}
	for _, id := range secretIDs {
		cs.Secrets = append(cs.Secrets, &swarm.SecretReference{SecretID: id, File: &swarm.SecretReferenceFileTarget{Name: "t-" + id}})
	}
	svc := &swarm.Service{ID: f.id("svc"), Spec: swarm.ServiceSpec{
		Annotations:  swarm.Annotations{Name: name, Labels: labels},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: cs},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		UpdateConfig: uc,
	}}
	svc.Version.Index = 1
	svc.Meta.UpdatedAt = f.tick()
	// A finished earlier update: its status must not pass for ours.
	started, done := f.now.Add(-time.Hour), f.now.Add(-time.Minute)
	svc.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateCompleted, StartedAt: &started, CompletedAt: &done}
	f.services[svc.ID] = svc
	for i := range int(replicas) {
		f.newTask(svc, i+1)
	}
	return svc.ID
}

func (f *fakeSwarm) newTask(svc *swarm.Service, slot int) {
	t := swarm.Task{ID: f.id("task"), ServiceID: svc.ID, Slot: slot, NodeID: "node1",
		Spec: svc.Spec.TaskTemplate, DesiredState: swarm.TaskStateRunning, Status: swarm.TaskStatus{State: swarm.TaskStateRunning}}
	f.served[t.ID] = f.version
	f.tasks = append(f.tasks, t)
}

func (f *fakeSwarm) SecretList(context.Context, swarm.SecretListOptions) ([]swarm.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listErr != nil {
		return nil, f.listErr
	}
	return append([]swarm.Secret(nil), f.secrets...), nil
}

func (f *fakeSwarm) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []swarm.Service
	for _, s := range f.services {
		out = append(out, *s)
	}
	return out, nil
}

func (f *fakeSwarm) ServiceInspectWithRaw(_ context.Context, id string, _ swarm.ServiceInspectOptions) (swarm.Service, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	svc, ok := f.services[id]
	if !ok {
		return swarm.Service{}, nil, errors.New("service " + id + " not found")
	}
	f.step(svc)
	return *svc, nil, nil
}

func (f *fakeSwarm) ServiceUpdate(_ context.Context, id string, v swarm.Version, spec swarm.ServiceSpec, _ swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	svc, ok := f.services[id]
	if !ok {
		return swarm.ServiceUpdateResponse{}, errors.New("service " + id + " not found")
	}
	if f.outOfSequence > 0 {
		f.outOfSequence--
		svc.Version.Index++ // someone else's write
		return swarm.ServiceUpdateResponse{}, errors.New("Error response from daemon: rpc error: code = Unknown desc = update out of sequence")
	}
	if v.Index != svc.Version.Index {
		return swarm.ServiceUpdateResponse{}, errors.New("update out of sequence")
	}
	f.updateStates = append(f.updateStates, svc.UpdateStatus.State)
	svc.Spec = spec
	svc.Version.Index++
	svc.Meta.UpdatedAt = f.tick()
	f.updates++
	return swarm.ServiceUpdateResponse{}, nil
}

func (f *fakeSwarm) TaskList(_ context.Context, o swarm.TaskListOptions) ([]swarm.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	want := o.Filters.Get("service")
	var out []swarm.Task
	for _, t := range f.tasks {
		if len(want) == 0 || t.ServiceID == want[0] {
			out = append(out, t)
		}
	}
	return out, nil
}

// step advances svc's update by one batch, as Swarm's updater would.
func (f *fakeSwarm) step(svc *swarm.Service) {
	tt := svc.Spec.TaskTemplate
	var old []int
	for i, t := range f.tasks {
		if t.ServiceID == svc.ID && t.DesiredState == swarm.TaskStateRunning && t.Spec.ForceUpdate != tt.ForceUpdate {
			old = append(old, i)
		}
	}
	us := svc.UpdateStatus
	updating := us != nil && us.State == swarm.UpdateStateUpdating
	if us != nil && us.State == swarm.UpdateStateRollbackStarted {
		if f.stuckRollback {
			return // nothing moves
		}
		// Seen under way by one inspection, ended by the next.
		if f.rollbackSeen++; f.rollbackSeen < 2 {
			return
		}
		f.rollbackSeen = 0
		// The rollback replaces the tasks of the failed spec in one go.
		for _, i := range old {
			f.tasks[i].DesiredState, f.tasks[i].Status.State = swarm.TaskStateShutdown, swarm.TaskStateShutdown
			f.newTask(svc, f.tasks[i].Slot)
		}
		done := f.tick()
		us.State, us.CompletedAt, us.Message = swarm.UpdateStateRollbackCompleted, &done, "rollback completed"
		svc.Meta.UpdatedAt = f.tick()
		return
	}
	if len(old) == 0 && !updating {
		if f.crashLate && f.updates > 0 && us != nil && us.State == swarm.UpdateStateCompleted {
			// A task slow to start fails after Swarm's monitor window:
			// the restart policy replaces it, the update stays completed.
			f.crashLate = false
			for i, t := range f.tasks {
				if t.ServiceID == svc.ID && t.DesiredState == swarm.TaskStateRunning {
					f.tasks[i].DesiredState, f.tasks[i].Status.State, f.tasks[i].Status.Err = swarm.TaskStateShutdown, swarm.TaskStateFailed, "task: non-zero exit (1)"
					f.newTask(svc, t.Slot)
					break
				}
			}
		}
		return
	}
	if !updating {
		if us != nil && us.State == swarm.UpdateStatePaused && us.StartedAt.After(svc.Meta.UpdatedAt.Add(-time.Hour/2)) {
			return // this update paused: nothing moves
		}
		if f.delayStart > 0 {
			f.delayStart--
			return
		}
		start := f.tick()
		svc.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateUpdating, StartedAt: &start, Message: "update in progress"}
		svc.Meta.UpdatedAt = f.tick()
		return
	}
	if len(old) == 0 {
		done := f.tick()
		us.State, us.CompletedAt, us.Message = swarm.UpdateStateCompleted, &done, "update completed"
		svc.Meta.UpdatedAt = f.tick()
		return
	}
	if f.failAfter > 0 {
		if f.failAfter--; f.failAfter == 0 {
			if f.failureAction == swarm.UpdateFailureActionPause {
				us.State, us.Message = swarm.UpdateStatePaused, "update paused due to failure or early termination of task x"
			} else {
				// As Swarm does: the previous spec comes back in the
				// same write as the rollback status.
				us.State, us.Message = swarm.UpdateStateRollbackStarted, "update rolled back due to failure or early termination of task x"
				start := f.tick()
				us.StartedAt = &start
				svc.Spec.TaskTemplate.ForceUpdate--
			}
			svc.Meta.UpdatedAt = f.tick()
			return
		}
	}
	n := 1
	if uc := svc.Spec.UpdateConfig; uc != nil {
		n = int(uc.Parallelism)
		if n == 0 {
			n = len(old)
		}
	}
	for _, i := range old[:min(n, len(old))] {
		f.tasks[i].DesiredState = swarm.TaskStateShutdown
		f.tasks[i].Status.State = swarm.TaskStateShutdown
		f.newTask(svc, f.tasks[i].Slot)
	}
}

func (f *fakeSwarm) servedCopy() (Served, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := Served{}
	for k, v := range f.served {
		out[k] = v
	}
	return out, nil
}

package rollout

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

func rollCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func fastOptions(f *fakeSwarm, want uint64, progress *[]Progress) Options {
	return Options{Poll: time.Microsecond, Settle: 5 * time.Millisecond, Checks: []Check{{Name: "db", Want: want, Served: f.servedCopy}}, Progress: func(p Progress) {
		if progress != nil {
			*progress = append(*progress, p)
		}
	}}
}

func TestRollReplacesEveryTaskAndChangesOnlyForceUpdate(t *testing.T) {
	f := newFake()
	sec := f.addSecret("db", "swarmkeep", nil)
	id := f.addService("web", 4, nil, &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStartFirst}, sec)
	before := f.services[id].Spec
	f.version = 2 // put db: the plugin serves version 2 to new tasks
	var prog []Progress
	res, err := Roll(rollCtx(t), f, id, fastOptions(f, 2, &prog))
	if err != nil {
		t.Fatalf("Roll: %v", err)
	}
	if len(res.Tasks) != 4 {
		t.Fatalf("new tasks %d, want 4: %+v", len(res.Tasks), res.Tasks)
	}
	for _, tk := range res.Tasks {
		if tk.Version != 2 {
			t.Errorf("task %s verified at version %d, want 2", tk.ID, tk.Version)
		}
	}
	after := f.services[id].Spec
	if after.TaskTemplate.ForceUpdate != before.TaskTemplate.ForceUpdate+1 {
		t.Fatalf("ForceUpdate %d -> %d, want +1", before.TaskTemplate.ForceUpdate, after.TaskTemplate.ForceUpdate)
	}
	after.TaskTemplate.ForceUpdate = before.TaskTemplate.ForceUpdate
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("the rollout changed more than ForceUpdate:\nbefore %+v\nafter  %+v", before, after)
	}
	// Progress went 0..4 of 4 and ended completed.
	lastUpdated := -1
	for _, p := range prog {
		if p.Updated < lastUpdated {
			t.Errorf("progress went back: %+v", prog)
		}
		lastUpdated = p.Updated
	}
	if end := prog[len(prog)-1]; end.State != "completed" || end.Updated != 4 || end.Total != 4 || end.Service != "web" {
		t.Fatalf("last progress %+v, want completed 4/4 of web", end)
	}
}

func TestRollWaitsForItsOwnUpdateNotAnEarlierOne(t *testing.T) {
	f := newFake()
	sec := f.addSecret("db", "swarmkeep", nil)
	id := f.addService("web", 2, nil, nil, sec)
	// An earlier update rolled back; its status stays visible until Swarm
	// starts ours, and must not pass for ours.
	f.services[id].UpdateStatus.State = swarm.UpdateStateRollbackCompleted
	f.delayStart = 5
	f.version = 2
	res, err := Roll(rollCtx(t), f, id, fastOptions(f, 2, nil))
	if err != nil {
		t.Fatalf("Roll: %v", err)
	}
	if len(res.Tasks) != 2 || res.Tasks[0].Version != 2 {
		t.Fatalf("returned before its update ran: %+v", res.Tasks)
	}
}

func TestRollFailsNamingAServiceThatRollsBack(t *testing.T) {
	for _, action := range []string{swarm.UpdateFailureActionRollback, swarm.UpdateFailureActionPause} {
		t.Run(action, func(t *testing.T) {
			f := newFake()
			sec := f.addSecret("db", "swarmkeep", nil)
			id := f.addService("api", 3, nil, &swarm.UpdateConfig{Parallelism: 1, FailureAction: action}, sec)
			f.failAfter, f.failureAction = 2, action
			_, err := Roll(rollCtx(t), f, id, fastOptions(f, 2, nil))
			if err == nil {
				t.Fatal("Roll succeeded while the update failed")
			}
			if !strings.Contains(err.Error(), "service api") {
				t.Fatalf("error does not name the service: %v", err)
			}
			if IsRolledBack(err) != (action == swarm.UpdateFailureActionRollback) {
				t.Fatalf("IsRolledBack = %v for %s: %v", IsRolledBack(err), action, err)
			}
			// Reported once Swarm finished the rollback, not when it began.
			if action == swarm.UpdateFailureActionRollback && (!strings.Contains(err.Error(), "rollback_completed") || f.services[id].UpdateStatus.State != swarm.UpdateStateRollbackCompleted) {
				t.Fatalf("reported before the rollback ended: %v (state %s)", err, f.services[id].UpdateStatus.State)
			}
		})
	}
}

// TestRollWaitsForARollbackUnderWay: an update started while Swarm's own
// rollback still replaces tasks can leave a slot with two running tasks
// (seen in e2e with start-first order), so Roll starts only after it.
func TestRollWaitsForARollbackUnderWay(t *testing.T) {
	f := newFake()
	sec := f.addSecret("db", "swarmkeep", nil)
	id := f.addService("api", 2, nil, &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStartFirst}, sec)
	started := f.tick()
	f.services[id].UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateRollbackStarted, StartedAt: &started, Message: "update rolled back due to failure"}
	f.version = 2
	var prog []Progress
	if _, err := Roll(rollCtx(t), f, id, fastOptions(f, 2, &prog)); err != nil {
		t.Fatalf("Roll: %v", err)
	}
	if len(f.updateStates) != 1 || f.updateStates[0] != swarm.UpdateStateRollbackCompleted {
		t.Fatalf("service updated in states %v, want once after the rollback completed", f.updateStates)
	}
	if len(prog) == 0 || prog[0].State != "waiting" || !strings.Contains(prog[0].Message, "rollback is under way") || prog[0].Service != "api" {
		t.Fatalf("first progress %+v, want waiting for api's rollback", prog)
	}

	// A rollback that does not end: bounded, named, no update sent.
	f2 := newFake()
	id = f2.addService("api", 1, nil, nil, f2.addSecret("db", "swarmkeep", nil))
	f2.services[id].UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateRollbackStarted, StartedAt: &started}
	f2.stuckRollback = true
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Roll(ctx, f2, id, fastOptions(f2, 2, nil))
	if err == nil || !strings.Contains(err.Error(), "service api") || !strings.Contains(err.Error(), "rollback did not end in time") || f2.updates != 0 || !IsBusy(err) {
		t.Fatalf("Roll = %v after %d updates, want the unfinished rollback named, busy, and no update", err, f2.updates)
	}

	// Our own update rolled back by Swarm, the rollback not done in time:
	// still reported as rolled back, so the operator is told to run
	// swarmkeep rollback.
	f3 := newFake()
	id = f3.addService("web", 2, nil, &swarm.UpdateConfig{Parallelism: 1, FailureAction: swarm.UpdateFailureActionRollback}, f3.addSecret("db", "swarmkeep", nil))
	f3.failAfter, f3.failureAction, f3.stuckRollback = 1, swarm.UpdateFailureActionRollback, true
	ctx3, cancel3 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel3()
	_, err = Roll(ctx3, f3, id, fastOptions(f3, 2, nil))
	if !IsRolledBack(err) || !strings.Contains(err.Error(), "not finished in time") {
		t.Fatalf("Roll with a rollback under way at the deadline = %v, want rolled back, not finished", err)
	}
}

// TestRollFailsWhenANewTaskFailsAfterCompletion: a task that failed after
// Swarm's monitor window leaves the update "completed" while the service
// crash-loops on the new value; seen on a loaded engine in e2e.
func TestRollFailsWhenANewTaskFailsAfterCompletion(t *testing.T) {
	f := newFake()
	sec := f.addSecret("db", "swarmkeep", nil)
	id := f.addService("api", 2, nil, &swarm.UpdateConfig{Parallelism: 2}, sec)
	f.version, f.crashLate = 2, true
	_, err := Roll(rollCtx(t), f, id, fastOptions(f, 2, nil))
	if err == nil || !strings.Contains(err.Error(), "failed after the update completed") || !strings.Contains(err.Error(), "service api") {
		t.Fatalf("Roll = %v, want a failure naming api and the late task failure", err)
	}
}

func TestRollFailsWhenANewTaskGotAnOlderVersion(t *testing.T) {
	f := newFake()
	sec := f.addSecret("db", "swarmkeep", nil)
	id := f.addService("web", 2, nil, nil, sec)
	// The plugin still serves version 1 (a cache), though 2 is the latest.
	_, err := Roll(rollCtx(t), f, id, fastOptions(f, 2, nil))
	if err == nil || !strings.Contains(err.Error(), "older than version 2") || !strings.Contains(err.Error(), "service web") {
		t.Fatalf("Roll = %v, want a failure naming web and the old version", err)
	}
	// No audit record at all: not verified, and said so.
	f2 := newFake()
	sec = f2.addSecret("db", "swarmkeep", nil)
	id = f2.addService("web", 1, nil, nil, sec)
	o := fastOptions(f2, 1, nil)
	o.Checks[0].Served = func() (Served, error) { return Served{}, nil }
	if _, err := Roll(rollCtx(t), f2, id, o); err == nil || !strings.Contains(err.Error(), "no audit record") {
		t.Fatalf("Roll without records = %v, want a failure saying so", err)
	}
}

func TestRollRetriesAnUpdateOutOfSequence(t *testing.T) {
	f := newFake()
	sec := f.addSecret("db", "swarmkeep", nil)
	id := f.addService("web", 1, nil, nil, sec)
	f.outOfSequence = 2
	f.version = 3
	if _, err := Roll(rollCtx(t), f, id, fastOptions(f, 3, nil)); err != nil {
		t.Fatalf("Roll: %v", err)
	}
	if f.updates != 1 {
		t.Fatalf("%d updates went through, want 1", f.updates)
	}
	f.outOfSequence = 5
	if _, err := Roll(rollCtx(t), f, id, fastOptions(f, 3, nil)); err == nil || !strings.Contains(err.Error(), "out of sequence") {
		t.Fatalf("Roll after 3 conflicts = %v, want the conflict", err)
	}
}

func TestRollStopsAtTheDeadline(t *testing.T) {
	f := newFake()
	sec := f.addSecret("db", "swarmkeep", nil)
	id := f.addService("web", 1, nil, nil, sec)
	f.delayStart = 1 << 30 // Swarm never starts the update
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Roll(ctx, f, id, fastOptions(f, 2, nil))
	if err == nil || !strings.Contains(err.Error(), "not converged") || !strings.Contains(err.Error(), "web") {
		t.Fatalf("Roll = %v, want not converged naming web", err)
	}
}

func TestPlanOf(t *testing.T) {
	f := newFake()
	id := f.addService("web", 6, nil, &swarm.UpdateConfig{Parallelism: 2, Order: swarm.UpdateOrderStartFirst, FailureAction: swarm.UpdateFailureActionRollback}, f.addSecret("db", "swarmkeep", nil))
	got := PlanOf(*f.services[id]).String()
	for _, want := range []string{"web (replicated 6)", "2 at a time", "start-first", "on failure rollback", "monitor 5s"} {
		if !strings.Contains(got, want) {
			t.Errorf("plan %q lacks %q", got, want)
		}
	}
	id = f.addService("bare", 1, nil, nil)
	if got := PlanOf(*f.services[id]).String(); !strings.Contains(got, "1 at a time, stop-first") || !strings.Contains(got, "on failure pause") {
		t.Errorf("plan with Swarm's defaults: %q", got)
	}
}

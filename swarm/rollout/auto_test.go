package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver/audit"
)

// chanSource is a Source fed by the test.
type chanSource chan Change

func (c chanSource) Run(ctx context.Context, fn func(Change)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ch := <-c:
			fn(ch)
		}
	}
}

type autoHarness struct {
	f       *fakeSwarm
	src     chanSource
	leader  atomic.Bool
	mu      sync.Mutex
	rolls   []string // service@version, in order
	records []Event
	inRoll  map[string]int
	maxPar  int
	release chan struct{} // when set, each roll waits for a value
	fail    atomic.Bool
	busy    atomic.Bool // the next roll finds the service busy
	done    chan Event
}

func newAutoHarness(t *testing.T) (*autoHarness, *Auto) {
	h := &autoHarness{f: newFake(), src: make(chanSource), inRoll: map[string]int{}, done: make(chan Event, 100)}
	h.leader.Store(true)
	log := logrus.New()
	log.SetOutput(io.Discard)
	a := &Auto{
		API:    h.f,
		Source: h.src,
		Target: func(name string) Target {
			return Target{Name: name, Backend: "local", Default: "local", Plugins: []string{"swarmkeep"}}
		},
		Leader:     func(context.Context) (bool, error) { return h.leader.Load(), nil },
		Debounce:   200 * time.Millisecond, // well above scheduling delays under -race on a busy machine
		BackoffMin: time.Millisecond,
		Log:        log,
		Roll: func(ctx context.Context, id string, want uint64) (Result, error) {
			name := h.f.services[id].Spec.Name
			h.mu.Lock()
			h.rolls = append(h.rolls, name+"@"+itoa(want))
			h.inRoll[id]++
			h.maxPar = max(h.maxPar, h.inRoll[id])
			h.mu.Unlock()
			if h.release != nil {
				<-h.release
			}
			h.mu.Lock()
			h.inRoll[id]--
			h.mu.Unlock()
			if h.busy.CompareAndSwap(true, false) {
				return Result{}, &Failure{Service: name, Busy: true, Reason: "its own update did not end in time, nothing was changed"}
			}
			if h.fail.Load() {
				return Result{}, &Failure{Service: name, RolledBack: true, Reason: "rollback_completed"}
			}
			return Result{Service: name}, nil
		},
		Record: func(ev Event) {
			h.mu.Lock()
			h.records = append(h.records, ev)
			h.mu.Unlock()
			h.done <- ev
		},
	}
	return h, a
}

func itoa(v uint64) string { return string(rune('0' + v)) }

func (h *autoHarness) start(t *testing.T, a *Auto) {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if h.release != nil {
			close(h.release)
		}
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Error("Auto.Run did not return after cancel")
		}
	})
}

func (h *autoHarness) waitRecord(t *testing.T) Event {
	t.Helper()
	select {
	case ev := <-h.done:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no rollout recorded")
		return Event{}
	}
}

func (h *autoHarness) noRecord(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case ev := <-h.done:
		t.Fatalf("unexpected rollout %+v", ev)
	case <-time.After(within):
	}
}

func TestAutoRollsOnlyOptedInServicesOnTheLeaderDebounced(t *testing.T) {
	h, a := newAutoHarness(t)
	sec := h.f.addSecret("api", "swarmkeep", nil)
	prod := h.f.addSecret("api-prod", "swarmkeep", nil)
	h.f.addService("auto", 1, map[string]string{AutoLabel: AutoValue}, nil, sec)
	h.f.addService("manual", 1, nil, nil, sec)
	h.f.addService("prod", 1, map[string]string{AutoLabel: AutoValue}, nil, prod)
	h.start(t, a)

	// A burst of three puts: one rollout, to the last version.
	for v := uint64(2); v <= 4; v++ {
		h.src <- Change{Name: "api", Version: v}
	}
	ev := h.waitRecord(t)
	if ev.Service != "auto" || ev.Version != 4 || ev.Name != "api" || ev.Err != nil || ev.Backend != "local" {
		t.Fatalf("rollout %+v, want auto to api version 4", ev)
	}
	h.noRecord(t, 400*time.Millisecond)

	// Not the leader: nothing happens.
	h.leader.Store(false)
	h.src <- Change{Name: "api", Version: 5}
	h.noRecord(t, 400*time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.rolls) != 1 {
		t.Fatalf("rolls %v, want only auto@4", h.rolls)
	}
}

func TestAutoRetriesAFailedRolloutOnlyAfterANewVersion(t *testing.T) {
	h, a := newAutoHarness(t)
	sec := h.f.addSecret("api", "swarmkeep", nil)
	h.f.addService("auto", 1, map[string]string{AutoLabel: AutoValue}, nil, sec)
	h.start(t, a)
	h.fail.Store(true)
	h.src <- Change{Name: "api", Version: 2}
	if ev := h.waitRecord(t); ev.Err == nil || ev.Version != 2 {
		t.Fatalf("rollout %+v, want a failure at version 2", ev)
	}
	// The same version reported again (another snapshot, a restart of the
	// source): not retried.
	h.src <- Change{Name: "api", Version: 2}
	h.noRecord(t, 400*time.Millisecond)
	h.fail.Store(false)
	h.src <- Change{Name: "api", Version: 3}
	if ev := h.waitRecord(t); ev.Err != nil || ev.Version != 3 {
		t.Fatalf("rollout %+v, want a success at version 3", ev)
	}
}

// TestAutoRetriesARolloutDeferredByABusyService: a service busy with an
// update of its own when its rollout came changed nothing; the same
// version is rolled later, without a new one.
func TestAutoRetriesARolloutDeferredByABusyService(t *testing.T) {
	h, a := newAutoHarness(t)
	sec := h.f.addSecret("api", "swarmkeep", nil)
	h.f.addService("auto", 1, map[string]string{AutoLabel: AutoValue}, nil, sec)
	h.start(t, a)
	h.busy.Store(true)
	h.src <- Change{Name: "api", Version: 2}
	if ev := h.waitRecord(t); !IsBusy(ev.Err) || ev.Version != 2 {
		t.Fatalf("first try %+v, want deferred at version 2", ev)
	}
	if ev := h.waitRecord(t); ev.Err != nil || ev.Version != 2 {
		t.Fatalf("retry %+v, want a success at version 2", ev)
	}
}

func TestAutoRunsOneRolloutPerServiceAtATime(t *testing.T) {
	h, a := newAutoHarness(t)
	h.release = make(chan struct{})
	sec := h.f.addSecret("api", "swarmkeep", nil)
	h.f.addService("auto", 1, map[string]string{AutoLabel: AutoValue}, nil, sec)
	h.start(t, a)
	h.src <- Change{Name: "api", Version: 2}
	waitFor(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.rolls) == 1 })
	// Two more versions while the first rollout runs: they queue as one,
	// the latest.
	h.src <- Change{Name: "api", Version: 3}
	time.Sleep(400 * time.Millisecond) // past the debounce, so 3 is dispatched alone
	h.src <- Change{Name: "api", Version: 4}
	time.Sleep(400 * time.Millisecond)
	h.release <- struct{}{}
	h.waitRecord(t)
	h.release <- struct{}{}
	if ev := h.waitRecord(t); ev.Version != 4 {
		t.Fatalf("queued rollout %+v, want version 4", ev)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.maxPar != 1 || len(h.rolls) != 2 || h.rolls[1] != "auto@4" {
		t.Fatalf("rolls %v with %d at once, want auto@2 then auto@4, one at a time", h.rolls, h.maxPar)
	}
}

func TestAutoBacksOffWhileDockerFails(t *testing.T) {
	h, a := newAutoHarness(t)
	sec := h.f.addSecret("api", "swarmkeep", nil)
	h.f.addService("auto", 1, map[string]string{AutoLabel: AutoValue}, nil, sec)
	h.f.mu.Lock()
	h.f.listErr = errors.New("engine restarting")
	h.f.mu.Unlock()
	h.start(t, a)
	h.src <- Change{Name: "api", Version: 2}
	h.noRecord(t, 400*time.Millisecond)
	h.f.mu.Lock()
	h.f.listErr = nil
	h.f.mu.Unlock()
	if ev := h.waitRecord(t); ev.Version != 2 || ev.Err != nil {
		t.Fatalf("rollout after Docker came back: %+v", ev)
	}
}

func TestPollerReportsNewVersionsOnly(t *testing.T) {
	snaps := []map[string]uint64{
		{"a": 1, "b": 3},         // baseline: nothing reported
		{"a": 1, "b": 3},         // unchanged
		{"a": 2, "b": 3, "c": 1}, // a changed, c is new
		{"b": 3, "c": 1},         // a removed: nothing
		{"a": 3, "b": 3, "c": 1}, // a put again
	}
	var i atomic.Int32
	wake := make(chan struct{})
	p := &Poller{Every: time.Hour, Wake: wake, Snapshot: func(context.Context) (map[string]uint64, error) {
		n := int(i.Add(1)) - 1
		if n >= len(snaps) {
			return snaps[len(snaps)-1], nil
		}
		return snaps[n], nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Change, 10)
	go p.Run(ctx, func(c Change) { got <- c })
	for range len(snaps) - 1 {
		wake <- struct{}{}
	}
	want := map[Change]bool{{Name: "a", Version: 2}: true, {Name: "c", Version: 1}: true, {Name: "a", Version: 3}: true}
	for range len(want) {
		select {
		case c := <-got:
			if !want[c] {
				t.Fatalf("reported %+v", c)
			}
			delete(want, c)
		case <-time.After(5 * time.Second):
			t.Fatalf("missing %v", want)
		}
	}
	select {
	case c := <-got:
		t.Fatalf("extra %+v", c)
	case <-time.After(20 * time.Millisecond):
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRolloutRecordIsAnAuditRecordThatServesNothing: the audit trail reader
// takes it, and it never passes for a task served a version.
func TestRolloutRecordIsAnAuditRecordThatServesNothing(t *testing.T) {
	var buf bytes.Buffer
	for _, ev := range []Event{
		{Name: "api", Version: 3, Backend: "local", Service: "web", ServiceID: "w1", Took: 1500 * time.Millisecond},
		{Name: "api", Version: 4, Backend: "local", Service: "web", ServiceID: "w1", Err: &Failure{Service: "web", RolledBack: true, Reason: "rollback_completed"}},
	} {
		b, err := json.Marshal(ev.Record(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(append(b, '\n'))
	}
	var got []audit.Record
	if _, err := audit.Scan(bytes.NewReader(buf.Bytes()), audit.Filter{Service: "web"}, func(r audit.Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Class != ClassRollout || got[0].Decision != audit.DecisionAllow || got[0].LatencyMS != 1500 ||
		got[1].Decision != audit.DecisionError || !strings.Contains(got[1].Error, "rolled itself back") || got[1].Version != 4 {
		t.Fatalf("records %+v", got)
	}
	served, err := ServedFrom(Target{Name: "api", Backend: "local"}, bytes.NewReader(buf.Bytes()))
	if err != nil || len(served) != 0 {
		t.Fatalf("rollout records count as served: %v %v", served, err)
	}
}

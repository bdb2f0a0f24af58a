package rollout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver/audit"
)

// Event is one auto-rollout, for the audit trail and the log.
type Event struct {
	Name      string
	Version   uint64
	Backend   string
	Service   string
	ServiceID string
	Err       error
	Took      time.Duration
}

// Auto rolls the services labelled swarmkeep.rollout=auto that use a name
// whose version changed. Only the swarm leader's agent acts; the others
// watch too, so that whichever leads next is ready.
type Auto struct {
	API    API
	Source Source
	// Target resolves a changed name (backend, default, plugin names).
	Target func(name string) Target
	// Leader tells whether this agent's node leads the swarm now.
	Leader func(ctx context.Context) (bool, error)
	// Roll rolls one service to version want of the target; nil means
	// [Roll] with the options RollOptions gives.
	Roll        func(ctx context.Context, serviceID string, want uint64) (Result, error)
	RollOptions func(t Target, want uint64) Options
	// Timeout bounds one service's rollout (0: none).
	Timeout time.Duration
	// Debounce: a name is acted on once no new version came for this
	// long, so a burst of puts makes one rollout.
	Debounce time.Duration
	// BackoffMin and BackoffMax bound the retries after a failure to talk
	// to Docker. A rollout that failed is not retried: only a new version
	// of the name starts another.
	BackoffMin, BackoffMax time.Duration
	// Record writes each rollout's audit record; Log gets a line per
	// rollout and per problem.
	Record func(Event)
	Log    logrus.FieldLogger

	mu     sync.Mutex
	busy   map[string]*job   // service ID -> the job queued behind the running one (nil: none)
	failed map[string]uint64 // failKey -> version that failed
	// requeue offers a change again (a rollout deferred while the service
	// was busy); set by Run.
	requeue func(Change)
	wg      sync.WaitGroup
}

type job struct {
	target             Target
	name, backend      string
	version            uint64
	serviceID, service string
}

// Run watches until ctx ends. It returns the source's error, if it fails,
// after the rollouts it started have finished.
func (a *Auto) Run(ctx context.Context) error {
	if a.Debounce <= 0 {
		a.Debounce = 2 * time.Second
	}
	if a.BackoffMin <= 0 {
		a.BackoffMin = time.Second
	}
	if a.BackoffMax < a.BackoffMin {
		a.BackoffMax = 30 * a.BackoffMin
	}
	a.busy, a.failed = map[string]*job{}, map[string]uint64{}
	ctx, cancel := context.WithCancel(ctx)
	defer a.wg.Wait()
	defer cancel()

	changes := make(chan Change, 64)
	a.requeue = func(c Change) {
		select {
		case changes <- c:
		case <-ctx.Done():
		}
	}
	srcErr := make(chan error, 1)
	go func() {
		srcErr <- a.Source.Run(ctx, func(c Change) {
			select {
			case changes <- c:
			case <-ctx.Done():
			}
		})
	}()
	type due struct {
		version uint64
		target  Target
		at      time.Time
		wait    time.Duration // backoff of the next retry
	}
	// Pending names are keyed by backend and name: two backends can
	// hold the same name.
	type key struct{ backend, name string }
	pending := map[key]*due{}
	for {
		var wake <-chan time.Time
		if len(pending) > 0 {
			first := time.Duration(-1)
			for _, d := range pending {
				if w := time.Until(d.at); first < 0 || w < first {
					first = max(w, 0)
				}
			}
			wake = time.After(first)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-srcErr:
			return err
		case c := <-changes:
			t := a.Target(c.Name)
			if c.Target != nil {
				t = *c.Target
			}
			k := key{t.Backend, t.Name}
			d := pending[k]
			if d == nil {
				d = &due{}
				pending[k] = d
			}
			d.version, d.target, d.at, d.wait = max(d.version, c.Version), t, time.Now().Add(max(a.Debounce, c.Settle)), a.BackoffMin
		case <-wake:
			for k, d := range pending {
				if time.Now().Before(d.at) {
					continue
				}
				if err := a.dispatch(ctx, d.target, d.version); err != nil {
					a.Log.WithError(err).WithFields(logrus.Fields{"name": k.name, "backend": k.backend}).Warnf("auto-rollout: retrying in %s", d.wait)
					d.at, d.wait = time.Now().Add(d.wait), min(2*d.wait, a.BackoffMax)
					continue
				}
				delete(pending, k)
			}
		}
	}
}

// dispatch finds the opted-in services using name and queues a rollout of
// each. An error (Docker unreachable) means: try again later.
func (a *Auto) dispatch(ctx context.Context, t Target, version uint64) error {
	name := t.Name
	lead, err := a.Leader(ctx)
	if err != nil {
		return fmt.Errorf("asking who leads: %w", err)
	}
	if !lead {
		a.Log.WithFields(logrus.Fields{"name": name, "version": version}).Debug("auto-rollout: not the leader, leaving it to the leader's agent")
		return nil
	}
	rep, err := Find(ctx, a.API, t)
	if err != nil {
		return err
	}
	for _, u := range rep.Services {
		if !u.Auto || !u.Rollable() {
			continue
		}
		j := &job{target: t, name: name, backend: t.Backend, version: version, serviceID: u.ID, service: u.Name}
		a.mu.Lock()
		if v, ok := a.failed[failKey(u.ID, t)]; ok && version <= v {
			a.mu.Unlock()
			continue
		}
		if _, running := a.busy[u.ID]; running {
			a.busy[u.ID] = j // the latest version waits behind the running rollout
			a.mu.Unlock()
			continue
		}
		a.busy[u.ID] = nil
		a.mu.Unlock()
		a.wg.Add(1)
		go a.work(ctx, j)
	}
	return nil
}

// failKey names a service's failed rollout to a name in a backend.
func failKey(serviceID string, t Target) string {
	return serviceID + "\x00" + t.Backend + "\x00" + t.Name
}

// work runs j, then whatever was queued for the same service meanwhile.
func (a *Auto) work(ctx context.Context, j *job) {
	defer a.wg.Done()
	id := j.serviceID
	for j != nil {
		a.rollOne(ctx, j)
		a.mu.Lock()
		j = a.busy[id]
		if j == nil {
			delete(a.busy, id)
		} else {
			a.busy[id] = nil
		}
		a.mu.Unlock()
	}
}

func (a *Auto) rollOne(ctx context.Context, j *job) {
	log := a.Log.WithFields(logrus.Fields{"name": j.name, "version": j.version, "service": j.service})
	if lead, err := a.Leader(ctx); err != nil || !lead {
		log.WithError(err).Info("auto-rollout skipped: this node no longer leads the swarm")
		return
	}
	roll := a.Roll
	if roll == nil {
		roll = func(ctx context.Context, id string, want uint64) (Result, error) {
			var o Options
			if a.RollOptions != nil {
				o = a.RollOptions(j.target, want)
			}
			return Roll(ctx, a.API, id, o)
		}
	}
	log.Info("auto-rollout started")
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if a.Timeout > 0 {
		rctx, cancel = context.WithTimeout(ctx, a.Timeout)
	}
	res, err := roll(rctx, j.serviceID, j.version)
	cancel()
	ev := Event{Name: j.name, Version: j.version, Backend: j.backend, Service: j.service, ServiceID: j.serviceID, Err: err, Took: res.Took}
	if ctx.Err() != nil && err != nil {
		log.WithError(err).Warn("auto-rollout interrupted: the agent is stopping")
		return
	}
	if a.Record != nil {
		a.Record(ev)
	}
	if IsBusy(err) {
		// Nothing was changed: the service was in an update of its own.
		// Not a failure of this version; it is offered again later.
		log.WithError(err).Warnf("auto-rollout deferred: trying again in %s", a.BackoffMax)
		if a.requeue != nil {
			t := j.target
			a.requeue(Change{Name: j.name, Version: j.version, Target: &t, Settle: a.BackoffMax})
		}
		return
	}
	if err != nil {
		a.mu.Lock()
		a.failed[failKey(j.serviceID, j.target)] = j.version
		a.mu.Unlock()
		var f *Failure
		if !errors.As(err, &f) {
			err = fmt.Errorf("%w (not retried until a new version of %s)", err, j.name)
		}
		log.WithError(err).Error("auto-rollout failed; the next version of the name starts another")
		return
	}
	log.WithField("took", res.Took.Round(time.Millisecond)).Infof("auto-rollout done: %d task(s) on version %d", len(res.Tasks), j.version)
}

// ClassRollout is the class of the audit record of an auto-rollout. Such a
// record names no task: it says that the agent rolled Service to Version of
// Stored (decision allow) or failed to (decision error, with the reason).
const ClassRollout = "rollout"

// Record is the audit record of the rollout, made at the given time.
func (e Event) Record(at time.Time) audit.Record {
	r := audit.Record{
		V: audit.FormatVersion, Time: at.UTC(), Stored: e.Name, Version: e.Version, Backend: e.Backend,
		Service: e.Service, ServiceID: e.ServiceID, Decision: audit.DecisionAllow, Class: ClassRollout,
		LatencyMS: float64(e.Took.Microseconds()) / 1000,
	}
	if e.Err != nil {
		r.Decision, r.Error = audit.DecisionError, e.Err.Error()
	}
	return r
}

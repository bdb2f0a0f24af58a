package driver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/policy"
)

// Defaults and bounds for the per-request deadline. The engine's own plugin
// timeout is 30 s by default and unlimited after an install or a daemon
// restart, so the driver must bound every request itself, well under 30 s.
const (
	DefaultTimeout = 5 * time.Second
	MinTimeout     = 100 * time.Millisecond
	MaxTimeout     = 25 * time.Second
)

var errUnknownBackend = errors.New("unknown backend")

// ErrPolicyDenied marks a request the access policy refused. It is decided
// before any backend is asked, so a denial never reveals whether the name
// exists.
var ErrPolicyDenied = errors.New("access denied by policy")

// Event reports one answered request to the binary, which logs it (and later
// counts and audits it). It never holds the value.
type Event struct {
	// Request is nil when the body could not be decoded.
	Request *Request
	Spec    Spec
	Backend string
	// Version is the stored version served, when known.
	Version uint64
	// Size is the delivered value's length in bytes.
	Size int
	// Stale: a cache answered a last-known-good copy of Age.
	Stale bool
	Age   time.Duration
	// Cached: a cache answered without asking the backend.
	Cached bool
	// DoNotReuse is what the engine was told.
	DoNotReuse bool
	// Decision is the access decision, when one was made.
	Decision policy.Decision
	Class    Class
	Err      error
	// Line is the Err line answered to the engine, empty on success.
	Line    string
	Latency time.Duration
}

// Observer receives every Event. It runs on the request path: keep it fast.
type Observer func(Event)

// Route is one configured backend instance: the name secrets pick with the
// swarmkeep.backend label, the backend that answers (already wrapped in a
// cache where the server wants one) and its type's capabilities, which
// shape the fix in an error line.
type Route struct {
	Name    string
	Backend backend.Backend
	Caps    backend.Capabilities
}

// Options configure a Driver.
type Options struct {
	// Routes are the configured backends; at least one.
	Routes []Route
	// Default names the route used without a swarmkeep.backend label;
	// empty means the only route.
	Default string
	// Timeout bounds each request; 0 means DefaultTimeout.
	Timeout  time.Duration
	Observer Observer
	// Policy, when set, is asked before every backend read, and every
	// answer is then DoNotReuse (see get); nil lets every request through
	// (the swarmkeep.services label still narrows). It runs on every
	// request: it must be fast and never look at a backend.
	Policy policy.Decider
	// MaxStuck bounds, per route, the backend calls still running after
	// their request was answered (see getBounded); 0 or less means
	// DefaultMaxStuck.
	MaxStuck int
}

// Driver answers GetSecret requests. It is safe for concurrent use.
type Driver struct {
	routes   map[string]Route
	dflt     string
	timeout  time.Duration
	observe  Observer
	policy   policy.Decider
	gates    map[string]*gate // per route, read-only after New
	inflight sync.WaitGroup
}

// New checks the options and returns a Driver. It opens nothing: the
// routes' backends open themselves (see backend.Lazy).
func New(o Options) (*Driver, error) {
	if len(o.Routes) == 0 {
		return nil, errors.New("no backend configured")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Timeout < MinTimeout || o.Timeout > MaxTimeout {
		return nil, fmt.Errorf("request timeout %s out of range %s..%s", o.Timeout, MinTimeout, MaxTimeout)
	}
	if o.MaxStuck <= 0 {
		o.MaxStuck = DefaultMaxStuck
	}
	d := &Driver{routes: map[string]Route{}, gates: map[string]*gate{}, timeout: o.Timeout, observe: o.Observer, policy: o.Policy}
	if d.observe == nil {
		d.observe = func(Event) {}
	}
	for _, r := range o.Routes {
		if !ValidInstanceName(r.Name) {
			return nil, fmt.Errorf("backend name %s: use letters, digits, '-' and '_'", quoteShort(r.Name))
		}
		if _, dup := d.routes[r.Name]; dup {
			return nil, fmt.Errorf("backend %s configured twice", r.Name)
		}
		if r.Backend == nil {
			return nil, fmt.Errorf("backend %s has no backend", r.Name)
		}
		d.routes[r.Name] = r
		d.gates[r.Name] = newGate(o.MaxStuck)
	}
	d.dflt = o.Default
	if d.dflt == "" {
		if len(o.Routes) > 1 {
			return nil, errors.New("several backends configured: name the default one")
		}
		d.dflt = o.Routes[0].Name
	}
	if _, ok := d.routes[d.dflt]; !ok {
		return nil, fmt.Errorf("default backend %s is not configured", quoteShort(d.dflt))
	}
	return d, nil
}

// BackendNames lists the configured instances, sorted.
func (d *Driver) BackendNames() []string {
	out := make([]string, 0, len(d.routes))
	for n := range d.routes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Get answers one request within the driver's deadline.
func (d *Driver) Get(ctx context.Context, req Request) Response {
	d.inflight.Add(1)
	defer d.inflight.Done()
	start := time.Now()
	ev := Event{Request: &req}
	value, err := d.get(ctx, req, &ev)
	ev.Latency = time.Since(start)
	ev.Class = classify(err)
	ev.Err = err
	if err != nil {
		ev.Line = errorLine(req.SecretName, ev.Class, err)
		d.observe(ev)
		return Response{Err: ev.Line}
	}
	ev.Size = len(value)
	d.observe(ev)
	return Response{Value: value, DoNotReuse: ev.DoNotReuse}
}

func (d *Driver) get(ctx context.Context, req Request, ev *Event) ([]byte, error) {
	spec, err := ParseSpec(req.SecretName, req.SecretLabels)
	if err != nil {
		return nil, err
	}
	ev.Spec = spec
	if err := d.authorize(&req, spec, ev); err != nil {
		return nil, err
	}
	name := spec.Route(d.dflt)
	ev.Backend = name
	route, ok := d.routes[name]
	if !ok {
		return nil, fmt.Errorf("%w %s (configured: %s)", errUnknownBackend, quoteShort(name), strings.Join(d.BackendNames(), ", "))
	}
	ref := backend.Ref{
		Name: spec.Name, Version: spec.Version, Path: spec.Path, Field: spec.Field, Reuse: spec.Reuse,
		Secret: req.SecretName, Stack: spec.Stack, Service: req.ServiceName, Labels: req.SecretLabels,
	}
	sec, err := d.read(ctx, name, route.Backend, ref)
	if err != nil {
		return nil, &refError{name: spec.Name, backend: name, caps: route.Caps, deflt: name == d.dflt,
			err: fmt.Errorf("backend %s: %w", name, err)}
	}
	ev.Version, ev.Stale, ev.Age, ev.Cached = sec.Version, sec.Stale, sec.Age, sec.Cached
	// With an access policy every answer is a per-task copy: Swarm keeps one
	// copy of a reusable secret per node, and a task whose own request was
	// denied is handed the copy another task on its node got (its agent
	// falls back from "<id>.<task>" to "<id>"). Seen in the e2e tests.
	ev.DoNotReuse = !spec.Reuse || sec.Varies || d.policy != nil
	value, err := decodeValue(spec.Encoding, sec.Value)
	if err != nil {
		return nil, fmt.Errorf("stored %s version %d: %w", quoteShort(spec.Name), sec.Version, err)
	}
	return value, nil
}

// read asks the route's backend, within the driver's deadline. An answer the
// backend holds in memory (a cached record, a fresh cache entry) is taken
// on this goroutine: it cannot hang, so it needs neither the deadline's
// timer nor the bounded call's goroutine, which together cost more than
// the answer itself.
func (d *Driver) read(ctx context.Context, route string, b backend.Backend, ref backend.Ref) (backend.Secret, error) {
	if m, ok := b.(backend.MemoryGetter); ok {
		if sec, ok := m.GetFromMemory(ref); ok {
			return sec, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return getBounded(ctx, d.gates[route], b, ref)
}

// authorize applies the swarmkeep.services label, which can only narrow,
// then the access policy.
func (d *Driver) authorize(req *Request, spec Spec, ev *Event) error {
	if !spec.AllowsService(req.ServiceName) {
		service := quoteShort(req.ServiceName)
		ev.Decision = policy.Decision{Rule: LabelServices, Reason: "the secret's " + LabelServices + " label does not list service " + service}
		return fmt.Errorf("%w for service %s (the secret's %s label)", ErrPolicyDenied, service, LabelServices)
	}
	if d.policy == nil {
		return nil
	}
	ev.Decision = d.policy.Decide(IdentityOf(*req), spec.Name)
	if !ev.Decision.Allow {
		return fmt.Errorf("%w for service %s", ErrPolicyDenied, quoteShort(req.ServiceName))
	}
	return nil
}

// decodeValue applies the encoding and Swarm's size limits.
func decodeValue(enc Encoding, stored []byte) ([]byte, error) {
	value := stored
	if enc == EncodingBase64 {
		out, err := DecodeBase64(stored)
		if err != nil {
			return nil, fmt.Errorf("%w: %v (swarmkeep.encoding=base64)", errInvalidValue, err)
		}
		value = out
	}
	if len(value) < MinValueBytes {
		return nil, fmt.Errorf("%w: the value is empty and Swarm refuses empty secrets", errInvalidValue)
	}
	if len(value) > MaxValueBytes {
		return nil, fmt.Errorf("%w: the value is %d bytes, over Swarm's limit of %d", errInvalidValue, len(value), MaxValueBytes)
	}
	return value, nil
}

// Drain waits up to timeout for requests in flight, for a graceful stop.
func (d *Driver) Drain(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { d.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Close closes every opened backend.
func (d *Driver) Close() error {
	var errs []error
	for _, name := range d.BackendNames() {
		if err := d.routes[name].Backend.Close(); err != nil {
			errs = append(errs, fmt.Errorf("backend %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

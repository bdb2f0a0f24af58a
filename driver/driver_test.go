package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/policy"
)

// memBackend is a fake store for driver tests.
type memBackend struct {
	mu     sync.Mutex
	values map[string][][]byte // name -> versions, 1-based
	err    error
	delay  time.Duration
	ignore bool // ignore ctx, like a misbehaving backend
	calls  atomic.Int64
}

func (m *memBackend) Get(ctx context.Context, ref backend.Ref) (backend.Secret, error) {
	m.calls.Add(1)
	if m.delay > 0 {
		if m.ignore {
			time.Sleep(m.delay)
		} else {
			select {
			case <-time.After(m.delay):
			case <-ctx.Done():
				return backend.Secret{}, fmt.Errorf("%w: %w", backend.ErrUnavailable, ctx.Err())
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return backend.Secret{}, m.err
	}
	vs := m.values[ref.Name]
	if len(vs) == 0 {
		return backend.Secret{}, fmt.Errorf("record %q: %w", ref.Name, backend.ErrNotFound)
	}
	v := uint64(len(vs))
	if ref.Version != 0 {
		if ref.Version > v {
			return backend.Secret{}, fmt.Errorf("record %q version %d: %w", ref.Name, ref.Version, backend.ErrNotFound)
		}
		v = ref.Version
	}
	return backend.Secret{Value: bytes.Clone(vs[v-1]), Version: v}, nil
}

func (m *memBackend) Close() error { return nil }

func newTestDriver(t *testing.T, b *memBackend, timeout time.Duration) (*Driver, *[]Event) {
	t.Helper()
	var mu sync.Mutex
	var evs []Event
	d, err := New(Options{
		Routes:   []Route{{Name: "local", Backend: b}},
		Timeout:  timeout,
		Observer: func(e Event) { mu.Lock(); evs = append(evs, e); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, &evs
}

func TestDriverGet(t *testing.T) {
	b := &memBackend{values: map[string][][]byte{
		"db":           {[]byte("v1"), []byte("v2")},
		"demo/api_key": {[]byte("k")},
		"b64":          {[]byte("aGVsbG8=\n")},
		"bad64":        {[]byte("!!!")},
		"lax64":        {[]byte("QQ=====\n==")},
		"empty":        {{}},
		"big":          {bytes.Repeat([]byte("x"), MaxValueBytes+1)},
		"max":          {bytes.Repeat([]byte("x"), MaxValueBytes)},
	}}
	d, _ := newTestDriver(t, b, time.Second)
	tests := []struct {
		name         string
		secret       string
		labels       map[string]string
		want         string
		doNotReuse   bool
		wantErrParts []string
	}{
		{name: "latest", secret: "db", want: "v2"},
		{name: "pinned", secret: "db", labels: map[string]string{LabelVersion: "1"}, want: "v1"},
		{name: "per task", secret: "db", labels: map[string]string{LabelReuse: "false"}, want: "v2", doNotReuse: true},
		{name: "stack", secret: "demo_api_key", labels: map[string]string{StackNamespaceLabel: "demo"}, want: "k"},
		{name: "base64", secret: "b64", labels: map[string]string{LabelEncoding: "base64"}, want: "hello"},
		{name: "max size", secret: "max", want: strings.Repeat("x", MaxValueBytes)},
		{name: "missing", secret: "nope", wantErrParts: []string{`secret "nope"`, "not found", "fix: write the value to backend local"}},
		{name: "missing version", secret: "db", labels: map[string]string{LabelVersion: "9"}, wantErrParts: []string{"version 9", "not found"}},
		{name: "bad label", secret: "db", labels: map[string]string{LabelReuse: "maybe"}, wantErrParts: []string{"swarmkeep.reuse", "fix: recreate the secret"}},
		{name: "unknown backend", secret: "db", labels: map[string]string{LabelBackend: "vault"}, wantErrParts: []string{`unknown backend "vault"`, "configured: local"}},
		{name: "bad base64", secret: "bad64", labels: map[string]string{LabelEncoding: "base64"}, wantErrParts: []string{"not valid base64"}},
		// Once served as "A": base64(1) never writes it.
		{name: "lenient base64", secret: "lax64", labels: map[string]string{LabelEncoding: "base64"}, wantErrParts: []string{"not valid base64", "base64 -w0"}},
		{name: "empty", secret: "empty", wantErrParts: []string{"empty"}},
		{name: "too big", secret: "big", wantErrParts: []string{"over Swarm's limit"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := d.Get(context.Background(), Request{SecretName: tc.secret, SecretLabels: tc.labels})
			if tc.wantErrParts != nil {
				if resp.Err == "" || resp.Value != nil {
					t.Fatalf("want an error, got value of %d bytes", len(resp.Value))
				}
				for _, p := range tc.wantErrParts {
					if !strings.Contains(resp.Err, p) {
						t.Errorf("Err %q lacks %q", resp.Err, p)
					}
				}
				if strings.ContainsAny(resp.Err, "%\n") || !strings.HasPrefix(resp.Err, "swarmkeep: secret ") {
					t.Errorf("Err not one safe line: %q", resp.Err)
				}
				return
			}
			if resp.Err != "" {
				t.Fatal(resp.Err)
			}
			if string(resp.Value) != tc.want || resp.DoNotReuse != tc.doNotReuse {
				t.Fatalf("got %q reuse=%v", resp.Value, !resp.DoNotReuse)
			}
		})
	}
}

func TestDriverErrorsNeverCarryValues(t *testing.T) {
	const value = "s3cr3t-value"
	b := &memBackend{values: map[string][][]byte{"a": {[]byte(value)}}}
	d, evs := newTestDriver(t, b, time.Second)
	for _, labels := range []map[string]string{{LabelEncoding: "base64"}, {LabelVersion: "2"}} {
		resp := d.Get(context.Background(), Request{SecretName: "a", SecretLabels: labels})
		if resp.Err == "" || strings.Contains(resp.Err, value) {
			t.Fatalf("Err %q", resp.Err)
		}
	}
	for _, e := range *evs {
		if strings.Contains(fmt.Sprint(e.Err), value) || strings.Contains(e.Line, value) {
			t.Fatalf("event leaks the value: %+v", e)
		}
	}
}

func TestDriverClasses(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Class
	}{
		{fmt.Errorf("record x: %w", backend.ErrCorrupt), ClassCorrupt},
		{fmt.Errorf("login: %w", backend.ErrDenied), ClassDenied},
		{fmt.Errorf("dial: %w", backend.ErrUnavailable), ClassUnavailable},
		{fmt.Errorf("name: %w", backend.ErrInvalidRef), ClassInvalidRef},
		{errors.New("something else"), ClassUnavailable},
	} {
		b := &memBackend{err: tc.err}
		d, evs := newTestDriver(t, b, time.Second)
		resp := d.Get(context.Background(), Request{SecretName: "x", TaskID: "t", NodeID: "n"})
		if resp.Err == "" || (*evs)[0].Class != tc.want || (*evs)[0].Request.NodeID != "n" {
			t.Fatalf("%v: got class %s, Err %q", tc.err, (*evs)[0].Class, resp.Err)
		}
		if !strings.Contains(resp.Err, "fix: "+fixes[tc.want]) {
			t.Fatalf("Err %q lacks the %s fix", resp.Err, tc.want)
		}
	}
}

// TestWrongKeyFix: a key that does not open the store is class corrupt
// (the value cannot be had) but its fix is the key: "put the value again"
// cannot help when every record is fine.
func TestWrongKeyFix(t *testing.T) {
	b := &memBackend{err: fmt.Errorf("%w: key file /etc/swarmkeep/key does not open this store: %w", backend.ErrCannotOpen, backend.ErrWrongKey)}
	d, evs := newTestDriver(t, b, time.Second)
	resp := d.Get(context.Background(), Request{SecretName: "db", TaskID: "t", NodeID: "n"})
	if (*evs)[0].Class != ClassCorrupt || !strings.Contains(resp.Err, "fix: "+fixWrongKey) || strings.Contains(resp.Err, "put the value again") {
		t.Fatalf("class %s, Err %q", (*evs)[0].Class, resp.Err)
	}
}

func TestDriverDeadlineHoldsAgainstStuckBackend(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		b := &memBackend{values: map[string][][]byte{"a": {[]byte("v")}}, delay: 2 * time.Second, ignore: ignore}
		d, evs := newTestDriver(t, b, 150*time.Millisecond)
		start := time.Now()
		resp := d.Get(context.Background(), Request{SecretName: "a"})
		if took := time.Since(start); took > time.Second {
			t.Fatalf("ignore=%v: request held for %s", ignore, took)
		}
		if !strings.Contains(resp.Err, "no answer in time") || (*evs)[0].Class != ClassTimeout {
			t.Fatalf("ignore=%v: Err %q class %s", ignore, resp.Err, (*evs)[0].Class)
		}
	}
}

func TestNewValidates(t *testing.T) {
	in := Route{Name: "local", Backend: &memBackend{}}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "no backend"},
		{Options{Routes: []Route{in}, Timeout: time.Hour}, "out of range"},
		{Options{Routes: []Route{in, in}}, "twice"},
		{Options{Routes: []Route{in, {Name: "b", Backend: in.Backend}}}, "name the default"},
		{Options{Routes: []Route{in}, Default: "x"}, "not configured"},
		{Options{Routes: []Route{{Name: "a b", Backend: in.Backend}}}, "backend name"},
		{Options{Routes: []Route{{Name: "nil"}}}, "has no backend"},
	} {
		if _, err := New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

func TestDriverConcurrent(t *testing.T) {
	b := &memBackend{values: map[string][][]byte{"a": {[]byte("v")}}}
	d, _ := newTestDriver(t, b, time.Second)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if resp := d.Get(context.Background(), Request{SecretName: "a"}); string(resp.Value) != "v" {
					t.Error(resp.Err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if !d.Drain(time.Second) {
		t.Fatal("drain")
	}
}

func TestNotFoundFixNamesTheCommand(t *testing.T) {
	local := backend.Capabilities{Writable: true, Local: true}
	remoteStore := backend.Capabilities{Writable: true}
	readOnly := backend.Capabilities{Paths: true}
	for _, tc := range []struct {
		e    refError
		want string
	}{
		{refError{name: "db", backend: "local", caps: local, deflt: true}, "swarmkeep put db,"},
		{refError{name: "db", backend: "other", caps: local}, "swarmkeep put db --backend other,"},
		{refError{name: "db", backend: "shared", caps: remoteStore, deflt: true}, "swarmkeep put db --backend shared,"},
		{refError{name: "db", backend: "vault-prod", caps: readOnly}, "write the value to backend vault-prod"},
	} {
		if got := tc.e.notFoundFix(); !strings.Contains(got, tc.want) {
			t.Errorf("%+v: %q lacks %q", tc.e, got, tc.want)
		}
	}
}

type fixedAuthz struct {
	allow map[string]bool // stored name -> allowed
	calls atomic.Int64
}

func (a *fixedAuthz) Decide(id policy.Identity, stored string) policy.Decision {
	a.calls.Add(1)
	if a.allow[stored] {
		return policy.Decision{Allow: true, Rule: "r1", Reason: "granted"}
	}
	return policy.Decision{Rule: "", Reason: "no rule grants " + stored}
}

// A denial is decided before the backend: it cannot tell whether the name
// exists, and the answer is the same for a present and an absent name.
func TestDriverAuthorization(t *testing.T) {
	b := &memBackend{values: map[string][][]byte{"ok": {[]byte("v")}, "secret": {[]byte("s3cr3t")}}}
	d, evs := newTestDriver(t, b, time.Second)
	authz := &fixedAuthz{allow: map[string]bool{"ok": true}}
	d.policy = authz

	if resp := d.Get(context.Background(), Request{SecretName: "ok", ServiceName: "web"}); string(resp.Value) != "v" || !resp.DoNotReuse {
		t.Fatalf("allowed: %+v (with a policy every answer is a per-task copy)", resp)
	}
	present := d.Get(context.Background(), Request{SecretName: "secret", ServiceName: "web"})
	absent := d.Get(context.Background(), Request{SecretName: "nope", ServiceName: "web"})
	if present.Err == "" || strings.ReplaceAll(present.Err, `"secret"`, "X") != strings.ReplaceAll(absent.Err, `"nope"`, "X") {
		t.Fatalf("denials differ:\n%s\n%s", present.Err, absent.Err)
	}
	if !strings.Contains(present.Err, `access denied by policy for service "web"`) || !strings.Contains(present.Err, "swarmkeep policy explain") {
		t.Fatalf("Err %q", present.Err)
	}
	if got := b.calls.Load(); got != 1 {
		t.Fatalf("backend asked %d times, want only for the allowed request", got)
	}
	last := (*evs)[len(*evs)-1]
	if last.Class != ClassPolicyDenied || last.Decision.Allow || last.Decision.Reason == "" {
		t.Fatalf("event %+v", last)
	}

	// The label narrows even what the policy grants, and is checked first.
	resp := d.Get(context.Background(), Request{SecretName: "ok", ServiceName: "api", SecretLabels: map[string]string{LabelServices: "web"}})
	if !strings.Contains(resp.Err, "swarmkeep.services") || authz.calls.Load() != 3 {
		t.Fatalf("narrowing label: %q, authorizer calls %d", resp.Err, authz.calls.Load())
	}
	if resp := d.Get(context.Background(), Request{SecretName: "ok", ServiceName: "web", SecretLabels: map[string]string{LabelServices: "web,api"}}); string(resp.Value) != "v" {
		t.Fatalf("listed service: %+v", resp)
	}
}

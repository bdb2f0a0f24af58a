package driver

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// hungBackend blocks every read of a name in hang until release is
// closed, ignoring the context like a read blocked in the kernel.
type hungBackend struct {
	hang    map[string]bool
	release chan struct{}
	calls   atomic.Int64
}

func (h *hungBackend) Get(_ context.Context, ref backend.Ref) (backend.Secret, error) {
	h.calls.Add(1)
	if h.hang[ref.Name] {
		<-h.release
	}
	return backend.Secret{Value: []byte("v"), Version: 1}, nil
}

func (h *hungBackend) Close() error { return nil }

// A hung backend costs at most MaxStuck calls (and maxStuckPerName per
// name); past that the answer is "unavailable" at once without a call, and
// the route recovers once the stuck calls come back.
func TestGetBoundedRefusesPastTheBound(t *testing.T) {
	const maxStuck = 6
	h := &hungBackend{hang: map[string]bool{}, release: make(chan struct{})}
	for _, n := range []string{"a", "b", "c"} {
		h.hang[n] = true
	}
	d, err := New(Options{Routes: []Route{{Name: "local", Backend: h}}, Timeout: MinTimeout, MaxStuck: maxStuck})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
	}()
	get := func(name string) Response {
		return d.Get(context.Background(), Request{SecretName: name, ServiceName: "s"})
	}
	// One name hangs: it uses up its own bound, not the route's.
	for i := 0; i < 10; i++ {
		get("a")
	}
	if c := h.calls.Load(); c != maxStuckPerName {
		t.Fatalf("one hung name reached the backend %d times, want %d", c, maxStuckPerName)
	}
	if r := get("ok"); r.Err != "" || string(r.Value) != "v" {
		t.Fatalf("another name is refused while one name hangs: %+v", r)
	}
	// Names that hang too fill the route's bound; then every name is
	// refused at once, without a call.
	for i := 0; i < 10; i++ {
		get("b")
		get("c")
	}
	if s := d.Stuck("local"); s != maxStuck {
		t.Fatalf("stuck = %d, want %d", s, maxStuck)
	}
	before := h.calls.Load()
	start := time.Now()
	r := get("ok")
	if r.Err == "" || h.calls.Load() != before {
		t.Fatalf("past the bound: %+v, calls %d -> %d", r, before, h.calls.Load())
	}
	if time.Since(start) >= MinTimeout {
		t.Errorf("refusal took %s, the whole deadline", time.Since(start))
	}
	var ev Event
	d.observe = func(e Event) { ev = e }
	get("ok")
	if ev.Class != ClassUnavailable || !errors.Is(ev.Err, backend.ErrUnavailable) {
		t.Fatalf("class %s, err %v", ev.Class, ev.Err)
	}
	// The disk comes back: the stuck calls return and free the route.
	close(h.release)
	deadline := time.Now().Add(10 * time.Second)
	for d.Stuck("local") != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if r := get("a"); r.Err != "" {
		t.Fatalf("after recovery: %+v", r)
	}
}

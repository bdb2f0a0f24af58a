package driver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// memoryBackend answers the names in mem from memory (backend.MemoryGetter)
// and everything else through memBackend's Get.
type memoryBackend struct {
	*memBackend
	mem map[string]string
}

func (m *memoryBackend) GetFromMemory(ref backend.Ref) (backend.Secret, bool) {
	v, ok := m.mem[ref.Name]
	if !ok || ref.Version > 1 {
		return backend.Secret{}, false
	}
	return backend.Secret{Value: []byte(v), Version: 1, Cached: true}, true
}

// An answer the backend holds in memory is served without a backend call,
// and goes through everything else an answer does: the access policy first,
// the observer (audit) after; anything else still reaches Get.
func TestDriverAnswersFromMemory(t *testing.T) {
	slow := &memBackend{values: map[string][][]byte{"db": {[]byte("from-get")}}}
	b := &memoryBackend{memBackend: slow, mem: map[string]string{"cached": "from-memory", "denied": "x"}}
	var evs []Event
	d, err := New(Options{
		Routes:   []Route{{Name: "local", Backend: b}},
		Timeout:  time.Second,
		Observer: func(e Event) { evs = append(evs, e) },
		Policy:   &fixedAuthz{allow: map[string]bool{"cached": true, "db": true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if r := d.Get(ctx, Request{SecretName: "cached", ServiceName: "web"}); r.Err != "" || string(r.Value) != "from-memory" {
		t.Fatalf("cached: %q %q", r.Value, r.Err)
	}
	if n := slow.calls.Load(); n != 0 {
		t.Fatalf("%d backend calls for an answer held in memory", n)
	}
	if len(evs) != 1 || !evs[0].Cached || evs[0].Size != len("from-memory") || evs[0].Err != nil {
		t.Fatalf("observed %+v", evs)
	}
	if r := d.Get(ctx, Request{SecretName: "denied", ServiceName: "web"}); !errors.Is(evs[1].Err, ErrPolicyDenied) || len(r.Value) != 0 {
		t.Fatalf("denied name answered from memory: %q %v", r.Value, evs[1].Err)
	}
	if r := d.Get(ctx, Request{SecretName: "db", ServiceName: "web"}); r.Err != "" || string(r.Value) != "from-get" {
		t.Fatalf("db: %q %q", r.Value, r.Err)
	}
	if n := slow.calls.Load(); n != 1 {
		t.Fatalf("%d backend calls, want 1 (the name not in memory)", n)
	}
}

package backend

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// fixedBackend answers one value for every name.
type fixedBackend struct{ value string }

func (b fixedBackend) Get(context.Context, Ref) (Secret, error) {
	return Secret{Value: []byte(b.value), Version: 1}, nil
}
func (fixedBackend) Close() error { return nil }

var lazyOpenFailures atomic.Int64

func init() {
	Register(Type{Name: "lazytest", Open: func(_ context.Context, s Settings) (Backend, error) {
		if lazyOpenFailures.Add(-1) >= 0 {
			return nil, fmt.Errorf("%w: store missing", ErrNotFound)
		}
		return fixedBackend{s["value"]}, nil
	}})
}

func TestLazyRetriesAfterFailure(t *testing.T) {
	lazyOpenFailures.Store(1)
	l := NewLazy("lazytest", Settings{"value": "v"})
	now := time.Now()
	l.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := l.Get(ctx, Ref{Name: "a"}); !errors.Is(err, ErrCannotOpen) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("first: %v", err)
	}
	// Within retryAfter the failure is answered from memory, without a new open.
	if _, err := l.Get(ctx, Ref{Name: "a"}); !errors.Is(err, ErrCannotOpen) {
		t.Fatalf("second: %v", err)
	}
	if _, ok := l.Opened(); ok {
		t.Fatal("Opened after a failed open")
	}
	now = now.Add(retryAfter)
	s, err := l.Get(ctx, Ref{Name: "a"})
	if err != nil || string(s.Value) != "v" {
		t.Fatalf("after retry: %q %v", s.Value, err)
	}
	if _, ok := l.Opened(); !ok {
		t.Fatal("not Opened after a good open")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRegistry(t *testing.T) {
	if _, err := Lookup("LazyTest"); err != nil {
		t.Fatalf("lookup is not case-insensitive: %v", err)
	}
	if _, err := Open(context.Background(), "nope", nil); err == nil || !errors.Is(err, err) || err.Error() == "" {
		t.Fatal("unknown type opened")
	} else if got := err.Error(); got != `unknown backend type "nope" (known: lazytest)` {
		t.Fatalf("error %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate registration did not panic")
		}
	}()
	Register(Type{Name: "LAZYTEST", Open: func(context.Context, Settings) (Backend, error) { return nil, nil }})
}

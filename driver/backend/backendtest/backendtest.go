// Package backendtest is the conformance suite every backend type passes:
// a seeded value is found, a missing name and a missing version are
// ErrNotFound, versions are kept when the type says so (Versioned),
// path and field labels are refused by a type without Paths, a deadline
// is honoured, every error wraps one of the sentinels and holds no value,
// and Close ends the backend. A backend's own tests run it with a
// [Harness] that opens an instance on seeded storage; they keep what is
// particular to the backend (settings, credentials, tampering, …).
package backendtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Harness opens the backend under test.
type Harness struct {
	// Type is the registered type name; the suite reads its Capabilities
	// from the registry, so it checks what the type declares.
	Type string
	// Open seeds fresh storage with seed (each name's values are its
	// versions 1, 2, … in order; a type without Versioned gets one value
	// per name) and opens an instance on it through the registry. ref
	// returns the Ref that reads a name's value, seeded or not (a type
	// with Paths may add a field). The harness closes the backend when
	// the test ends; the suite may close it first.
	Open func(t *testing.T, seed map[string][]string) (b backend.Backend, ref func(name string) backend.Ref)
	// Stall, when set, makes the storage under b stop answering (not
	// refuse: hang) until the test ends, for the deadline check.
	Stall func(t *testing.T)
}

// Values the suite seeds; distinctive, so an error that holds one is found.
const (
	valueOne = "conformance-value-one-4b1e"
	valueTwo = "conformance-value-two-9c07"
	valueB   = "conformance-value-b-d352"
)

var values = []string{valueOne, valueTwo, valueB}

// Run runs every conformance check as a subtest of t.
func Run(t *testing.T, h Harness) {
	typ, err := backend.Lookup(h.Type)
	if err != nil {
		t.Fatal(err)
	}
	caps := typ.Caps
	seed := map[string][]string{"app/db": {valueOne, valueTwo}, "b": {valueB}}
	if !caps.Versioned {
		seed["app/db"] = []string{valueTwo}
	}
	t.Run("Found", func(t *testing.T) {
		b, ref := h.Open(t, seed)
		ctx := ctxFor(t, 20*time.Second)
		for name, want := range map[string]string{"app/db": valueTwo, "b": valueB} {
			sec, err := b.Get(ctx, ref(name))
			if err != nil || string(sec.Value) != want || sec.Stale || sec.Cached {
				t.Errorf("Get %s = %q (stale %v, cached %v), %v; want %q", name, sec.Value, sec.Stale, sec.Cached, err, want)
			}
			// A type that keeps versions knows which one it answered, and
			// when it was made.
			if caps.Versioned && (sec.Version != uint64(len(seed[name])) || sec.Created.IsZero()) {
				t.Errorf("Get %s: version %d created %v, want version %d and a time", name, sec.Version, sec.Created, len(seed[name]))
			}
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		b, ref := h.Open(t, seed)
		ctx := ctxFor(t, 20*time.Second)
		for _, name := range []string{"app/none", "none", "app/db/deeper"} {
			_, err := b.Get(ctx, ref(name))
			if !errors.Is(err, backend.ErrNotFound) {
				t.Errorf("Get missing %s: %v, want ErrNotFound", name, err)
			}
			checkError(t, err)
		}
	})
	t.Run("Versions", func(t *testing.T) {
		b, ref := h.Open(t, seed)
		ctx := ctxFor(t, 20*time.Second)
		r := ref("app/db")
		r.Version = 1
		sec, err := b.Get(ctx, r)
		if !caps.Versioned {
			// A pinned version the type cannot keep must not be answered
			// with whatever value it has.
			if err == nil {
				t.Fatalf("Get version 1 of an unversioned type = %q, want an error", sec.Value)
			}
			checkError(t, err)
			return
		}
		if err != nil || string(sec.Value) != valueOne || sec.Version != 1 {
			t.Fatalf("Get version 1 = %q version %d, %v; want %q", sec.Value, sec.Version, err, valueOne)
		}
		r.Version = 2
		if sec, err := b.Get(ctx, r); err != nil || string(sec.Value) != valueTwo || sec.Version != 2 {
			t.Fatalf("Get version 2 = %q version %d, %v; want %q", sec.Value, sec.Version, err, valueTwo)
		}
		for _, v := range []uint64{3, 99} {
			r.Version = v
			_, err := b.Get(ctx, r)
			if !errors.Is(err, backend.ErrNotFound) {
				t.Errorf("Get missing version %d: %v, want ErrNotFound", v, err)
			}
			checkError(t, err)
		}
	})
	t.Run("PathsAndFields", func(t *testing.T) {
		if caps.Paths {
			t.Skip("the type reads swarmkeep.path and swarmkeep.field")
		}
		b, ref := h.Open(t, seed)
		ctx := ctxFor(t, 20*time.Second)
		withPath, withField := ref("app/db"), ref("app/db")
		withPath.Path, withField.Field = "kv/app/db", "password"
		for _, r := range []backend.Ref{withPath, withField} {
			_, err := b.Get(ctx, r)
			if !errors.Is(err, backend.ErrInvalidRef) {
				t.Errorf("Get %+v: %v, want ErrInvalidRef", r, err)
			}
			checkError(t, err)
		}
	})
	t.Run("Deadline", func(t *testing.T) {
		b, ref := h.Open(t, seed)
		// A context whose deadline has passed is not answered.
		expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		if sec, err := getWithin(t, b, expired, ref("app/db")); !deadlineError(err) {
			t.Errorf("Get with an expired deadline = %q, %v; want ErrUnavailable or DeadlineExceeded", sec.Value, err)
		}
		// A short one is answered in time or refused in time.
		short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if sec, err := getWithin(t, b, short, ref("app/db")); err != nil && !deadlineError(err) ||
			err == nil && string(sec.Value) != valueTwo {
			t.Errorf("Get with a short deadline = %q, %v", sec.Value, err)
		}
		if h.Stall == nil {
			return
		}
		h.Stall(t)
		stalled, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if sec, err := getWithin(t, b, stalled, ref("b")); !deadlineError(err) {
			t.Errorf("Get from stalled storage = %q, %v; want ErrUnavailable or DeadlineExceeded", sec.Value, err)
		}
	})
	t.Run("Close", func(t *testing.T) {
		b, ref := h.Open(t, seed)
		ctx := ctxFor(t, 20*time.Second)
		if _, err := b.Get(ctx, ref("b")); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		sec, err := b.Get(ctx, ref("b"))
		if err == nil {
			t.Fatalf("Get after Close = %q, want an error", sec.Value)
		}
		checkError(t, err)
	})
}

// promptly bounds how long past its deadline a Get may take: enough for a
// loaded machine under -race, far below any retry loop or dial timeout.
const promptly = 2 * time.Second

// getWithin calls Get and fails the test if it outlives ctx's deadline by
// more than promptly. Every error must be classed and hold no value.
func getWithin(t *testing.T, b backend.Backend, ctx context.Context, ref backend.Ref) (backend.Secret, error) {
	t.Helper()
	type answer struct {
		sec backend.Secret
		err error
	}
	done := make(chan answer, 1)
	go func() {
		sec, err := b.Get(ctx, ref)
		done <- answer{sec, err}
	}()
	dl, _ := ctx.Deadline()
	limit := time.NewTimer(time.Until(dl) + promptly)
	defer limit.Stop()
	select {
	case a := <-done:
		if a.err != nil {
			checkError(t, a.err)
		}
		return a.sec, a.err
	case <-limit.C:
		t.Fatalf("Get %+v still running %v after its deadline", ref, promptly)
		return backend.Secret{}, nil
	}
}

func deadlineError(err error) bool {
	return errors.Is(err, backend.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// sentinels are the errors the driver sorts answers by: the backend
// contract's, and a context's deadline, which the driver reports as "no
// answer in time" like ErrUnavailable.
var sentinels = []error{backend.ErrNotFound, backend.ErrInvalidRef, backend.ErrCorrupt,
	backend.ErrUnavailable, backend.ErrDenied, backend.ErrCannotOpen, context.DeadlineExceeded}

// checkError fails the test if err wraps none of the sentinels (the driver
// could not tell the operator the fix) or holds a seeded value.
func checkError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if Classify(err) == nil {
		t.Errorf("error wraps no backend sentinel: %v", err)
	}
	for _, v := range values {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error holds a value: %v", err)
		}
	}
}

// Classify returns the first sentinel err wraps, or nil.
func Classify(err error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

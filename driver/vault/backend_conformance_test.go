package vault

import (
	"context"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/backend/backendtest"
)

// TestBackendConformance: the vault type passes the suite every backend
// type does, against the fake (or the real server the environment names;
// the stall needs the fake). Values are seeded as KV v2 versions of a
// document with one field, which the Ref picks.
func TestBackendConformance(t *testing.T) {
	t.Parallel()
	var stall func(*testing.T)
	backendtest.Run(t, backendtest.Harness{
		Type: Type,
		Open: func(t *testing.T, seed map[string][]string) (backend.Backend, func(string) backend.Ref) {
			e := newEnv(t)
			for name, vals := range seed {
				for _, v := range vals {
					e.put(t, name, map[string]any{"value": v})
				}
			}
			stall = func(t *testing.T) { e.needFake(t).SetLatency(time.Hour) }
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, err := backend.Open(ctx, Type, e.settings())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b, func(name string) backend.Ref { return backend.Ref{Name: e.path(name), Field: "value"} }
		},
		Stall: func(t *testing.T) { stall(t) },
	})
}

package store

import (
	"context"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/backend/backendtest"
)

// TestFileBackendConformance: the file type passes the suite every backend
// type does; backend_test.go keeps what is particular to it (names that
// cannot be stored, its settings).
func TestFileBackendConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Harness{
		Type: backendType,
		Open: func(t *testing.T, seed map[string][]string) (backend.Backend, func(string) backend.Ref) {
			ts := newTestStore(t, InitOptions{})
			for name, vals := range seed {
				for _, v := range vals {
					mustPut(t, ts.Store, name, v)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, err := backend.Open(ctx, backendType, backend.Settings{settingDir: ts.dir, settingKeyFile: ts.key})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b, func(name string) backend.Ref { return backend.Ref{Name: name} }
		},
	})
}

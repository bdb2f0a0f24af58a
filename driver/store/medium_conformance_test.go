package store_test

import (
	"path/filepath"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/driver/store/mediumtest"
)

// TestDirMediumConformance: DirMedium passes the suite every medium does;
// dirmedium_test.go keeps what is particular to files (names never on
// disk, stray temp files, moved files, a writer waiting for the lock).
func TestDirMediumConformance(t *testing.T) {
	mediumtest.Run(t, mediumtest.Harness{New: func(t *testing.T) func(*testing.T) store.Medium {
		dir := filepath.Join(t.TempDir(), "m")
		return func(t *testing.T) store.Medium {
			m, err := store.OpenDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			return m
		}
	}})
}

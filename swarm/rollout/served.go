package rollout

import (
	"io"

	"github.com/swarmkeep/swarmkeep/driver/audit"
)

// Served maps a task ID to the stored version the plugin served it.
type Served map[string]uint64

// ServedFrom reads audit trails and keeps, for every task the plugin served
// the target's name from its backend, the highest version served. A task
// asks once per secret object it mounts, at its start; one that mounts the
// name twice, once pinned to an old version, has followed the latest
// through the other mount.
func ServedFrom(t Target, trails ...io.Reader) (Served, error) {
	s := Served{}
	for _, r := range trails {
		_, err := audit.Scan(r, audit.Filter{Decision: string(audit.DecisionAllow), Backend: t.Backend}, func(rec audit.Record) error {
			if rec.Stored == t.Name && rec.TaskID != "" && rec.Version > s[rec.TaskID] {
				s[rec.TaskID] = rec.Version
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

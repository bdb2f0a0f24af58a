package agent

import (
	"context"
	"fmt"
	"maps"
	"strings"
)

// SetNodeLabels sets (or, for an empty value, removes) labels on this node,
// where other managers read them (`swarmkeep status`, `put` waiting for the
// mirrors). It writes only when something changes, since each write is a
// Raft commit, and retries when another loop updated the node meanwhile.
func (e *Env) SetNodeLabels(ctx context.Context, set map[string]string) error {
	var err error
	for range 5 {
		n, _, ierr := e.Docker.NodeInspectWithRaw(ctx, e.NodeID)
		if ierr != nil {
			return fmt.Errorf("inspecting this node %s: %w", e.NodeID, ierr)
		}
		labels := maps.Clone(n.Spec.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		for k, v := range set {
			if v == "" {
				delete(labels, k)
			} else {
				labels[k] = v
			}
		}
		if maps.Equal(labels, n.Spec.Labels) || len(labels) == 0 && len(n.Spec.Labels) == 0 {
			return nil
		}
		spec := n.Spec
		spec.Labels = labels
		err = e.Docker.NodeUpdate(ctx, e.NodeID, n.Version, spec)
		if err == nil || !strings.Contains(err.Error(), "out of sequence") {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("labelling this node %s: %w", e.NodeID, err)
	}
	return nil
}

package server

import (
	"fmt"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
)

// Refresh drops the plugin's copies of name (every name when empty) in the
// named backend instance (every one when empty), so the next request reads
// the backend: a cache's fresh copies become last-known-good only, a
// replica lists its store again, and a local store, read on every request,
// needs nothing. It is what swarmkeep refresh asks for on the metrics
// socket.
func (s *Server) Refresh(instance, name string) ([]metrics.Refreshed, error) {
	var out []metrics.Refreshed
	for _, b := range s.cfg.Backends {
		if instance != "" && b.Name != instance {
			continue
		}
		var action string
		if c, ok := s.caches[b.Name]; ok {
			action = fmt.Sprintf("dropped %d cached copies; the next request reads the backend", c.Refresh(name))
		}
		if be, ok := s.lazies[b.Name].Opened(); ok {
			if r, ok := be.(backend.Refresher); ok {
				r.Refresh(name)
				action = joinAction(action, "listing the store again")
			}
		}
		if action == "" {
			action = "nothing cached: every request reads the backend"
			if _, open := s.lazies[b.Name].Opened(); !open {
				action = "not open yet: the next request opens and reads it"
			}
		}
		s.log.WithField("backend", b.Name).Infof("refresh: %s", action)
		out = append(out, metrics.Refreshed{Backend: b.Name, Action: action})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no backend %q (set in %s)", instance, EnvBackends)
	}
	return out, nil
}

func joinAction(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

package metrics

import (
	"encoding/json"
	"net/http"
)

// Refreshed is what POST /refresh did for one backend. swarmkeep refresh
// decodes it, so its JSON names are an interface.
type Refreshed struct {
	Backend string `json:"backend"`
	// Action says what was dropped or re-read, for people.
	Action string `json:"action"`
}

// RefreshReply is the POST /refresh document.
type RefreshReply struct {
	Refreshed []Refreshed `json:"refreshed,omitempty"`
	Error     string      `json:"error,omitempty"`
}

// serveRefresh drops the plugin's copies (query: backend, name; both
// optional). Only on the unix socket: it is root-only, while the loopback
// TCP port is reachable by every local user, who must not be able to make
// the plugin hammer its backends.
func (m *Metrics) serveRefresh(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	reply := func(code int, rep RefreshReply) {
		w.WriteHeader(code)
		body, _ := json.Marshal(rep)
		w.Write(append(body, '\n'))
	}
	switch {
	case !viaUnixSocket(r):
		reply(http.StatusForbidden, RefreshReply{Error: "refresh is served on the root-only metrics socket only"})
		return
	case m.o.Refresh == nil:
		reply(http.StatusNotImplemented, RefreshReply{Error: "this plugin cannot refresh"})
		return
	}
	q := r.URL.Query()
	done, err := m.o.Refresh(q.Get("backend"), q.Get("name"))
	if err != nil {
		reply(http.StatusBadRequest, RefreshReply{Error: err.Error()})
		return
	}
	reply(http.StatusOK, RefreshReply{Refreshed: done})
}

package vaulttest

import (
	"net/http"
	"strconv"
	"strings"
)

// kv2Metadata mirrors the kv plugin's pathMetadataRead: the secret's
// metadata and every version's times, never its data. No secret is a plain
// 404.
func (s *Server) kv2Metadata(w http.ResponseWriter, m *kvMount, p string) {
	sec := m.v2[p]
	if sec == nil {
		writeErrors(w, http.StatusNotFound)
		return
	}
	versions := map[string]any{}
	oldest := 0
	for n, v := range sec.versions {
		versions[strconv.Itoa(n)] = map[string]any{"created_time": stamp(v.created), "deletion_time": stamp(v.deleted), "destroyed": v.destroyed}
		if oldest == 0 || n < oldest {
			oldest = n
		}
	}
	first, last := sec.versions[oldest], sec.versions[sec.current]
	writeResponse(w, http.StatusOK, response{Data: map[string]any{
		"cas_required": false, "created_time": stamp(first.created), "current_version": sec.current,
		"custom_metadata": nil, "delete_version_after": "0s", "max_versions": 0, "oldest_version": oldest,
		"updated_time": stamp(last.created), "versions": versions,
	}})
}

// CountPrefix is how many requests reached a URL path starting with prefix
// (for example "/v1/secret/data/"), whatever their method and outcome.
func (s *Server) CountPrefix(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.hits {
		if strings.HasPrefix(p, prefix) {
			n += c
		}
	}
	return n
}

package vaulttest

import (
	"fmt"
	"net/http"
	"strings"
)

// uiMounts is the API path (without /v1/) the Vault CLI asks before a kv
// command to learn a mount's KV version ("preflight"). Clients use it to
// check a configured mount: any token may call it.
const uiMounts = "sys/internal/ui/mounts/"

// serveMountInfo answers GET sys/internal/ui/mounts/{path} as Vault's
// pathInternalUIMountRead (vault/logical_system.go, 1.14) does. The path is
// unauthenticated, so no ACL is checked on it, but the handler itself
// looks the token up:
//
//   - no token, or one the server does not know (revoked, expired): 403
//     "permission denied";
//   - no mount holds the path, or the token's policies grant nothing under
//     the mount that does: 403 with the same "preflight capability check"
//     text in both cases, so the endpoint cannot be used to list mounts;
//   - otherwise 200 with the mount's description, the mount path with its
//     trailing slash in "path", and "options" ({"version":"2"} for KV v2,
//     null or {"version":"1"} for KV v1).
func (s *Server) serveMountInfo(w http.ResponseWriter, q *request, p string) {
	if q.method != http.MethodGet {
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		return
	}
	p = strings.Trim(p, "/")
	if p == "" {
		writeErrors(w, http.StatusBadRequest, "path not set")
		return
	}
	t := s.lookupToken(q.token)
	if q.token == "" || t == nil {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	denied := fmt.Sprintf("preflight capability check returned 403, please ensure client's policies grant access to path %q", p+"/")
	segs := strings.Split(p, "/")
	for i := len(segs); i > 0; i-- {
		mp := strings.Join(segs[:i], "/")
		m := s.mounts[mountKey(q.ns, mp)]
		if m == nil || !s.namespaces[q.ns] {
			continue
		}
		if !s.mountAccess(t, q.ns, mp+"/") {
			writeErrors(w, http.StatusForbidden, denied)
			return
		}
		var opts any
		if m.options != nil {
			opts = m.options
		}
		writeResponse(w, http.StatusOK, response{Data: map[string]any{
			"type": "kv", "description": "", "accessor": m.accessor, "local": false, "seal_wrap": false,
			"external_entropy_access": false, "options": opts, "uuid": newID(), "plugin_version": "",
			"running_plugin_version": "v0.15.0+builtin", "running_sha256": "",
			"config": map[string]any{"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false},
			"path":   mp + "/",
		}})
		return
	}
	writeErrors(w, http.StatusForbidden, denied)
}

// mountAccess mirrors hasMountAccess: the token may use the mount if a
// policy grants anything on the mount path itself or on any path under it.
func (s *Server) mountAccess(t *token, ns, mount string) bool {
	if t.root {
		return true
	}
	if !strings.HasPrefix(ns, t.ns) {
		return false
	}
	prefix := strings.TrimPrefix(ns, t.ns) + mount
	for _, pat := range s.tokenPaths(t) {
		base, glob := strings.CutSuffix(pat, "*")
		if strings.HasPrefix(base, prefix) || glob && strings.HasPrefix(prefix, base) {
			return true
		}
	}
	return false
}

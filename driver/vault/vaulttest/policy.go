package vaulttest

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// Policies and token administration, so a test can set a server up through
// the api client exactly as it would set up a real one (PutPolicy, Token
// Create, RevokeTree), and so one suite runs against both.

// policyStanza matches one path stanza of an HCL policy. The fake reads only
// the path: any capability list grants everything, except one naming "deny",
// which grants nothing.
var policyStanza = regexp.MustCompile(`path\s+"([^"]+)"\s*\{([^}]*)\}`)

// PutPolicy stores an ACL policy in namespace ns, as PUT
// /v1/sys/policies/acl/{name} does. Tokens naming it see changes at once.
func (s *Server) PutPolicy(ns, name, hcl string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putPolicy(cleanNamespace(ns), name, hcl)
}

func (s *Server) putPolicy(ns, name, hcl string) {
	var paths []string
	for _, m := range policyStanza.FindAllStringSubmatch(hcl, -1) {
		if !strings.Contains(m[2], `"deny"`) {
			paths = append(paths, m[1])
		}
	}
	s.policies[ns+name] = paths
}

// tokenPaths is every path pattern t's policies grant, looked up now: Vault
// applies a policy change to existing tokens.
func (s *Server) tokenPaths(t *token) []string {
	paths := slices.Clone(t.paths)
	for _, n := range t.policyNames {
		paths = append(paths, s.policies[t.ns+n]...)
	}
	return paths
}

// servePolicy answers sys/policies/acl/{name}.
func (s *Server) servePolicy(w http.ResponseWriter, q *request, name string) {
	switch q.method {
	case http.MethodPut:
		hcl := str(q.body["policy"])
		if hcl == "" {
			writeErrors(w, http.StatusBadRequest, "'policy' parameter not supplied or empty")
			return
		}
		s.putPolicy(q.ns, name, hcl)
	case http.MethodDelete:
		delete(s.policies, q.ns+name)
	default:
		writeErrors(w, http.StatusMethodNotAllowed, "vaulttest: "+q.method+" "+q.path+" is not served")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// serveTokenAdmin answers auth/token/create and auth/token/revoke, which
// need a token the ACL lets use those paths (the root token does).
func (s *Server) serveTokenAdmin(w http.ResponseWriter, q *request) {
	if q.method != http.MethodPut {
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		return
	}
	parent := s.authorize(w, q, q.path)
	if parent == nil {
		return
	}
	if strings.HasSuffix(q.path, "/revoke") {
		delete(s.tokens, str(q.body["token"]))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var names []string
	raw, _ := q.body["policies"].([]any)
	for _, v := range raw {
		if n := str(v); n != "" && n != "default" {
			names = append(names, n)
		}
	}
	o := TokenOptions{Namespace: q.ns, Renewable: true, TTL: defaultTTL, Root: slices.Contains(names, "root")}
	if o.Root && !parent.root {
		writeErrors(w, http.StatusBadRequest, "root tokens may not be created without parent token being root")
		return
	}
	if b, ok := q.body["renewable"].(bool); ok {
		o.Renewable = b
	}
	ttl, ok := parseSeconds(q.body["ttl"])
	if !ok {
		ttl, ok = parseSeconds(q.body["lease"])
	}
	switch {
	case ok && ttl > 0:
		o.TTL = ttl
	case o.Root:
		o.TTL = 0 // a root token made without a TTL never expires
	}
	o.MaxTTL, _ = parseSeconds(q.body["explicit_max_ttl"])
	t := s.issue(q.ns, o, nil)
	t.policyNames = slices.DeleteFunc(names, func(n string) bool { return n == "root" })
	lease := t.ttl
	if t.maxTTL > 0 && t.maxTTL < lease {
		lease = t.maxTTL
	}
	writeResponse(w, http.StatusOK, response{Auth: s.auth(t, lease)})
}

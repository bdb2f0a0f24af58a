package vaulttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// errDenied is Vault's answer to a request its ACL refuses, and also to one
// whose token is missing, unknown, revoked or expired: Vault 1.14's
// fetchACLTokenEntryAndEntity returns logical.ErrPermissionDenied for a
// token it cannot find, and handleCancelableRequest wraps either in a
// go-multierror (vault/request_handling.go). So a 403 alone cannot tell a
// dead token from a policy refusal; a client asks lookup-self, which the
// default policy allows every live token. Texts differ between releases and
// forks, so a client keys on the 403, never on the words.
const errDenied = "1 error occurred:\n\t* permission denied\n\n"

// defaultTTL is Vault's default lease TTL (768h), used when a role sets none.
const defaultTTL = 768 * time.Hour

// TokenOptions describe a token made with CreateToken.
type TokenOptions struct {
	// Paths are ACL path patterns, relative to Namespace, that the token may
	// use with every capability. A trailing '*' matches any suffix, as in a
	// Vault policy: "secret/data/app/*".
	Paths []string
	// Root grants everything, as the root policy does.
	Root bool
	// TTL is the token's lifetime, and what renew-self extends it by when
	// the request names no increment. 0 means it never expires. Vault counts
	// whole seconds: a fraction is dropped.
	TTL time.Duration
	// MaxTTL caps the lifetime across renewals; 0 means no cap.
	MaxTTL time.Duration
	// Renewable allows renew-self.
	Renewable bool
	// Namespace the token lives in, "" for the root namespace. It works
	// there and in child namespaces.
	Namespace string
}

type token struct {
	id, accessor string
	ns           string
	paths        []string
	policyNames  []string // ACL policies, resolved at each request
	root         bool
	ttl, maxTTL  time.Duration
	renewable    bool
	issued       time.Time
	expires      time.Time // zero: never
	meta         map[string]string
}

// CreateToken issues a token, as POST /v1/auth/token/create would.
func (s *Server) CreateToken(o TokenOptions) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issue(cleanNamespace(o.Namespace), o, nil).id
}

// RevokeToken revokes one token: it is refused from now on.
func (s *Server) RevokeToken(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, id)
}

// RevokeAll revokes every token but the root token, as if an operator had
// revoked the auth mounts' leases: clients must log in again.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.tokens {
		if id != s.root {
			delete(s.tokens, id)
		}
	}
}

// LiveTokens is how many unexpired tokens exist, the root token included.
func (s *Server) LiveTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range s.tokens {
		if s.lookupToken(id) != nil {
			n++
		}
	}
	return n
}

func (s *Server) issue(ns string, o TokenOptions, meta map[string]string) *token {
	now := s.now()
	t := &token{id: "hvs." + strings.ReplaceAll(newID(), "-", ""), accessor: newID(), ns: ns,
		paths: o.Paths, root: o.Root, ttl: o.TTL.Truncate(time.Second), maxTTL: o.MaxTTL.Truncate(time.Second),
		renewable: o.Renewable, issued: now, meta: meta}
	if t.ttl > 0 {
		t.expires = now.Add(t.ttl)
		if t.maxTTL > 0 && t.maxTTL < t.ttl {
			t.expires = now.Add(t.maxTTL)
		}
	}
	s.tokens[t.id] = t
	return t
}

// lookupToken returns a live token, forgetting it once expired as Vault's
// expiration manager would.
func (s *Server) lookupToken(id string) *token {
	t := s.tokens[id]
	if t == nil {
		return nil
	}
	if !t.expires.IsZero() && !s.now().Before(t.expires) {
		delete(s.tokens, id)
		return nil
	}
	return t
}

// authorize checks q's token for ACL path p (relative to q's namespace; ""
// for paths every token may use, as the default policy allows). It writes
// Vault's 403 and returns nil when the request is refused.
func (s *Server) authorize(w http.ResponseWriter, q *request, p string) *token {
	if q.token == "" {
		writeErrors(w, http.StatusForbidden, errDenied)
		return nil
	}
	t := s.lookupToken(q.token)
	if t == nil {
		writeErrors(w, http.StatusForbidden, errDenied)
		return nil
	}
	if !strings.HasPrefix(q.ns, t.ns) || p != "" && !s.allows(t, strings.TrimPrefix(q.ns, t.ns)+p) {
		writeErrors(w, http.StatusForbidden, errDenied)
		return nil
	}
	return t
}

func (s *Server) allows(t *token, p string) bool {
	if t.root {
		return true
	}
	for _, pat := range s.tokenPaths(t) {
		if prefix, glob := strings.CutSuffix(pat, "*"); glob && strings.HasPrefix(p, prefix) || p == pat {
			return true
		}
	}
	return false
}

func (t *token) policies() []string {
	if t.root {
		return []string{"root"}
	}
	out := append([]string{"default"}, t.policyNames...)
	if len(t.paths) > 0 {
		out = append(out, "vaulttest")
	}
	return out
}

// authBlock is the "auth" object of a login or renewal answer.
type authBlock struct {
	ClientToken    string            `json:"client_token"`
	Accessor       string            `json:"accessor"`
	Policies       []string          `json:"policies"`
	TokenPolicies  []string          `json:"token_policies"`
	Metadata       map[string]string `json:"metadata"`
	LeaseDuration  int               `json:"lease_duration"`
	Renewable      bool              `json:"renewable"`
	EntityID       string            `json:"entity_id"`
	TokenType      string            `json:"token_type"`
	Orphan         bool              `json:"orphan"`
	MFARequirement any               `json:"mfa_requirement"`
	NumUses        int               `json:"num_uses"`
}

// auth describes t after a login or renewal that granted lease: Vault
// reports the granted TTL in whole seconds, not what is left of it by the
// time the answer is written.
func (s *Server) auth(t *token, lease time.Duration) *authBlock {
	return &authBlock{ClientToken: t.id, Accessor: t.accessor, Policies: t.policies(), TokenPolicies: t.policies(),
		Metadata: t.meta, LeaseDuration: int(lease / time.Second), Renewable: t.renewable, TokenType: "service", Orphan: true}
}

// remaining is the whole seconds left, as Vault reports TTLs.
func (t *token) remaining(now time.Time) int {
	if t.expires.IsZero() {
		return 0
	}
	return int(t.expires.Sub(now) / time.Second)
}

// serveTokenSelf answers auth/token/lookup-self and auth/token/renew-self,
// which the default policy lets every token use.
func (s *Server) serveTokenSelf(w http.ResponseWriter, q *request) {
	renew := strings.HasSuffix(q.path, "renew-self")
	if renew && q.method != http.MethodPut || !renew && q.method != http.MethodGet {
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		return
	}
	t := s.authorize(w, q, "")
	if t == nil {
		return
	}
	now := s.now()
	if !renew {
		var expire any
		if !t.expires.IsZero() {
			expire = t.expires.UTC().Format(time.RFC3339Nano)
		}
		writeResponse(w, http.StatusOK, response{Data: map[string]any{
			"accessor": t.accessor, "creation_time": t.issued.Unix(), "creation_ttl": int(t.ttl / time.Second),
			"display_name": "token", "entity_id": "", "expire_time": expire, "explicit_max_ttl": int(t.maxTTL / time.Second),
			"id": t.id, "issue_time": t.issued.UTC().Format(time.RFC3339Nano), "meta": t.meta, "num_uses": 0,
			"orphan": true, "path": "auth/token/create", "policies": t.policies(), "renewable": t.renewable,
			"ttl": t.remaining(now), "type": "service",
		}})
		return
	}
	// Mirrors ExpirationManager.RenewToken: a token without a lease (root)
	// has no lease ID; a non-renewable one is refused.
	switch {
	case t.expires.IsZero():
		writeErrors(w, http.StatusBadRequest, "invalid lease ID")
		return
	case !t.renewable:
		writeErrors(w, http.StatusBadRequest, "lease is not renewable")
		return
	}
	ttl := t.ttl
	if inc, ok := parseSeconds(q.body["increment"]); ok && inc > 0 {
		ttl = inc
	}
	var warnings []string
	if t.maxTTL > 0 {
		if left := t.issued.Add(t.maxTTL).Sub(now).Truncate(time.Second); ttl > left {
			warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly", ttl, left))
			ttl = left
		}
	}
	t.expires = now.Add(ttl)
	writeResponse(w, http.StatusOK, response{Auth: s.auth(t, ttl), Warnings: warnings})
}

// parseSeconds reads a duration field the way Vault's TypeDurationSecond
// does: a number of seconds or a Go duration string.
func parseSeconds(v any) (time.Duration, bool) {
	switch v := v.(type) {
	case json.Number:
		n, err := v.Int64()
		return time.Duration(n) * time.Second, err == nil
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Duration(n) * time.Second, true
		}
		d, err := time.ParseDuration(v)
		return d, err == nil
	}
	return 0, false
}

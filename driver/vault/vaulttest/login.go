package vaulttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"
)

// AppRole is an AppRole role the server accepts logins for.
type AppRole struct {
	// Mount is the auth mount path; default "approle".
	Mount     string
	Namespace string
	RoleID    string
	// SecretID is the one valid secret ID; empty means the role does not
	// bind one (bind_secret_id=false).
	SecretID string
	// TokenTTL defaults to Vault's 768h; TokenMaxTTL 0 means no cap.
	TokenTTL, TokenMaxTTL time.Duration
	// NonRenewable issues tokens that renew-self refuses.
	NonRenewable bool
	// Paths are the issued tokens' ACL path patterns (see TokenOptions).
	Paths []string
}

// JWTRole is a role of the JWT auth method. Tokens must be signed with the
// server's key (see SignJWT).
type JWTRole struct {
	// Mount is the auth mount path; default "jwt".
	Mount     string
	Namespace string
	Name      string
	// BoundSubject, when set, must equal the JWT's "sub" claim.
	BoundSubject          string
	TokenTTL, TokenMaxTTL time.Duration
	NonRenewable          bool
	Paths                 []string
	// ExpirationLeeway is how long after "exp" a JWT is still accepted:
	// 0 means Vault's default of 150s, a negative value means none.
	ExpirationLeeway time.Duration
}

// AddAppRole adds the role, or replaces the one with the same mount,
// namespace and role ID (to rotate its secret ID, say).
func (s *Server) AddAppRole(r AppRole) {
	if r.Mount == "" {
		r.Mount = "approle"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appRoles[cleanNamespace(r.Namespace)+r.Mount+"|"+r.RoleID] = &r
}

// AddJWTRole adds the role, or replaces the one with the same mount,
// namespace and name.
func (s *Server) AddJWTRole(r JWTRole) {
	if r.Mount == "" {
		r.Mount = "jwt"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwtRoles[cleanNamespace(r.Namespace)+r.Mount+"|"+r.Name] = &r
}

// SignJWT returns an ES256 JWT for subject, valid for ttl, signed with the
// server's current key.
func (s *Server) SignJWT(subject string, ttl time.Duration) string {
	s.mu.Lock()
	key := s.signingKey()
	s.mu.Unlock()
	now := time.Now()
	header := b64json(map[string]string{"alg": "ES256", "typ": "JWT"})
	claims := b64json(map[string]any{"sub": subject, "iss": "vaulttest", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix()})
	h := sha256.Sum256([]byte(header + "." + claims))
	r, sv, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		panic("vaulttest: sign: " + err.Error())
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:])
	return header + "." + claims + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// RotateJWTKey replaces the signing key, as a JWKS rotation would: JWTs
// signed before are refused from now on.
func (s *Server) RotateJWTKey() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwtKey = nil
	s.signingKey()
}

func (s *Server) signingKey() *ecdsa.PrivateKey {
	if s.jwtKey == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic("vaulttest: key: " + err.Error())
		}
		s.jwtKey = k
	}
	return s.jwtKey
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// serveLogin answers auth/{mount}/login for a mount with AppRole or JWT
// roles. It returns false for any other mount: Vault then routes the call as
// an ordinary request, which without a token is a 403.
func (s *Server) serveLogin(w http.ResponseWriter, q *request) bool {
	if q.method != http.MethodPut {
		return false
	}
	mount := strings.TrimSuffix(strings.TrimPrefix(q.path, "auth/"), "/login")
	prefix := q.ns + mount + "|"
	for k := range s.appRoles {
		if strings.HasPrefix(k, prefix) {
			s.appRoleLogin(w, q, prefix)
			return true
		}
	}
	for k := range s.jwtRoles {
		if strings.HasPrefix(k, prefix) {
			s.jwtLogin(w, q, prefix)
			return true
		}
	}
	return false
}

// appRoleLogin mirrors approle's pathLoginUpdate in Vault 1.14
// (builtin/credential/approle/path_login.go): the messages and the 400
// status of its logical.ErrorResponse answers. Vault says "invalid role ID"
// for an unknown role ID and "invalid secret id" for a wrong secret ID
// (the latter with logical.ErrInvalidCredentials, which RespondErrorCommon
// also maps to 400); OpenBao says "invalid role or secret ID" for both.
func (s *Server) appRoleLogin(w http.ResponseWriter, q *request, prefix string) {
	roleID := strings.TrimSpace(str(q.body["role_id"]))
	if roleID == "" {
		writeErrors(w, http.StatusBadRequest, "missing role_id")
		return
	}
	r := s.appRoles[prefix+roleID]
	if r == nil {
		writeErrors(w, http.StatusBadRequest, "invalid role ID")
		return
	}
	if r.SecretID != "" {
		sid := strings.TrimSpace(str(q.body["secret_id"]))
		if sid == "" {
			writeErrors(w, http.StatusBadRequest, "missing secret_id")
			return
		}
		if sid != r.SecretID {
			writeErrors(w, http.StatusBadRequest, "invalid secret id")
			return
		}
	}
	s.loginOK(w, q.ns, r.Paths, r.TokenTTL, r.TokenMaxTTL, !r.NonRenewable, map[string]string{"role_name": roleID})
}

// jwtLogin mirrors the jwt plugin's login path: missing role, unknown role
// and a token that fails validation are all 400s.
func (s *Server) jwtLogin(w http.ResponseWriter, q *request, prefix string) {
	name := str(q.body["role"])
	if name == "" {
		writeErrors(w, http.StatusBadRequest, "missing role")
		return
	}
	r := s.jwtRoles[prefix+name]
	if r == nil {
		writeErrors(w, http.StatusBadRequest, fmt.Sprintf("role %q could not be found", name))
		return
	}
	raw := str(q.body["jwt"])
	if raw == "" {
		writeErrors(w, http.StatusBadRequest, "missing token")
		return
	}
	claims, err := s.verifyJWT(raw, r.ExpirationLeeway)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, "error validating token: "+err.Error())
		return
	}
	sub, _ := claims["sub"].(string)
	if r.BoundSubject != "" && sub != r.BoundSubject {
		writeErrors(w, http.StatusBadRequest, "sub claim does not match bound subject")
		return
	}
	s.loginOK(w, q.ns, r.Paths, r.TokenTTL, r.TokenMaxTTL, !r.NonRenewable, map[string]string{"role": name})
}

func (s *Server) verifyJWT(raw string, leeway time.Duration) (map[string]any, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errors.New("malformed token")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, errors.New("malformed signature")
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	key := &s.signingKey().PublicKey
	if !ecdsa.Verify(key, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, errors.New("failed to verify id token signature")
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("malformed claims")
	}
	var claims map[string]any
	if err := json.Unmarshal(body, &claims); err != nil {
		return nil, errors.New("malformed claims")
	}
	if leeway == 0 {
		leeway = 150 * time.Second
	} else if leeway < 0 {
		leeway = 0
	}
	exp, _ := claims["exp"].(float64)
	if exp == 0 || s.now().After(time.Unix(int64(exp), 0).Add(leeway)) {
		return nil, errors.New("token is expired (exp)")
	}
	return claims, nil
}

func (s *Server) loginOK(w http.ResponseWriter, ns string, paths []string, ttl, maxTTL time.Duration, renewable bool, meta map[string]string) {
	if ttl == 0 {
		ttl = defaultTTL
	}
	t := s.issue(ns, TokenOptions{Paths: paths, TTL: ttl, MaxTTL: maxTTL, Renewable: renewable}, meta)
	lease := t.ttl
	if t.maxTTL > 0 && t.maxTTL < lease {
		lease = t.maxTTL
	}
	writeResponse(w, http.StatusOK, response{Auth: s.auth(t, lease)})
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

package vault

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	api "github.com/openbao/openbao/api/v2"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// method is how the backend gets a token.
type method interface {
	// login obtains a token. c carries no token. Credential files are read
	// afresh every time: they rotate.
	login(ctx context.Context, c *api.Client) (grant, error)
	// remote is true when login asks the server (AppRole, JWT) and false
	// when it only reads a file (token).
	remote() bool
	// changed reports whether the credential behind the last login has
	// changed since, so the next request should log in again first.
	changed() bool
}

// grant is a token and what the server said of its lease.
type grant struct {
	token     string
	ttl       time.Duration // 0: never expires, or unknown
	renewable bool
	// known is false when ttl and renewable have not been asked yet (a
	// token read from a file): the renewer looks them up.
	known bool
}

func newMethod(c config) method {
	switch c.auth {
	case authAppRole:
		return &appRole{mount: c.appRoleMount, roleIDFile: c.roleIDFile, secretIDFile: c.secretIDFile}
	case authJWT:
		return &jwtAuth{mount: c.jwtMount, role: c.jwtRole, file: c.jwtFile}
	default:
		return &tokenFile{path: c.tokenFile}
	}
}

// tokenFile uses a token some other process keeps in a file (Vault Agent,
// an operator, a CI job). The file is watched by its stat, not its content,
// so checking it on every request costs one stat call.
type tokenFile struct {
	path string

	mu   sync.Mutex
	last fs.FileInfo // at the last read
}

func (t *tokenFile) login(context.Context, *api.Client) (grant, error) {
	info, _ := os.Stat(t.path)
	tok, err := readCredential(setTokenFile, t.path)
	if err != nil {
		return grant{}, err
	}
	t.mu.Lock()
	t.last = info
	t.mu.Unlock()
	return grant{token: tok}, nil
}

func (t *tokenFile) remote() bool { return false }

// changed compares the file's stat with the last read's. A missing file
// counts as unchanged: a writer replacing it may remove it for a moment,
// and the token in hand is still the best one there is.
func (t *tokenFile) changed() bool {
	info, err := os.Stat(t.path)
	if err != nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last == nil || !os.SameFile(t.last, info) || !info.ModTime().Equal(t.last.ModTime()) || info.Size() != t.last.Size()
}

// appRole logs in with a role ID and, unless the role binds none, a secret
// ID, both from files.
type appRole struct {
	mount, roleIDFile, secretIDFile string
}

func (a *appRole) login(ctx context.Context, c *api.Client) (grant, error) {
	roleID, err := readCredential(setRoleIDFile, a.roleIDFile)
	if err != nil {
		return grant{}, err
	}
	body := map[string]any{"role_id": roleID}
	var secretID string
	if a.secretIDFile != "" {
		if secretID, err = readCredential(setSecretIDFile, a.secretIDFile); err != nil {
			return grant{}, err
		}
		body["secret_id"] = secretID
	}
	return loginAt(ctx, c, "approle", "auth/"+a.mount+"/login", body, roleID, secretID)
}

func (a *appRole) remote() bool  { return true }
func (a *appRole) changed() bool { return false }

// jwtAuth logs in with a JWT from a file and a role. The JWT is read at
// every login because issuers rotate them, often well before the Vault
// token they bought expires.
type jwtAuth struct {
	mount, role, file string
}

func (j *jwtAuth) login(ctx context.Context, c *api.Client) (grant, error) {
	jwt, err := readCredential(setJWTFile, j.file)
	if err != nil {
		return grant{}, err
	}
	return loginAt(ctx, c, "jwt", "auth/"+j.mount+"/login", map[string]any{"role": j.role, "jwt": jwt}, jwt)
}

func (j *jwtAuth) remote() bool  { return true }
func (j *jwtAuth) changed() bool { return false }

// loginAt posts body to a login path and reads the token from the answer's
// auth block. creds are cut out of any error text.
func loginAt(ctx context.Context, c *api.Client, kind, path string, body map[string]any, creds ...string) (grant, error) {
	op := fmt.Sprintf("%s login at %s", kind, path)
	sec, err := c.Logical().WriteWithContext(ctx, path, body)
	if err != nil {
		return grant{}, loginError(ctx, op, err, creds...)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return grant{}, fmt.Errorf("%w: %s: the answer carries no token (check the %s_mount setting)", backend.ErrDenied, op, kind)
	}
	return grant{
		token:     sec.Auth.ClientToken,
		ttl:       time.Duration(sec.Auth.LeaseDuration) * time.Second,
		renewable: sec.Auth.Renewable,
		known:     true,
	}, nil
}

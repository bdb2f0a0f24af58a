package vault

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Settings keys of the vault backend. Every value is a string, as plugin
// settings are; credentials come only from files, because settings are shown
// by docker plugin inspect.
const (
	setAddress       = "address"
	setNamespace     = "namespace"
	setMount         = "mount"
	setKVVersion     = "kv_version"
	setPathTemplate  = "path_template"
	setAuth          = "auth"
	setTokenFile     = "token_file"
	setAppRoleMount  = "approle_mount"
	setRoleIDFile    = "role_id_file"
	setSecretIDFile  = "secret_id_file"
	setJWTFile       = "jwt_file"
	setJWTRole       = "jwt_role"
	setJWTMount      = "jwt_mount"
	setTLSCA         = "tls_ca"
	setTLSCert       = "tls_cert"
	setTLSKey        = "tls_key"
	setTLSServerName = "tls_server_name"
	setPrefetchPath  = "prefetch_path"
)

// Auth methods.
const (
	authToken   = "token"
	authAppRole = "approle"
	authJWT     = "jwt"
)

// authSettings lists the settings each auth method uses; a setting of
// another method is an error, so a half-edited configuration cannot
// silently authenticate some other way than the operator believes.
var authSettings = map[string][]string{
	authToken:   {setTokenFile},
	authAppRole: {setAppRoleMount, setRoleIDFile, setSecretIDFile},
	authJWT:     {setJWTFile, setJWTRole, setJWTMount},
}

// config is a validated set of Settings.
type config struct {
	address   string
	namespace string
	mount     string
	kvVersion int
	tmpl      *pathTemplate
	// prefetchPath is the folder (relative to the mount) whose secrets
	// the prefetch lists; "" is the whole mount.
	prefetchPath string

	auth                     string
	tokenFile                string
	appRoleMount             string
	roleIDFile, secretIDFile string
	jwtFile, jwtRole         string
	jwtMount                 string

	tlsCA, tlsCert, tlsKey, tlsServerName string
}

func knownSettings() []string {
	return []string{setAddress, setNamespace, setMount, setKVVersion, setPathTemplate, setAuth,
		setTokenFile, setAppRoleMount, setRoleIDFile, setSecretIDFile, setJWTFile, setJWTRole, setJWTMount,
		setTLSCA, setTLSCert, setTLSKey, setTLSServerName, setPrefetchPath}
}

// parseSettings checks every setting and fills in defaults. It reads no
// file: checkFiles does, at open.
func parseSettings(s backend.Settings) (config, error) {
	known := knownSettings()
	var unknown []string
	for k := range s {
		if !slices.Contains(known, k) {
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		sorted := slices.Clone(known)
		sort.Strings(sorted)
		noun := "setting"
		if len(unknown) > 1 {
			noun = "settings"
		}
		return config{}, fmt.Errorf("unknown %s %s (known: %s)", noun, strings.Join(unknown, ", "), strings.Join(sorted, ", "))
	}
	get := func(k, dflt string) string {
		if v := strings.TrimSpace(s[k]); v != "" {
			return v
		}
		return dflt
	}
	c := config{
		address: get(setAddress, ""), namespace: strings.Trim(get(setNamespace, ""), "/"),
		mount: strings.Trim(get(setMount, "secret"), "/"), auth: get(setAuth, authToken),
		tokenFile: get(setTokenFile, ""), appRoleMount: strings.Trim(get(setAppRoleMount, "approle"), "/"),
		roleIDFile: get(setRoleIDFile, ""), secretIDFile: get(setSecretIDFile, ""),
		jwtFile: get(setJWTFile, ""), jwtRole: get(setJWTRole, ""), jwtMount: strings.Trim(get(setJWTMount, "jwt"), "/"),
		tlsCA: get(setTLSCA, ""), tlsCert: get(setTLSCert, ""), tlsKey: get(setTLSKey, ""), tlsServerName: get(setTLSServerName, ""),
	}
	if c.address == "" {
		return config{}, fmt.Errorf("setting %q is required (for example https://vault.example:8200)", setAddress)
	}
	u, err := url.Parse(c.address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return config{}, fmt.Errorf("setting %q must be an http:// or https:// URL, not %q", setAddress, c.address)
	}
	tlsSet := c.tlsCA != "" || c.tlsCert != "" || c.tlsKey != "" || c.tlsServerName != ""
	if u.Scheme == "http" && tlsSet {
		return config{}, fmt.Errorf("tls_* settings need an https:// %s", setAddress)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return config{}, fmt.Errorf("settings %q and %q go together: set both or neither", setTLSCert, setTLSKey)
	}
	for k, v := range map[string]string{setMount: c.mount, setAppRoleMount: c.appRoleMount, setJWTMount: c.jwtMount, setNamespace: c.namespace} {
		if v == "" && k == setNamespace {
			continue
		}
		if err := checkPath(v); err != nil {
			return config{}, fmt.Errorf("setting %q: %w", k, err)
		}
	}
	switch kv := get(setKVVersion, "2"); kv {
	case "1", "2":
		c.kvVersion = int(kv[0] - '0')
	default:
		return config{}, fmt.Errorf("setting %q must be 1 or 2, not %q", setKVVersion, kv)
	}
	if c.tmpl, err = parsePathTemplate(get(setPathTemplate, "{{.Name}}")); err != nil {
		return config{}, fmt.Errorf("setting %q: %w", setPathTemplate, err)
	}
	c.prefetchPath = strings.Trim(get(setPrefetchPath, c.tmpl.literalPrefix()), "/")
	if c.prefetchPath != "" {
		if err := checkPath(c.prefetchPath); err != nil {
			return config{}, fmt.Errorf("setting %q: %w", setPrefetchPath, err)
		}
	}
	return c, c.checkAuth(s)
}

func (c config) checkAuth(s backend.Settings) error {
	mine, ok := authSettings[c.auth]
	if !ok {
		return fmt.Errorf("setting %q must be token, approle or jwt, not %q", setAuth, c.auth)
	}
	for method, keys := range authSettings {
		for _, k := range keys {
			if method != c.auth && !slices.Contains(mine, k) && s[k] != "" {
				return fmt.Errorf("setting %q is for auth=%s, but auth is %s", k, method, c.auth)
			}
		}
	}
	var need []string
	switch c.auth {
	case authToken:
		need = []string{setTokenFile}
	case authAppRole:
		need = []string{setRoleIDFile} // secret_id_file is optional: bind_secret_id=false roles need none
	case authJWT:
		need = []string{setJWTFile, setJWTRole}
	}
	for _, k := range need {
		if strings.TrimSpace(s[k]) == "" {
			return fmt.Errorf("setting %q is required with auth=%s", k, c.auth)
		}
	}
	return nil
}

// checkFiles reads every file a setting names, so a missing or unreadable
// credential or certificate is reported at open, naming the setting and the
// path, instead of as a failed login later. Missing credentials wrap
// ErrDenied: the operator's fix is the same as for refused ones.
func (c config) checkFiles() error {
	for _, f := range []struct{ key, path string }{
		{setTokenFile, c.tokenFile}, {setRoleIDFile, c.roleIDFile}, {setSecretIDFile, c.secretIDFile}, {setJWTFile, c.jwtFile},
	} {
		if f.path != "" {
			if _, err := readCredential(f.key, f.path); err != nil {
				return err
			}
		}
	}
	for _, f := range []struct{ key, path string }{{setTLSCA, c.tlsCA}, {setTLSCert, c.tlsCert}, {setTLSKey, c.tlsKey}} {
		if f.path != "" {
			if _, err := os.ReadFile(f.path); err != nil {
				return fmt.Errorf("setting %q: cannot read %q: %w", f.key, f.path, unwrapPath(err))
			}
		}
	}
	return nil
}

// maxCredentialFile bounds a token, role ID, secret ID or JWT file: a wrong
// path to a big file fails clearly instead of being sent to the server.
const maxCredentialFile = 64 << 10

// readCredential reads a credential file, trimmed of surrounding white space
// (editors and echo add a newline). Errors name the setting and path, never
// the content.
func readCredential(key, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: setting %q: cannot read %q: %w", backend.ErrDenied, key, path, unwrapPath(err))
	}
	defer f.Close()
	if err := backend.CheckPrivate(path, f); err != nil {
		return "", fmt.Errorf("%w: setting %q: %w", backend.ErrDenied, key, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialFile+1))
	if err != nil {
		return "", fmt.Errorf("%w: setting %q: cannot read %q: %w", backend.ErrDenied, key, path, unwrapPath(err))
	}
	defer clear(b)
	if len(b) > maxCredentialFile {
		return "", fmt.Errorf("%w: setting %q: file %q is larger than %d bytes (not a credential?)", backend.ErrDenied, key, path, maxCredentialFile)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%w: setting %q: file %q is empty", backend.ErrDenied, key, path)
	}
	if strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		// The api client refuses such a token outright; say which file.
		return "", fmt.Errorf("%w: setting %q: file %q holds non-printable characters (a binary file?)", backend.ErrDenied, key, path)
	}
	return v, nil
}

// unwrapPath drops the path an *fs.PathError repeats, since the message
// already names it.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

package etcdstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/credentials"
)

// tokenAuth is etcd user authentication with a password file that may be
// rotated while the plugin runs.
//
// The etcd client can authenticate by itself, but it keeps the password
// it was built with and retries with it for ever. We instead attach the
// token ourselves (as gRPC per-call credentials) and, when etcd rejects
// it, log in again with what the password file holds now. Rotating a
// password in etcd moves its auth revision, which invalidates every
// token, so a rotation is noticed at the next call whatever order the
// operator changes etcd and the file in: until both agree, calls fail
// with backend.ErrDenied; after, they work again, without a restart.
type tokenAuth struct {
	user     string
	passFile string
	cli      *clientv3.Client // set once, right after the client is built

	token atomic.Pointer[string]
	gen   atomic.Uint64 // counts logins, so concurrent failures log in once
	sem   chan struct{} // serialises logins
}

func newTokenAuth(c Config) *tokenAuth {
	return &tokenAuth{user: c.Username, passFile: c.PasswordFile, sem: make(chan struct{}, 1)}
}

// GetRequestMetadata attaches the current token, if any, except to the
// login itself: etcd checks a token sent with Authenticate, and rejects
// the login if that token is stale, which it is exactly when we log in
// again after a password change.
func (a *tokenAuth) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if ri, ok := credentials.RequestInfoFromContext(ctx); ok && ri.Method == authenticateMethod {
		return nil, nil
	}
	if t := a.token.Load(); t != nil && *t != "" {
		return map[string]string{rpctypes.TokenFieldNameGRPC: *t}, nil
	}
	return nil, nil
}

// RequireTransportSecurity is false: etcd accepts passwords over plain
// http, and refusing here would only make such a setup fail obscurely.
func (a *tokenAuth) RequireTransportSecurity() bool { return false }

// login authenticates with the password file's current content, unless
// another call already logged in since seen was read.
func (a *tokenAuth) login(ctx context.Context, seen uint64) error {
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-a.sem }()
	if a.gen.Load() != seen {
		return nil
	}
	pw, err := readPassword(a.passFile)
	if err != nil {
		return err
	}
	resp, err := a.cli.Authenticate(ctx, a.user, pw)
	tok := ""
	switch {
	case err == nil:
		tok = resp.Token
	case errors.Is(err, rpctypes.ErrAuthNotEnabled):
		// The cluster does not check users (yet): send no token.
	default:
		return err
	}
	a.token.Store(&tok)
	a.gen.Add(1)
	return nil
}

// staleToken reports whether etcd refused a call because of its token
// (expired, issued before a password or role change, or missing), which
// a new login fixes.
func staleToken(err error) bool {
	e := rpctypes.Error(err)
	return errors.Is(e, rpctypes.ErrInvalidAuthToken) || errors.Is(e, rpctypes.ErrAuthOldRevision) ||
		errors.Is(e, rpctypes.ErrUserEmpty)
}

// maxPasswordFile bounds what we read, so a wrong path to a big file
// fails clearly instead of sending megabytes to etcd.
const maxPasswordFile = 4096

// readPassword reads the password file: one trailing newline (and then
// one carriage return) is dropped, like the passphrase file. Errors wrap
// backend.ErrDenied and name the setting and path, never the content.
func readPassword(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("setting %q: %w: %w", SettingPasswordFile, backend.ErrDenied, err)
	}
	defer f.Close()
	if err := backend.CheckPrivate(path, f); err != nil {
		return "", fmt.Errorf("setting %q: %w: %w", SettingPasswordFile, backend.ErrDenied, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	if err != nil {
		return "", fmt.Errorf("setting %q: %w: %w", SettingPasswordFile, backend.ErrDenied, err)
	}
	defer clear(b)
	if len(b) > maxPasswordFile {
		return "", fmt.Errorf("setting %q: %w: %s is larger than %d bytes", SettingPasswordFile, backend.ErrDenied, path, maxPasswordFile)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return "", fmt.Errorf("setting %q: %w: %s is empty", SettingPasswordFile, backend.ErrDenied, path)
	}
	return string(b), nil
}

// tlsConfig builds the client TLS configuration for https endpoints, or
// nil for http ones. The CA is read once; the client certificate is
// re-read whenever its files change (see certReloader), because
// certificates are rotated more often than plugins are restarted.
func tlsConfig(c Config) (*tls.Config, error) {
	if !c.https() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCA != "" {
		b, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("setting %q: %w", SettingTLSCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("setting %q: %s holds no PEM certificate", SettingTLSCA, c.TLSCA)
		}
		tc.RootCAs = pool
	}
	if c.TLSCert != "" {
		r := &certReloader{certFile: c.TLSCert, keyFile: c.TLSKey}
		if err := r.check(); err != nil {
			return nil, err
		}
		tc.GetClientCertificate = r.get
	}
	return tc, nil
}

// certReloader hands the TLS stack the client certificate, loading it
// again when either file's identity, size or modification time changed.
// Handshakes are rare (one per connection), so a stat of two files each
// time costs nothing that matters.
type certReloader struct {
	certFile, keyFile string

	mu       sync.Mutex
	cert     *tls.Certificate
	certInfo os.FileInfo
	keyInfo  os.FileInfo
}

// check loads the pair once, so a missing or mismatched file is reported
// when the backend opens, naming the setting and the path.
func (r *certReloader) check() error {
	if _, err := os.Stat(r.certFile); err != nil {
		return fmt.Errorf("setting %q: %w", SettingTLSCert, err)
	}
	if _, err := os.Stat(r.keyFile); err != nil {
		return fmt.Errorf("setting %q: %w", SettingTLSKey, err)
	}
	if _, err := r.get(nil); err != nil {
		return err
	}
	return nil
}

func (r *certReloader) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ci, cerr := os.Stat(r.certFile)
	ki, kerr := os.Stat(r.keyFile)
	if cerr == nil && kerr == nil && (changed(r.certInfo, ci) || changed(r.keyInfo, ki)) {
		pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
		switch {
		case err == nil:
			r.cert, r.certInfo, r.keyInfo = &pair, ci, ki
		case r.cert == nil:
			return nil, fmt.Errorf("settings %q and %q: %w", SettingTLSCert, SettingTLSKey, err)
		}
		// Otherwise the files are mid-rotation (a new certificate next to
		// the old key): keep presenting the pair we have, and try again
		// at the next handshake, since the stamps were not updated.
	}
	if r.cert == nil {
		return nil, fmt.Errorf("settings %q and %q: %w", SettingTLSCert, SettingTLSKey, errors.Join(cerr, kerr))
	}
	return r.cert, nil
}

func changed(old, cur os.FileInfo) bool {
	return old == nil || !os.SameFile(old, cur) || !old.ModTime().Equal(cur.ModTime()) || old.Size() != cur.Size()
}

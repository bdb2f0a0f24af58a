package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	api "github.com/openbao/openbao/api/v2"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Type is the name the backend is registered under.
const Type = "vault"

func init() {
	backend.Register(backend.Type{Name: Type, Open: open, Caps: backend.Capabilities{Versioned: true, Paths: true}})
}

// kvBackend reads KV secrets from one Vault or OpenBao server.
type kvBackend struct {
	cfg     config
	clients *clients
	auth    *auth

	now    func() time.Time
	mounts mountCheck // what the server said of the mount setting, after a failed read

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closed    chan struct{}
}

var _ backend.Backend = (*kvBackend)(nil)

// open checks the settings and every file they name, builds the client and
// starts the renewer, which logs in in the background. It does not wait for
// the server: a server that is down at start must not keep the plugin from
// serving other backends, and the driver opens lazily anyway.
func open(_ context.Context, s backend.Settings) (backend.Backend, error) {
	b, err := openBackend(s)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func openBackend(s backend.Settings) (*kvBackend, error) {
	return openBackendClock(s, systemClock{})
}

// openBackendClock is openBackend with the clock the session and the
// renewer go by.
func openBackendClock(s backend.Settings, clk clock) (*kvBackend, error) {
	cfg, err := parseSettings(s)
	if err != nil {
		return nil, fmt.Errorf("vault backend: %w", err)
	}
	if err := cfg.checkFiles(); err != nil {
		return nil, fmt.Errorf("vault backend: %w", err)
	}
	f, err := newClients(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault backend: %w", err)
	}
	a, err := newAuth(newMethod(cfg), f, clk)
	if err != nil {
		return nil, fmt.Errorf("vault backend: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	b := &kvBackend{cfg: cfg, clients: f, auth: a, now: time.Now, stop: stop, done: make(chan struct{}), closed: make(chan struct{})}
	go a.run(ctx, b.done)
	return b, nil
}

// Get reads the secret ref names. The path is ref.Path (swarmkeep.path)
// or, without one, path_template's rendering of the request; the value is
// the whole KV document as JSON or ref.Field's value.
func (b *kvBackend) Get(ctx context.Context, ref backend.Ref) (backend.Secret, error) {
	select {
	case <-b.closed:
		return backend.Secret{}, fmt.Errorf("%w: the backend is closed", backend.ErrUnavailable)
	default:
	}
	path, varies, err := b.resolve(ref)
	if err != nil {
		return backend.Secret{}, err
	}
	if ref.Version > 0 && b.cfg.kvVersion == 1 {
		return backend.Secret{}, fmt.Errorf("%w: KV version 1 keeps no versions (mount %q): drop the %s label or use a KV v2 mount",
			backend.ErrInvalidRef, b.cfg.mount, backend.LabelVersion)
	}
	s, err := b.auth.current(ctx)
	if err != nil {
		return backend.Secret{}, err
	}
	doc, err := b.readKV(ctx, s, path, ref.Version)
	if statusOf(err) == 403 {
		// The token may have been revoked or have expired early (a server
		// restore, a clock jump): log in again once, and retry once.
		next, rerr := b.auth.reauth(ctx, s)
		switch {
		case rerr != nil:
			return backend.Secret{}, fmt.Errorf("%w; logging in again failed: %w", err, rerr)
		case next != nil:
			s = next
			doc, err = b.readKV(ctx, s, path, ref.Version)
		}
		if statusOf(err) == 403 {
			err = b.explainDenied(ctx, s, err)
		}
	}
	var ae *absentError
	if errors.As(err, &ae) {
		err = b.explainAbsent(ctx, s, err, ae.where)
	}
	if err != nil {
		return backend.Secret{}, err
	}
	value, err := render(doc, ref.Field)
	if err != nil {
		return backend.Secret{}, err
	}
	sec := doc.secret
	sec.Value, sec.Varies = value, varies
	return sec, nil
}

// resolve picks the KV path (relative to the mount) and says whether it
// depends on the requesting service.
func (b *kvBackend) resolve(ref backend.Ref) (path string, varies bool, err error) {
	path = ref.Path
	if path == "" {
		if path, err = b.cfg.tmpl.execute(ref); err != nil {
			return "", false, err
		}
		varies = b.cfg.tmpl.varies
	}
	if err := checkPath(path); err != nil {
		src := backend.LabelPath + " label"
		if ref.Path == "" {
			src = setPathTemplate + " rendering"
		}
		return "", false, fmt.Errorf("%w: %s: %w", backend.ErrInvalidRef, src, err)
	}
	return path, varies, nil
}

// Close stops the renewer and drops idle connections. Requests after Close
// fail with ErrUnavailable. The token is left to expire rather than revoked:
// Close runs at shutdown, when the server may well be out of reach.
func (b *kvBackend) Close() error {
	b.closeOnce.Do(func() {
		close(b.closed)
		b.stop()
		<-b.done
		b.clients.close()
	})
	return nil
}

// clientTimeout bounds a call whose context has no deadline (the renewer's
// has one; requests have the driver's). It is a backstop, not a policy.
const clientTimeout = 30 * time.Second

// clients makes api clients that share one HTTP client, so every token's
// requests reuse the same connections and TLS settings.
type clients struct {
	address   string
	namespace string
	http      *http.Client
}

func newClients(c config) (*clients, error) {
	// NewConfig, unlike DefaultConfig, reads no BAO_* or VAULT_* variable:
	// the plugin's settings are the whole configuration.
	base := api.NewConfig()
	if base.Error != nil {
		return nil, fmt.Errorf("http client: %w", base.Error)
	}
	if c.tlsCA != "" || c.tlsCert != "" || c.tlsServerName != "" {
		err := base.ConfigureTLS(&api.TLSConfig{CACert: c.tlsCA, ClientCert: c.tlsCert, ClientKey: c.tlsKey, TLSServerName: c.tlsServerName})
		if err != nil {
			return nil, fmt.Errorf("tls settings: %w", err)
		}
	}
	return &clients{address: c.address, namespace: c.namespace, http: base.HttpClient}, nil
}

// client returns an api client with token ("" for logins) and the
// namespace header.
func (f *clients) client(token string) (*api.Client, error) {
	c, err := api.NewClient(&api.Config{
		Address:    f.address,
		HttpClient: f.http,
		Timeout:    clientTimeout,
		// No retries: the api client waits at least a second between
		// tries, longer than the driver's per-request budget allows. A
		// failed request is retried by the engine; the renewer retries on
		// its own schedule.
		MaxRetries:         0,
		DisableEnvironment: true,
	})
	if err != nil {
		return nil, fmt.Errorf("api client: %w", err)
	}
	if f.namespace != "" {
		c.SetNamespace(f.namespace)
	}
	if token != "" {
		c.SetToken(token)
	}
	return c, nil
}

func (f *clients) close() { f.http.CloseIdleConnections() }

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	srvpkg "github.com/swarmkeep/swarmkeep/driver/server"
)

// The null backend answers a fixed value at once: serving it measures
// everything but the store (socket, HTTP, JSON, labels, deadline, encoding),
// the baseline the store is compared with.
func init() {
	backend.Register(backend.Type{Name: "null", Caps: backend.Capabilities{Local: true},
		Open: func(context.Context, backend.Settings) (backend.Backend, error) { return nullBackend{}, nil }})
}

type nullBackend struct{}

func (nullBackend) Get(context.Context, backend.Ref) (backend.Secret, error) {
	return backend.Secret{Value: nullValue, Version: 1}, nil
}

func (nullBackend) Close() error { return nil }

// nullEnv configures the null backend.
var nullEnv = map[string]string{srvpkg.EnvBackends: "local:null"}

// server is the plugin as the binary assembles it (package server), in this
// process, on a real unix socket.
type server struct {
	name   string
	sock   string
	srv    *srvpkg.Server
	l      net.Listener
	served chan error
	client *http.Client
	failed atomic.Int64
	last   atomic.Value // string: the last error line answered
	// answered counts values answered, stale those a cache answered from a
	// last-known-good copy.
	answered, stale atomic.Int64
}

// startServer serves the plugin configured by env (the serve command's
// settings; the audit trail is off unless env turns it on, and the policy
// is the built-in default unless env names a file) on dir/name.sock and
// returns once the backend is open, so no measurement pays for opening it.
func startServer(dir, name string, env map[string]string, conns int) (*server, error) {
	return startServerWith(dir, name, env, conns, nil)
}

// startServerWith is startServer with an instrument below the cache.
func startServerWith(dir, name string, env map[string]string, conns int, instrument func(string, backend.Backend) backend.Backend) (*server, error) {
	s := &server{name: name, sock: filepath.Join(dir, name+".sock"), served: make(chan error, 1)}
	set := map[string]string{
		srvpkg.EnvSocket: s.sock, srvpkg.EnvAudit: "off", srvpkg.EnvPolicyFile: filepath.Join(dir, "no-policy.yaml"),
		srvpkg.EnvLKGDir: filepath.Join(dir, "lkg-"+name),
	}
	for k, v := range env {
		set[k] = v
	}
	cfg, err := srvpkg.Load(func(k string) string { return set[k] })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	srv, err := srvpkg.New(cfg, srvpkg.Options{Version: "bench", Instrument: instrument,
		Observer: func(ev driver.Event) {
			switch {
			case ev.Class != driver.ClassOK:
				s.failed.Add(1)
				s.last.Store(ev.Line)
			case ev.Stale:
				s.answered.Add(1)
				s.stale.Add(1)
			default:
				s.answered.Add(1)
			}
		}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.srv = srv
	_ = os.Remove(s.sock)
	if s.l, err = srvpkg.ListenUnix(s.sock); err != nil {
		srv.Close()
		return nil, err
	}
	go func() { s.served <- http.Serve(s.l, srv.Handler()) }()
	opened := make(chan error, len(cfg.Backends))
	srv.Warm(func(_ string, err error) { opened <- err })
	select {
	case err = <-opened:
	case <-time.After(2 * time.Minute):
		err = errors.New("backend did not open in 2 minutes")
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.client = newClient(s.sock, conns)
	return s, nil
}

// target loads this server; n names are stored behind it.
func (s *server) target(n int, null bool) target {
	return target{client: s.client, n: n, null: null}
}

// check reports answers that failed on the server side.
func (s *server) check() error {
	if n := s.failed.Load(); n > 0 {
		line, _ := s.last.Load().(string)
		return fmt.Errorf("%s: %d failed answers, last: %s", s.name, n, line)
	}
	return nil
}

// Close stops serving, closes the backend and collects garbage, so the next
// measurement does not inherit this one's heap.
func (s *server) Close() error {
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	if s.l != nil {
		s.l.Close()
		<-s.served
	}
	s.srv.Driver().Drain(10 * time.Second)
	err := s.srv.Close()
	_ = os.Remove(s.sock)
	runtime.GC()
	return err
}

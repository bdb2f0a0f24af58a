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
)

// The null backend answers a fixed value at once: serving it measures
// everything but the store (socket, HTTP, JSON, labels, deadline, encoding),
// the baseline the store is compared with.
func init() {
	driver.Register("null", func(context.Context, driver.Settings) (driver.Backend, error) {
		return nullBackend{}, nil
	})
}

type nullBackend struct{}

func (nullBackend) Get(context.Context, driver.Ref) (driver.Secret, error) {
	return driver.Secret{Value: nullValue, Version: 1}, nil
}

func (nullBackend) Close() error { return nil }

// nullInstance is the null backend's configuration.
var nullInstance = driver.Instance{Name: "local", Type: "null"}

// server is the real driver and handler, in this process, on a real unix
// socket.
type server struct {
	name   string
	sock   string
	d      *driver.Driver
	l      net.Listener
	served chan error
	client *http.Client
	failed atomic.Int64
	last   atomic.Value // string: the last error line answered
	// answered counts values answered, stale those a cache answered from a
	// last-known-good copy.
	answered, stale atomic.Int64
}

// startServer serves in on dir/name.sock and returns once the backend is
// open, so no measurement pays for opening it.
func startServer(dir, name string, in driver.Instance, conns int) (*server, error) {
	return startServerWith(dir, name, in, conns, nil)
}

// startServerWith is startServer with extra driver options (an access
// policy, an audit observer) applied on top of the measuring observer.
func startServerWith(dir, name string, in driver.Instance, conns int, extra func(*driver.Options)) (*server, error) {
	s := &server{name: name, sock: filepath.Join(dir, name+".sock"), served: make(chan error, 1)}
	o := driver.Options{
		Instances: []driver.Instance{in},
		Timeout:   driver.DefaultTimeout,
		// Stands in for the binary's log observer, which logs
		// successes at debug level only, i.e. not at all by default.
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
		},
	}
	if extra != nil {
		extra(&o)
	}
	d, err := driver.New(o)
	if err != nil {
		return nil, err
	}
	s.d = d
	_ = os.Remove(s.sock)
	if s.l, err = net.Listen("unix", s.sock); err != nil {
		return nil, err
	}
	go func() { s.served <- driver.NewHandler(d).Serve(s.l) }()
	opened := make(chan error, 1)
	d.Warm(func(_ string, err error) { opened <- err })
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
	s.d.Drain(10 * time.Second)
	err := s.d.Close()
	_ = os.Remove(s.sock)
	runtime.GC()
	return err
}

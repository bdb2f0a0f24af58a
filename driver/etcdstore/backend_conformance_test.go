package etcdstore

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/backend/backendtest"
)

// TestBackendConformance: the etcd type passes the suite every backend type
// does, against a real etcd. The suite's stalled-storage check does not
// apply: the backend answers from its replica, not from etcd (a member that
// hangs is TestReplicaStall's).
func TestBackendConformance(t *testing.T) {
	c := sharedCluster(t)
	backendtest.Run(t, backendtest.Harness{
		Type: "etcd",
		Open: func(t *testing.T, seed map[string][]string) (backend.Backend, func(string) backend.Ref) {
			cfg := testConfig(t, c)
			s := initStore(t, cfg)
			for name, vals := range seed {
				for _, v := range vals {
					mustPut(t, s, name, v)
				}
			}
			return openBackendT(t, settingsOf(cfg)), func(name string) backend.Ref { return backend.Ref{Name: name} }
		},
	})
}

// stallProxy forwards TCP connections to one etcd member until stall is
// called; from then on it forwards nothing and answers nothing, like a
// member that hangs. It stops when the test ends.
type stallProxy struct {
	addr    string
	stalled atomic.Bool
	stop    chan struct{}
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	u := strings.TrimPrefix(target, "http://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{addr: ln.Addr().String(), stop: make(chan struct{})}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(cs ...net.Conn) { mu.Lock(); conns = append(conns, cs...); mu.Unlock() }
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", u)
			if err != nil {
				in.Close()
				continue
			}
			track(in, out)
			wg.Go(func() { p.pipe(out, in) })
			wg.Go(func() { p.pipe(in, out) })
		}
	})
	t.Cleanup(func() {
		close(p.stop)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *stallProxy) stall() { p.stalled.Store(true) }

// pipe copies src to dst until either closes; once stalled it holds what
// it read instead of passing it on.
func (p *stallProxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.stalled.Load() {
			<-p.stop
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

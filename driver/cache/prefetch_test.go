package cache

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// fakePrefetcher holds whole documents by address; a request's address is
// its name, and a document "field=value;..." answers a field.
type fakePrefetcher struct {
	mu      sync.Mutex
	docs    map[string]string
	listErr error
}

func (p *fakePrefetcher) List(context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for k := range p.docs {
		out = append(out, k)
	}
	return out, p.listErr
}

func (p *fakePrefetcher) Fetch(_ context.Context, addr string) (backend.Secret, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.docs[addr]
	if !ok {
		return backend.Secret{}, backend.ErrNotFound
	}
	return backend.Secret{Value: []byte(d), Version: 1}, nil
}

func (p *fakePrefetcher) Address(ref backend.Ref) (string, bool) { return ref.Name, ref.Service == "" }

func (p *fakePrefetcher) FromDocument(ref backend.Ref, doc backend.Secret) (backend.Secret, error) {
	for _, kv := range strings.Split(string(doc.Value), ";") {
		if k, v, _ := strings.Cut(kv, "="); k == ref.Field {
			doc.Value = []byte(v)
			return doc, nil
		}
	}
	return backend.Secret{}, backend.ErrNotFound
}

// TestPrefetch: a round saves every listed document once (an unchanged
// one is not written again), forgets the copy of one no longer listed, and
// a request never asked before is answered from its document's copy, stale,
// only when the backend is down; a request that varies never is.
func TestPrefetch(t *testing.T) {
	clk := newClock()
	f := newFake()
	pf := &fakePrefetcher{docs: map[string]string{"db": "user=u;password=p1", "api": "token=t1"}}
	lkg := &countingLKG{LKG: mustLKG(t)}
	o := testOptions(clk)
	o.LKG = lkg
	o.Prefetcher = func() (backend.Prefetcher, bool) { return pf, true }
	c := newCache(t, f, o)
	ctx := context.Background()
	if saved, listed, err := c.Prefetch(ctx); err != nil || saved != 2 || listed != 2 {
		t.Fatalf("first round: %d saved of %d, %v", saved, listed, err)
	}
	if saved, _, err := c.Prefetch(ctx); err != nil || saved != 0 {
		t.Fatalf("unchanged round: %d saved, %v; want 0", saved, err)
	}
	f.down.Store(true)
	r := backend.Ref{Name: "db", Field: "password", Reuse: true}
	wantValue(t, get(t, c, r), "p1", true)
	if c.Stats().PrefetchStale != 1 {
		t.Fatalf("stats: %+v", c.Stats())
	}
	getErr(t, c, backend.Ref{Name: "api", Field: "token", Service: "web", Reuse: true}, backend.ErrUnavailable)

	pf.mu.Lock()
	delete(pf.docs, "api")
	pf.mu.Unlock()
	if _, _, err := c.Prefetch(ctx); err != nil || lkg.forgets.Load() != 1 {
		t.Fatalf("after a removal: %v, %d forgets", err, lkg.forgets.Load())
	}
	getErr(t, c, backend.Ref{Name: "api", Field: "token", Reuse: true}, backend.ErrUnavailable)

	pf.listErr = errors.New("permission denied")
	if _, _, err := c.Prefetch(ctx); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("refused list: %v", err)
	}
}

// TestPrefetchForgetsCopiesOfAnEarlierRun: a document saved before a
// restart and deleted while the plugin was down loses its copy at the
// first round after the restart, so an outage does not serve it (a
// revoked credential); before, only copies saved by the same run were
// forgotten, and the old one was served up to MaxStale.
func TestPrefetchForgetsCopiesOfAnEarlierRun(t *testing.T) {
	clk := newClock()
	lkg := mustLKG(t)
	pf := &fakePrefetcher{docs: map[string]string{"db": "password=p1", "api": "token=t1"}}
	o := testOptions(clk)
	o.LKG = lkg
	o.Prefetcher = func() (backend.Prefetcher, bool) { return pf, true }
	ctx := context.Background()
	first := newCache(t, newFake(), o)
	if saved, _, err := first.Prefetch(ctx); err != nil || saved != 2 {
		t.Fatalf("first run: %d saved, %v", saved, err)
	}
	first.Close()

	pf.mu.Lock()
	delete(pf.docs, "api")
	pf.mu.Unlock()
	f := newFake()
	again := newCache(t, f, o)
	if _, listed, err := again.Prefetch(ctx); err != nil || listed != 1 {
		t.Fatalf("after the restart: %d listed, %v", listed, err)
	}
	f.down.Store(true)
	wantValue(t, get(t, again, backend.Ref{Name: "db", Field: "password", Reuse: true}), "p1", true)
	getErr(t, again, backend.Ref{Name: "api", Field: "token", Reuse: true}, backend.ErrUnavailable)
	if n := again.Stats().PrefetchStale; n != 1 {
		t.Fatalf("%d answers from prefetched copies, want 1 (db only)", n)
	}
}

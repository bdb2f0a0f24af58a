package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// How a writer learns that every plugin's copy holds its write.
//
// Each plugin publishes the revision its copy has applied under
// <prefix>.plugins/<id>, on a lease of leaseTTL that it keeps alive: a
// plugin that stops or loses etcd drops out within leaseTTL. After a put
// or rm, [Medium.WaitApplied] waits until every published revision has
// reached the write's; swarmkeep put then answers, so the next GetSecret
// on any of those plugins answers the new state. The watch delivers in
// milliseconds, so the wait is short; a plugin that lags past the bound is
// named. This costs one small etcd write per plugin per change, and
// nothing per request, where checking etcd's revision on every read
// would cost a round trip to a member on the hot path, and stall it
// whenever etcd is slow.
//
// A plugin whose etcd user may not write <prefix>.plugins/ publishes
// nothing; its copy still follows the watch within milliseconds, but no
// writer can wait for it (grant the user readwrite on that key range).
const (
	pluginsKey = ".plugins/"
	leaseTTL   = 10 // seconds
)

// publisher keeps this plugin's applied revision published.
type publisher struct {
	m  *Medium
	id string

	wake  chan struct{}
	mu    sync.Mutex
	lease clientv3.LeaseID
	off   error // set when etcd refused the write for good
}

func newPublisher(m *Medium, id string) *publisher {
	return &publisher{m: m, id: id, wake: make(chan struct{}, 1)}
}

func (p *publisher) key() string { return p.m.prefix + pluginsKey + p.id }

func (p *publisher) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run publishes applied() whenever kicked, and retries a failed write.
func (p *publisher) run(ctx context.Context, applied func() (int64, bool)) {
	var last int64
	retry := time.NewTicker(leaseTTL * time.Second / 3)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-retry.C:
			if p.leaseLost() {
				last = 0
			}
		}
		rev, live := applied()
		if !live || rev == last || p.refused() {
			continue
		}
		if err := p.publish(ctx, rev); err != nil {
			if errors.Is(err, backend.ErrDenied) {
				p.mu.Lock()
				p.off = err
				p.mu.Unlock()
			}
			last = 0
			continue
		}
		last = rev
	}
}

func (p *publisher) refused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.off != nil
}

func (p *publisher) leaseLost() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lease == 0
}

func (p *publisher) publish(ctx context.Context, rev int64) error {
	ctx, cancel := context.WithTimeout(ctx, p.m.dialTimeout)
	defer cancel()
	p.mu.Lock()
	lease := p.lease
	p.mu.Unlock()
	if lease == 0 {
		g, err := p.m.cli.Grant(ctx, leaseTTL)
		if err != nil {
			return p.m.fail(ctx, "grant a lease", err)
		}
		ka, err := p.m.cli.KeepAlive(context.WithoutCancel(ctx), g.ID)
		if err != nil {
			return p.m.fail(ctx, "keep the lease alive", err)
		}
		lease = g.ID
		p.mu.Lock()
		p.lease = lease
		p.mu.Unlock()
		go func() {
			for range ka {
			}
			// Expired or revoked: the next round grants a new one.
			p.mu.Lock()
			if p.lease == lease {
				p.lease = 0
			}
			p.mu.Unlock()
		}()
	}
	if _, err := p.m.cli.Put(ctx, p.key(), strconv.FormatInt(rev, 10), clientv3.WithLease(lease)); err != nil {
		return p.m.fail(ctx, "publish the applied revision", err)
	}
	return nil
}

// withdraw revokes the lease, so writers stop waiting for this plugin.
func (p *publisher) withdraw(d time.Duration) {
	p.mu.Lock()
	lease := p.lease
	p.lease = 0
	p.mu.Unlock()
	if lease == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, _ = p.m.cli.Revoke(ctx, lease)
}

// LastWrite is the etcd revision of this medium's latest write or delete.
func (m *Medium) LastWrite() int64 { return m.lastWrite.Load() }

func (m *Medium) noteWrite(rev int64) {
	for {
		cur := m.lastWrite.Load()
		if rev <= cur || m.lastWrite.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// WaitApplied waits, within ctx, until every plugin that publishes its
// applied revision has reached this medium's latest write. It returns how
// many plugins confirmed, and the ones that had not when ctx ended, each
// as "<id> (at revision N)", sorted.
func (m *Medium) WaitApplied(ctx context.Context) (confirmed int, lagging []string, err error) {
	want := m.LastWrite()
	if want == 0 {
		return 0, nil, nil
	}
	const poll = 10 * time.Millisecond
	for round := 0; ; round++ {
		gctx, cancel := m.opCtx(ctx)
		resp, err := m.cli.Get(gctx, m.prefix+pluginsKey, clientv3.WithPrefix())
		cancel()
		if err != nil {
			if round > 0 && ctx.Err() != nil {
				// The wait ran out during a read: the last round's
				// answer stands.
				sort.Strings(lagging)
				return confirmed, lagging, nil
			}
			return 0, nil, m.fail(ctx, "read the plugins' applied revisions", err)
		}
		confirmed, lagging = 0, nil
		for _, kv := range resp.Kvs {
			rev, _ := strconv.ParseInt(string(kv.Value), 10, 64)
			if rev >= want {
				confirmed++
				continue
			}
			lagging = append(lagging, fmt.Sprintf("%s (at revision %d)", strings.TrimPrefix(string(kv.Key), m.prefix+pluginsKey), rev))
		}
		if len(lagging) == 0 {
			return confirmed, nil, nil
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			sort.Strings(lagging)
			return confirmed, lagging, nil
		case <-t.C:
		}
	}
}

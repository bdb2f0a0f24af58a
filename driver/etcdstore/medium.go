package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// Limits and timings.
const (
	// maxKeyLen matches the file medium: a record prefix and a 255-byte name.
	maxKeyLen = 1024
	// maxSend lets any object the store can produce reach etcd, so that
	// the server's own limit (--max-request-bytes) is the one that
	// applies and its error is the one reported.
	maxSend = 33 << 20
	// defaultPage is how many keys List fetches per request: small enough
	// that a page of long names stays well under a megabyte.
	defaultPage = 500
	// defaultOpTimeout bounds a call whose context has no deadline, so
	// that nothing waits for an unreachable cluster for ever.
	defaultOpTimeout = 10 * time.Second
	// keepAlive is how often an idle connection is probed. etcd refuses
	// pings more frequent than every 5 s.
	keepAlive = 10 * time.Second
	// lockPrefix, under the configured prefix, holds the writer lock.
	lockPrefix = ".lock"
)

// Medium is a [store.Medium] in an etcd v3 cluster: key k is stored as
// etcd key <prefix>k, with the blob (already sealed by the store) as its
// value. A key's Revision is its etcd ModRevision in decimal, which etcd
// never hands out twice. Writes and deletes are transactions comparing
// that revision, so no update is lost when several managers write.
//
// Medium also holds the store-wide writer lock (see [Medium.Lock]).
type Medium struct {
	cli         *clientv3.Client
	endpoints   []string
	prefix      string
	lockPrefix  string
	dialTimeout time.Duration
	pageSize    int64
	auth        *tokenAuth // nil without a username

	lastErr   atomic.Pointer[string] // see noteTransport
	certAsked atomic.Bool            // see noClientCert
	closed    atomic.Bool
	lastWrite atomic.Int64 // see LastWrite
	// lastResolve is the revision of resolve's latest read, for a delete
	// whose own revision was lost.
	lastResolve atomic.Int64

	// sem serialises this process's writers; it guards sess. The etcd
	// mutex has one key per session, so two goroutines sharing a session
	// must never compete for it.
	sem  chan struct{}
	sess *concurrency.Session
}

var _ store.Medium = (*Medium)(nil)

// NewMedium connects to the cluster c names. Connecting does not wait
// for a member; with a username it logs in, which does (within ctx).
// The key source settings are not used here.
func NewMedium(ctx context.Context, c Config) (*Medium, error) {
	if len(c.Endpoints) == 0 {
		return nil, fmt.Errorf("setting %q is required", SettingEndpoints)
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		return nil, fmt.Errorf("setting %q: %q must end with '/'", SettingPrefix, c.Prefix)
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	tc, err := tlsConfig(c)
	if err != nil {
		return nil, err
	}
	m := &Medium{
		endpoints:   c.Endpoints,
		prefix:      c.Prefix,
		lockPrefix:  c.Prefix + lockPrefix,
		dialTimeout: c.DialTimeout,
		pageSize:    defaultPage,
		sem:         make(chan struct{}, 1),
	}
	if tc != nil && tc.GetClientCertificate == nil {
		tc.GetClientCertificate = m.noClientCert
	}
	opts := []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(m.unary),
		// Reconnect to a member that came back within seconds, not the
		// two minutes gRPC's default backoff reaches.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: c.DialTimeout,
		}),
	}
	if c.Username != "" {
		// Check the file now, so a wrong path fails at start, clearly.
		if _, err := readPassword(c.PasswordFile); err != nil {
			return nil, err
		}
		m.auth = newTokenAuth(c)
		opts = append(opts, grpc.WithPerRPCCredentials(m.auth))
	}
	m.cli, err = clientv3.New(clientv3.Config{
		Endpoints:            c.Endpoints,
		TLS:                  tc,
		DialTimeout:          c.DialTimeout,
		DialKeepAliveTime:    keepAlive,
		DialKeepAliveTimeout: c.DialTimeout,
		MaxCallSendMsgSize:   maxSend,
		DialOptions:          opts,
		// The plugin never logs; the client would, to stderr.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	if m.auth != nil {
		m.auth.cli = m.cli
		lctx, cancel := m.opCtx(ctx)
		defer cancel()
		if err := m.auth.login(lctx, 0); err != nil {
			err = m.fail(lctx, "etcd login as "+strconv.Quote(c.Username), err)
			if !c.loginLater || !errors.Is(err, backend.ErrUnavailable) {
				m.cli.Close()
				return nil, err
			}
			// etcd is down: the first call that etcd answers without a
			// token logs in (see unary), and meanwhile a replica saved
			// on disk answers.
		}
	}
	return m, nil
}

// String names the cluster and prefix, for messages ("no store at ...").
func (m *Medium) String() string {
	return "etcd " + strings.Join(m.endpoints, ",") + " prefix " + m.prefix
}

// opCtx bounds a call whose context has no deadline.
func (m *Medium) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultOpTimeout)
}

// checkKey refuses keys the file medium would refuse, and the lock's
// namespace, which only Lock may touch.
func checkKey(key string) error {
	if len(key) == 0 || len(key) > maxKeyLen {
		return invalidKey(key, fmt.Sprintf("has length %d", len(key)))
	}
	if strings.HasPrefix(key, lockPrefix) {
		return invalidKey(key, "is reserved for the writer lock")
	}
	if strings.HasPrefix(key, pluginsKey) {
		return invalidKey(key, "is reserved for the plugins' applied revisions")
	}
	return nil
}

func revision(modRev int64) store.Revision { return store.Revision(strconv.FormatInt(modRev, 10)) }

// Stat is a keys-only range request: one round trip, no value.
func (m *Medium) Stat(ctx context.Context, key string) (store.Revision, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	ctx, cancel := m.opCtx(ctx)
	defer cancel()
	resp, err := m.cli.Get(ctx, m.prefix+key, clientv3.WithKeysOnly())
	if err != nil {
		return "", m.fail(ctx, "stat "+key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", notFound(key)
	}
	return revision(resp.Kvs[0].ModRevision), nil
}

// Read returns the value and the revision it was read at, from one
// response, so the pair is consistent.
func (m *Medium) Read(ctx context.Context, key string) ([]byte, store.Revision, error) {
	if err := checkKey(key); err != nil {
		return nil, "", err
	}
	ctx, cancel := m.opCtx(ctx)
	defer cancel()
	resp, err := m.cli.Get(ctx, m.prefix+key)
	if err != nil {
		return nil, "", m.fail(ctx, "read "+key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, "", notFound(key)
	}
	kv := resp.Kvs[0]
	return kv.Value, revision(kv.ModRevision), nil
}

// List walks the keys under prefix in pages of keys only, each request
// starting just after the last key seen, so memory and response sizes
// stay bounded however many records there are. fn runs between requests;
// keys created or removed meanwhile may or may not be seen, which the
// store tolerates.
func (m *Medium) List(ctx context.Context, prefix string, fn func(key string) error) error {
	start := m.prefix + prefix
	end := clientv3.GetPrefixRangeEnd(start)
	for from := start; ; {
		pctx, cancel := m.opCtx(ctx)
		resp, err := m.cli.Get(pctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(m.pageSize))
		if err != nil {
			err = m.fail(pctx, "list", err)
			cancel()
			return err
		}
		cancel()
		for _, kv := range resp.Kvs {
			key := strings.TrimPrefix(string(kv.Key), m.prefix)
			if strings.HasPrefix(key, lockPrefix) || strings.HasPrefix(key, pluginsKey) {
				continue
			}
			if err := fn(key); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Close releases the writer lock's session and the connections. It waits
// (up to the dial timeout) for a write in progress in this process.
func (m *Medium) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	select {
	case m.sem <- struct{}{}:
		m.dropSession()
		<-m.sem
	case <-time.After(m.dialTimeout):
		// A writer is stuck on an unreachable cluster; closing the client
		// below ends its calls, and the lease expires on its own.
	}
	if err := m.cli.Close(); err != nil && !isCanceled(err) {
		return fmt.Errorf("close etcd client: %w", err)
	}
	return nil
}

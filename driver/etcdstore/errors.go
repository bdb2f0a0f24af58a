package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

const authenticateMethod = "/etcdserverpb.Auth/Authenticate"

// unary sits under the etcd client's own retrying interceptor, so it sees
// every attempt. It does three things:
//
//   - It makes calls fail at once when no member can be reached, instead
//     of waiting for one until the caller's deadline (the etcd client
//     waits by default, then retries reads for seconds). The client
//     still retries on another member when one fails, and a member that
//     is merely connecting is still waited for. The swarm leader is
//     waiting on a task while we wait, and the driver would rather
//     answer from its cache.
//   - It logs in again when etcd rejects the token (see tokenAuth).
//   - It keeps the last transport error (connection refused, TLS
//     verification failed), because the client replaces it with a bare
//     "context deadline exceeded" once the deadline passes.
func (m *Medium) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	opts = append(opts[:len(opts):len(opts)], grpc.WaitForReady(false)) // a copy: the caller reuses opts
	var seen uint64
	if m.auth != nil {
		seen = m.auth.gen.Load()
	}
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err != nil && m.auth != nil && method != authenticateMethod && staleToken(err) {
		if lerr := m.auth.login(ctx, seen); lerr != nil {
			return lerr
		}
		err = invoker(ctx, method, req, reply, cc, opts...)
		if staleToken(err) {
			// Rejected again with a token we just got (another rotation
			// under way). Do not return the token error itself: the etcd
			// client would retry it a hundred times.
			err = status.Error(codes.Unauthenticated, "etcd rejected a fresh login token: "+rpctypes.ErrorDesc(err))
		}
	}
	m.noteTransport(err)
	if status.Code(err) == codes.Unavailable && cc.GetState() == connectivity.TransientFailure {
		// Not one member is reachable (the channel is only in this state
		// when every connection failed): the client's retries, 2.5 s of
		// them, could only fail again. Say so now, in a code it does not
		// retry; a member that comes back is reconnected in the
		// background within seconds.
		err = status.Error(codes.Aborted, "no etcd member is reachable: "+status.Convert(err).Message())
	}
	return err
}

// noteTransport remembers the detail of a failure to reach etcd, and
// forgets it once a call succeeds.
func (m *Medium) noteTransport(err error) {
	if err == nil {
		if m.lastErr.Load() != nil {
			m.lastErr.Store(nil)
		}
		if m.certAsked.Load() {
			m.certAsked.Store(false)
		}
		return
	}
	st, ok := status.FromError(err)
	if !ok || (st.Code() != codes.Unavailable && st.Code() != codes.DeadlineExceeded) {
		return
	}
	msg := st.Message()
	if msg == context.DeadlineExceeded.Error() || msg == context.Canceled.Error() {
		return // says nothing the caller does not know
	}
	m.lastErr.Store(&msg)
}

// fail turns an error from the etcd client into one wrapping the driver
// sentinel that tells the operator what to fix. etcd's messages never
// hold a value, so they are kept as the detail.
func (m *Medium) fail(ctx context.Context, op string, err error) error {
	e := plain(rpctypes.Error(err))
	switch {
	case errors.Is(e, backend.ErrDenied) || errors.Is(e, backend.ErrUnavailable):
		return fmt.Errorf("%s: %w", op, e) // already classified (password file)
	case errors.Is(e, rpctypes.ErrUserEmpty) && m.auth == nil:
		return fmt.Errorf("%s: %w: etcd requires a user (set %s and %s)", op, backend.ErrDenied, SettingUsername, SettingPasswordFile)
	case denied(e):
		return fmt.Errorf("%s: %w: %w", op, backend.ErrDenied, e)
	case tooLarge(e):
		return fmt.Errorf("%s: %w: the record is larger than etcd accepts (its --max-request-bytes, 1.5 MiB by default): %w",
			op, backend.ErrInvalidRef, e)
	}
	var detail string
	if last := m.lastErr.Load(); last != nil && (ctx.Err() != nil || errors.Is(e, context.DeadlineExceeded) ||
		errors.Is(e, context.Canceled)) {
		detail = " (last error: " + *last + ")"
	}
	if m.certAsked.Load() {
		detail += fmt.Sprintf(" (the etcd member asked for a client certificate, and settings %q and %q are not set)",
			SettingTLSCert, SettingTLSKey)
	}
	return fmt.Errorf("%s: %w: %w%s", op, backend.ErrUnavailable, e, detail)
}

// noClientCert is the client certificate callback when none is
// configured: it sends none, as Go would, but remembers that the member
// asked. With TLS 1.3 the member's refusal only shows as a broken
// connection, so this is the one clear sign of what is missing.
func (m *Medium) noClientCert(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	m.certAsked.Store(true)
	return &tls.Certificate{}, nil
}

// denied: etcd refused who we are or what we may touch. A rejected token
// is only reported once logging in again did not help.
func denied(e error) bool {
	for _, d := range []error{rpctypes.ErrPermissionDenied, rpctypes.ErrAuthFailed, rpctypes.ErrInvalidAuthToken,
		rpctypes.ErrAuthOldRevision, rpctypes.ErrUserEmpty, rpctypes.ErrUserNotFound,
		rpctypes.ErrRoleNotGranted, rpctypes.ErrPermissionNotGranted} {
		if errors.Is(e, d) {
			return true
		}
	}
	c := status.Code(e)
	return c == codes.PermissionDenied || c == codes.Unauthenticated
}

// tooLarge: etcd's request limit, or the client's message limit.
func tooLarge(e error) bool {
	if errors.Is(e, rpctypes.ErrRequestTooLarge) {
		return true
	}
	return status.Code(e) == codes.ResourceExhausted && !errors.Is(e, rpctypes.ErrNoSpace) &&
		!errors.Is(e, rpctypes.ErrTooManyRequests)
}

// ambiguous reports whether a failed mutation may have been applied: the
// request may have reached etcd before the connection or the leader was
// lost. Rejections that etcd decided on are not ambiguous.
func ambiguous(err error) bool {
	if err == nil {
		return false
	}
	var ee rpctypes.EtcdError
	if errors.As(rpctypes.Error(err), &ee) {
		return ee.Code() == codes.Unavailable
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown, codes.Internal, codes.Aborted:
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// plain drops gRPC's "rpc error: code = X desc =" from a status error's
// text, keeping the error itself for errors.Is and status.Code.
func plain(err error) error {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return err // its text is already etcd's message
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK {
		return plainStatus{err, st.Message()}
	}
	return err
}

type plainStatus struct {
	err error
	msg string
}

func (p plainStatus) Error() string { return p.msg }
func (p plainStatus) Unwrap() error { return p.err }

// GRPCStatus keeps status.Code and status.FromError working through us.
func (p plainStatus) GRPCStatus() *status.Status { return status.Convert(p.err) }

// unreachable: the error unary makes when no member can be reached.
func unreachable(err error) bool { return status.Code(err) == codes.Aborted }

func notFound(key string) error { return fmt.Errorf("%s: %w", key, backend.ErrNotFound) }

func conflict(op, key string) error { return fmt.Errorf("%s %s: %w", op, key, store.ErrConflict) }

func invalidKey(key string, why string) error {
	return fmt.Errorf("%w: medium key %q %s", backend.ErrInvalidRef, key, why)
}

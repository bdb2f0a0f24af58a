package vault

import (
	"context"
	"errors"
	"fmt"

	api "github.com/openbao/openbao/api/v2"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Metadata reads, for the agent's auto-rollout, only what tells that a
// secret changed: the KV v2 metadata's current_version. No value is read or
// held, so a token that may read {mount}/metadata/... and nothing under
// {mount}/data/... is enough. The session, renewal and error text are the
// backend's own.

// MetadataPath is the KV path (relative to the mount) a request for ref
// reads, so that callers can read the metadata of each path once.
func (b *kvBackend) MetadataPath(ref backend.Ref) (string, error) {
	path, _, err := b.resolve(ref)
	return path, err
}

// LatestVersion returns the current_version of the KV v2 secret at path,
// from {mount}/metadata/{path}. A path with no secret is ErrNotFound. KV
// version 1 keeps no versions: that is errors.ErrUnsupported, answered
// without asking the server.
func (b *kvBackend) LatestVersion(ctx context.Context, path string) (uint64, error) {
	select {
	case <-b.closed:
		return 0, fmt.Errorf("%w: the backend is closed", backend.ErrUnavailable)
	default:
	}
	if b.cfg.kvVersion == 1 {
		return 0, fmt.Errorf("%w: mount %s is KV version 1 (setting %s=1), which keeps no versions to compare",
			errors.ErrUnsupported, b.mountName(b.cfg.mount), setKVVersion)
	}
	if err := checkPath(path); err != nil {
		return 0, fmt.Errorf("%w: %w", backend.ErrInvalidRef, err)
	}
	s, err := b.auth.current(ctx)
	if err != nil {
		return 0, err
	}
	v, err := b.readMetadata(ctx, s, path)
	if statusOf(err) == 403 {
		// As Get: a revoked or expired token gets one login and one retry.
		next, rerr := b.auth.reauth(ctx, s)
		switch {
		case rerr != nil:
			return 0, fmt.Errorf("%w; logging in again failed: %w", err, rerr)
		case next != nil:
			s = next
			v, err = b.readMetadata(ctx, s, path)
		}
		if statusOf(err) == 403 {
			err = b.explainDenied(ctx, s, err)
		}
	}
	var ae *absentError
	if errors.As(err, &ae) {
		err = b.explainAbsent(ctx, s, err, ae.where)
	}
	return v, err
}

func (b *kvBackend) readMetadata(ctx context.Context, s *session, path string) (uint64, error) {
	where := b.cfg.mount + "/metadata/" + path
	md, err := s.client.KVv2(b.cfg.mount).GetMetadata(ctx, path)
	switch {
	case errors.Is(err, api.ErrSecretNotFound):
		return 0, absent(where, "no secret at %s", where)
	case err != nil:
		return 0, readError(ctx, "read "+where, err, s.token)
	case md.CurrentVersion <= 0:
		return 0, absent(where, "no version at %s", where)
	}
	return uint64(md.CurrentVersion), nil
}

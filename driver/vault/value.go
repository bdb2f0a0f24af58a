package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"

	api "github.com/openbao/openbao/api/v2"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// document is one KV read: the data map and what the server said of it.
type document struct {
	data   map[string]any
	where  string         // the API path read, for error text
	secret backend.Secret // Version and Created filled in
}

// readKV reads path at version (0: latest) with s's token.
func (b *kvBackend) readKV(ctx context.Context, s *session, path string, version uint64) (document, error) {
	if b.cfg.kvVersion == 1 {
		return b.readV1(ctx, s, path)
	}
	return b.readV2(ctx, s, path, version)
}

// readV2 reads {mount}/data/{path}[?version=N]. The api client answers a
// deleted or destroyed version with no error and nil Data (the server sends
// a 404 that still carries the metadata); that is not found here too.
func (b *kvBackend) readV2(ctx context.Context, s *session, path string, version uint64) (document, error) {
	kv := s.client.KVv2(b.cfg.mount)
	where := b.cfg.mount + "/data/" + path
	var ks *api.KVSecret
	var err error
	if version == 0 {
		ks, err = kv.Get(ctx, path)
	} else {
		if version > math.MaxInt32 {
			return document{}, fmt.Errorf("%w: version %d is out of range", backend.ErrInvalidRef, version)
		}
		ks, err = kv.GetVersion(ctx, path, int(version))
	}
	switch {
	case errors.Is(err, api.ErrSecretNotFound) && version == 0:
		return document{}, absent(where, "no secret at %s", where)
	case errors.Is(err, api.ErrSecretNotFound):
		return document{}, absent(where, "no version %d at %s", version, where)
	case err != nil:
		return document{}, readError(ctx, "read "+where, err, s.token)
	}
	md := ks.VersionMetadata
	if md == nil {
		md = &api.KVVersionMetadata{}
	}
	if ks.Data == nil && md.Version == 0 {
		// A 404 with warnings and no metadata: not a deleted version but
		// a path KV v2 does not serve (a mount setting inside the mount).
		return document{}, absent(where, "no secret at %s", where)
	}
	if ks.Data == nil {
		state := "deleted"
		if md.Destroyed {
			state = "destroyed"
		}
		return document{}, fmt.Errorf("%w: version %d at %s was %s", backend.ErrNotFound, md.Version, where, state)
	}
	doc := document{data: ks.Data, where: where}
	doc.secret.Version, doc.secret.Created = uint64(max(md.Version, 0)), md.CreatedTime
	return doc, nil
}

// readV1 reads {mount}/{path}. KV v1 has no versions, so none is reported.
func (b *kvBackend) readV1(ctx context.Context, s *session, path string) (document, error) {
	where := b.cfg.mount + "/" + path
	ks, err := s.client.KVv1(b.cfg.mount).Get(ctx, path)
	switch {
	case errors.Is(err, api.ErrSecretNotFound):
		return document{}, absent(where, "no secret at %s", where)
	case err != nil:
		return document{}, readError(ctx, "read "+where, err, s.token)
	}
	if ks.Data == nil {
		// A KV v2 mount answers a v1 path with a 404 and a warning
		// ("Invalid path for a versioned K/V secrets engine. See the API
		// docs..."), which the api client passes on as a secret without
		// data. Every read fails the same way: a settings error.
		if ks.Raw != nil && len(ks.Raw.Warnings) > 0 {
			said, _, _ := strings.Cut(clean(ks.Raw.Warnings[0], nil), ". ")
			return document{}, settingsError(http.StatusNotFound, fmt.Sprintf("read %s: %s; mount %s is KV version 2 (set %s=2)",
				where, said, b.mountName(b.cfg.mount), setKVVersion))
		}
		return document{}, absent(where, "no secret at %s", where)
	}
	return document{data: ks.Data, where: where}, nil
}

// render turns a document into the value: the whole data map as compact
// JSON with sorted keys, or one field. The bytes must be the same on every
// read of the same version, since Swarm compares a reusable secret's
// copies; encoding/json sorts map keys, and numbers stay as the server
// sent them (json.Number).
func render(doc document, field string) ([]byte, error) {
	if field == "" {
		return encode(doc.data)
	}
	v, ok := doc.data[field]
	if !ok {
		return nil, fmt.Errorf("%w: no field %q in %s (fields: %s)", backend.ErrNotFound, field, doc.where, fieldNames(doc.data))
	}
	if s, ok := v.(string); ok {
		return []byte(s), nil
	}
	return encode(v)
}

// encode is json.Marshal without HTML escaping: a value holding '<' or '&'
// is delivered as written, not as \u003c.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("%w: the value cannot be written as JSON", backend.ErrCorrupt)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// fieldNames lists a document's field names (never their values), sorted
// and cut short, to help fix a swarmkeep.field label.
func fieldNames(data map[string]any) string {
	if len(data) == 0 {
		return "none"
	}
	names := make([]string, 0, len(data))
	for k := range data {
		names = append(names, fmt.Sprintf("%q", k))
	}
	sort.Strings(names)
	out := ""
	for i, n := range names {
		if len(out)+len(n) > 160 {
			return out + fmt.Sprintf(" and %d more", len(names)-i)
		}
		if out != "" {
			out += ", "
		}
		out += n
	}
	return strings.TrimSpace(out)
}

package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// How a follower learns which names to prefetch.
//
// Only the swarm leader's plugin is asked for secrets, so only it would hold
// last-known-good copies; after a failover during a Vault outage the new
// leader would have none. Every plugin therefore lists the KV metadata under
// prefetch_path (default: path_template's fixed leading folder, so
// "apps/{{.Name}}" lists apps/) and reads each secret whole, at its latest
// version, into the cache's encrypted last-known-good store (see
// cache.Prefetcher). A request during an outage that has no copy of its own
// is answered from the copy of the document its path resolves to, with its
// field taken out. Listing the metadata, rather than remembering the names
// one plugin served, finds names no plugin was asked for yet and needs no
// channel between plugins; it needs the list capability on
// <mount>/metadata/<prefetch_path>* (KV v2) or <mount>/<prefetch_path>* (KV
// v1), which the README's policy grants. A template that reads .Service
// resolves per requester: such answers vary and are never prefetched.

// maxPrefetch bounds one listing, so a mount far larger than a swarm's
// secrets cannot fill the plugin's disk.
const maxPrefetch = 10000

var _ backend.Prefetcher = (*kvBackend)(nil)

// literalPrefix is the folder a template's output always starts with: the
// text before its first action, up to its last '/'.
func (p *pathTemplate) literalPrefix() string {
	src := p.t.Root.String()
	if i := strings.Index(src, "{{"); i >= 0 {
		src = src[:i]
	}
	if i := strings.LastIndex(src, "/"); i >= 0 {
		return src[:i+1]
	}
	return ""
}

// List returns the KV paths of every secret under prefetch_path, walking
// its folders.
func (b *kvBackend) List(ctx context.Context) ([]string, error) {
	s, err := b.auth.current(ctx)
	if err != nil {
		return nil, err
	}
	base := b.cfg.mount + "/"
	if b.cfg.kvVersion == 2 {
		base += "metadata/"
	}
	var out []string
	todo := []string{b.cfg.prefetchPath}
	for len(todo) > 0 && len(out) < maxPrefetch {
		dir := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if dir != "" && !strings.HasSuffix(dir, "/") {
			dir += "/"
		}
		where := base + dir
		sec, err := s.client.Logical().ListWithContext(ctx, where)
		if err != nil {
			return out, readError(ctx, "list "+where, err, s.token)
		}
		if sec == nil || sec.Data == nil {
			continue // an empty folder: LIST answers 404
		}
		keys, _ := sec.Data["keys"].([]any)
		for _, k := range keys {
			name, _ := k.(string)
			switch {
			case name == "":
			case strings.HasSuffix(name, "/"):
				todo = append(todo, dir+name)
			default:
				out = append(out, dir+name)
			}
		}
	}
	return out, nil
}

// Fetch reads the secret at KV path whole, at its latest version.
func (b *kvBackend) Fetch(ctx context.Context, path string) (backend.Secret, error) {
	return b.Get(ctx, backend.Ref{Path: path, Reuse: true})
}

// Address is the KV path ref resolves to, when a copy of that document can
// answer it: not when the path depends on the requester.
func (b *kvBackend) Address(ref backend.Ref) (string, bool) {
	path, varies, err := b.resolve(ref)
	if err != nil || varies {
		return "", false
	}
	return path, true
}

// FromDocument answers ref from doc, a copy of its whole document as Fetch
// read it: the version must be the one ref pins (or any, for the latest),
// and ref's field is taken out as a read would.
func (b *kvBackend) FromDocument(ref backend.Ref, doc backend.Secret) (backend.Secret, error) {
	if ref.Version != 0 && ref.Version != doc.Version {
		return backend.Secret{}, fmt.Errorf("%w: the prefetched copy is version %d, not %d", backend.ErrNotFound, doc.Version, ref.Version)
	}
	dec := json.NewDecoder(bytes.NewReader(doc.Value))
	dec.UseNumber() // numbers as the server sent them, as a read keeps them
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		return backend.Secret{}, fmt.Errorf("%w: the prefetched copy is not a KV document", backend.ErrCorrupt)
	}
	path, _ := b.Address(ref)
	value, err := render(document{data: data, where: b.cfg.mount + " " + path}, ref.Field)
	if err != nil {
		return backend.Secret{}, err
	}
	out := doc
	out.Value = value
	return out, nil
}

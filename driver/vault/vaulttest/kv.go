package vaulttest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// v1LeaseSeconds is the lease_duration a KV v1 read reports: Vault's default
// lease TTL, 768h.
const v1LeaseSeconds = 2764800

// errVersionedPath is KV v2's answer to a request without a data/ or
// metadata/ segment (a KV v1 style path): a 404 with this warning, naming
// the CLI command for the operation (pathInvalid in the kv plugin). OpenBao
// says "OpenBao CLI" and "bao kv"; the fake uses Vault's wording.
const errVersionedPath = "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv %s' for this operation."

type kvMount struct {
	version int
	// options are the mount's options as sys/internal/ui/mounts reports
	// them: {"version":"2"} for a v2 mount, nil for a v1 mount made without
	// options (as "vault secrets enable kv" makes it).
	options  map[string]string
	accessor string
	v1       map[string][]byte
	v2       map[string]*kvSecret
}

type kvSecret struct {
	current  int
	versions map[int]*kvVersion
}

type kvVersion struct {
	data      []byte // JSON, as Vault stores it
	created   time.Time
	deleted   time.Time
	destroyed bool
}

func newKVMount(version int, options map[string]string) *kvMount {
	if version == 2 && options["version"] != "2" {
		options = map[string]string{"version": "2"}
	}
	return &kvMount{version: version, options: options, accessor: "kv_" + newID()[:8],
		v1: map[string][]byte{}, v2: map[string]*kvSecret{}}
}

func mountKey(ns, mount string) string { return ns + "\x00" + strings.Trim(mount, "/") }

// EnableKV mounts a KV engine of version 1 or 2 at mount in namespace,
// replacing any mount there. A version 1 mount has no options, as one made
// with "vault secrets enable kv".
func (s *Server) EnableKV(namespace, mount string, version int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mounts[mountKey(cleanNamespace(namespace), mount)] = newKVMount(version, nil)
}

// CreateNamespace creates namespace ns ("a" or "a/b").
func (s *Server) CreateNamespace(ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.namespaces[cleanNamespace(ns)] = true
}

// PutKV2 writes a new version of a KV v2 secret and returns its number.
func (s *Server) PutKV2(namespace, mount, path string, data map[string]any) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mount(namespace, mount, 2)
	v, _ := m.put(path, data, s.now())
	return v
}

// PutKV1 writes a KV v1 secret.
func (s *Server) PutKV1(namespace, mount, path string, data map[string]any) {
	buf, err := json.Marshal(data)
	if err != nil {
		panic("vaulttest: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mount(namespace, mount, 1).v1[path] = buf
}

// DeleteKV2 soft-deletes versions of a KV v2 secret (the latest if none).
func (s *Server) DeleteKV2(namespace, mount, path string, versions ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mount(namespace, mount, 2).mark(path, versions, s.now(), false)
}

// DestroyKV2 destroys versions of a KV v2 secret: their data is gone.
func (s *Server) DestroyKV2(namespace, mount, path string, versions ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mount(namespace, mount, 2).mark(path, versions, s.now(), true)
}

func (s *Server) mount(namespace, mount string, version int) *kvMount {
	m := s.mounts[mountKey(cleanNamespace(namespace), mount)]
	if m == nil || m.version != version {
		panic(fmt.Sprintf("vaulttest: no KV v%d mount %q in namespace %q", version, mount, namespace))
	}
	return m
}

func (m *kvMount) put(path string, data map[string]any, now time.Time) (int, error) {
	buf, err := json.Marshal(data)
	if err != nil {
		return 0, err
	}
	sec := m.v2[path]
	if sec == nil {
		sec = &kvSecret{versions: map[int]*kvVersion{}}
		m.v2[path] = sec
	}
	sec.current++
	sec.versions[sec.current] = &kvVersion{data: buf, created: now}
	return sec.current, nil
}

func (m *kvMount) mark(path string, versions []int, now time.Time, destroy bool) {
	sec := m.v2[path]
	if sec == nil {
		return
	}
	if len(versions) == 0 {
		versions = []int{sec.current}
	}
	for _, n := range versions {
		v := sec.versions[n]
		switch {
		case v == nil || v.destroyed:
		case destroy:
			v.destroyed, v.data = true, nil
		case v.deleted.IsZero():
			v.deleted = now
		}
	}
}

// serveKV checks the token's ACL on the full path first, as Vault does, so a
// limited token gets 403 even for a path that is not mounted.
func (s *Server) serveKV(w http.ResponseWriter, q *request) {
	if s.authorize(w, q, q.path) == nil {
		return
	}
	segs := strings.Split(q.path, "/")
	for i := len(segs); i > 0; i-- {
		if m := s.mounts[mountKey(q.ns, strings.Join(segs[:i], "/"))]; m != nil && s.namespaces[q.ns] {
			rest := strings.Join(segs[i:], "/")
			if m.version == 1 {
				s.kv1(w, q, m, rest)
			} else {
				s.kv2(w, q, m, rest)
			}
			return
		}
	}
	writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", q.path))
}

// kv1 mirrors the passthrough backend: a read decodes with UseNumber, so
// numbers keep their literal form; a write without fields is refused.
func (s *Server) kv1(w http.ResponseWriter, q *request, m *kvMount, p string) {
	switch q.method {
	case methodList:
		writeList(w, p, func(yield func(string)) {
			for k := range m.v1 {
				yield(k)
			}
		})
	case http.MethodGet:
		buf, ok := m.v1[p]
		if !ok {
			writeErrors(w, http.StatusNotFound)
			return
		}
		dec := json.NewDecoder(strings.NewReader(string(buf)))
		dec.UseNumber()
		var data map[string]any
		dec.Decode(&data) //nolint:errcheck // written by json.Marshal
		writeResponse(w, http.StatusOK, response{Data: data, LeaseDuration: v1LeaseSeconds})
	case http.MethodPut:
		if p == "" {
			writeErrors(w, http.StatusBadRequest, "missing path")
			return
		}
		if len(q.body) == 0 {
			writeErrors(w, http.StatusBadRequest, "missing data fields")
			return
		}
		buf, _ := json.Marshal(q.body)
		m.v1[p] = buf
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		delete(m.v1, p)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) kv2(w http.ResponseWriter, q *request, m *kvMount, rest string) {
	api, p, _ := strings.Cut(rest, "/")
	switch {
	case api == "metadata" && q.method == methodList:
		writeList(w, p, func(yield func(string)) {
			for k := range m.v2 {
				yield(k)
			}
		})
	case p == "" && (api == "data" || api == "metadata" || api == "delete" || api == "undelete" || api == "destroy"):
		writeResponse(w, http.StatusNotFound, response{Warnings: []string{"Non-listing operations on the root of a K/V v2 mount are not supported."}})
	case api == "data" && q.method == http.MethodGet:
		s.kv2Read(w, q, m, p)
	case api == "data" && q.method == http.MethodPut:
		s.kv2Write(w, q, m, p)
	case api == "data" && q.method == http.MethodDelete:
		m.mark(p, nil, s.now(), false)
		w.WriteHeader(http.StatusNoContent)
	case (api == "delete" || api == "destroy") && q.method == http.MethodPut:
		raw, _ := q.body["versions"].([]any)
		if len(raw) == 0 {
			writeErrors(w, http.StatusBadRequest, "no version number provided")
			return
		}
		var versions []int
		for _, v := range raw {
			if n, err := strconv.Atoi(fmt.Sprint(v)); err == nil {
				versions = append(versions, n)
			}
		}
		m.mark(p, versions, s.now(), api == "destroy")
		w.WriteHeader(http.StatusNoContent)
	case api == "metadata" && q.method == http.MethodGet:
		s.kv2Metadata(w, m, p)
	case api == "metadata" && q.method == http.MethodDelete:
		delete(m.v2, p) // every version and the metadata
		w.WriteHeader(http.StatusNoContent)
	case api == "metadata" || api == "undelete" || api == "config" || api == "subkeys" || api == "delete" || api == "destroy":
		writeErrors(w, http.StatusMethodNotAllowed, "vaulttest: "+q.method+" "+q.path+" is not served")
	default:
		cmd := map[string]string{http.MethodGet: "get", http.MethodPut: "put", http.MethodDelete: "delete"}[q.method]
		writeResponse(w, http.StatusNotFound, response{Warnings: []string{fmt.Sprintf(errVersionedPath, cmd)}})
	}
}

// kv2Read mirrors pathDataRead: no secret or no such version is a plain 404;
// a deleted (deletion_time passed) or destroyed version is a 404 that still
// carries the metadata, with "data": null.
func (s *Server) kv2Read(w http.ResponseWriter, q *request, m *kvMount, p string) {
	sec := m.v2[p]
	if sec == nil {
		writeErrors(w, http.StatusNotFound)
		return
	}
	n := sec.current
	if raw := q.query.Get("version"); raw != "" {
		v, err := strconv.Atoi(raw)
		if err != nil {
			writeErrors(w, http.StatusBadRequest, fmt.Sprintf("error converting input %s for field %q: %v", raw, "version", err))
			return
		}
		if v > 0 {
			n = v
		}
	}
	v := sec.versions[n]
	if v == nil {
		writeErrors(w, http.StatusNotFound)
		return
	}
	now := s.now()
	meta := map[string]any{"version": n, "created_time": stamp(v.created), "deletion_time": stamp(v.deleted),
		"destroyed": v.destroyed, "custom_metadata": nil}
	if !v.deleted.IsZero() && v.deleted.Before(now) || v.destroyed {
		writeResponse(w, http.StatusNotFound, response{Data: map[string]any{"data": nil, "metadata": meta}})
		return
	}
	// Vault decodes the stored JSON with plain json.Unmarshal here, so a
	// number comes back as a float64: 1.50 reads as 1.5.
	var data map[string]any
	json.Unmarshal(v.data, &data) //nolint:errcheck // written by json.Marshal
	writeResponse(w, http.StatusOK, response{Data: map[string]any{"data": data, "metadata": meta}})
}

func (s *Server) kv2Write(w http.ResponseWriter, q *request, m *kvMount, p string) {
	if p == "" {
		writeErrors(w, http.StatusBadRequest, "missing path")
		return
	}
	data, ok := q.body["data"].(map[string]any)
	if !ok {
		writeErrors(w, http.StatusBadRequest, "no data provided")
		return
	}
	if opts, _ := q.body["options"].(map[string]any); opts != nil {
		if cas, ok := opts["cas"]; ok {
			cur := 0
			if sec := m.v2[p]; sec != nil {
				cur = sec.current
			}
			if fmt.Sprint(cas) != strconv.Itoa(cur) {
				writeErrors(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
				return
			}
		}
	}
	n, err := m.put(p, data, s.now())
	if err != nil {
		writeErrors(w, http.StatusBadRequest, err.Error())
		return
	}
	v := m.v2[p].versions[n]
	writeResponse(w, http.StatusOK, response{Data: map[string]any{"version": n, "created_time": stamp(v.created),
		"deletion_time": "", "destroyed": false, "custom_metadata": nil}})
}

// stamp formats a time as Vault's ptypes.TimestampString does; zero is "".
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// serveSys answers the few sys/ endpoints tests need to set a server up
// through the API client, as they would against a real one.
func (s *Server) serveSys(w http.ResponseWriter, q *request) {
	if s.authorize(w, q, q.path) == nil {
		return
	}
	switch p := q.path; {
	case strings.HasPrefix(p, "sys/policies/acl/"):
		s.servePolicy(w, q, strings.TrimPrefix(p, "sys/policies/acl/"))
	case strings.HasPrefix(p, "sys/mounts/") && q.method == http.MethodPut:
		path := strings.Trim(strings.TrimPrefix(p, "sys/mounts/"), "/")
		if s.mounts[mountKey(q.ns, path)] != nil {
			writeErrors(w, http.StatusBadRequest, fmt.Sprintf("path is already in use at %s/", path))
			return
		}
		typ := str(q.body["type"])
		raw, _ := q.body["options"].(map[string]any)
		var opts map[string]string
		for k, v := range raw {
			if opts == nil {
				opts = map[string]string{}
			}
			opts[k] = str(v)
		}
		// Mirrors handleMount: kv-v1 and kv-v2 are kv with the version
		// option set; plain kv keeps the options it was given.
		switch {
		case typ == "kv-v2" || typ == "kv" && opts["version"] == "2":
			s.mounts[mountKey(q.ns, path)] = newKVMount(2, opts)
		case typ == "kv-v1":
			s.mounts[mountKey(q.ns, path)] = newKVMount(1, map[string]string{"version": "1"})
		case typ == "kv":
			s.mounts[mountKey(q.ns, path)] = newKVMount(1, opts)
		default:
			writeErrors(w, http.StatusBadRequest, "vaulttest: only kv mounts are served")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(p, "sys/mounts/") && q.method == http.MethodDelete:
		delete(s.mounts, mountKey(q.ns, strings.Trim(strings.TrimPrefix(p, "sys/mounts/"), "/")))
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(p, "sys/namespaces/") && q.method == http.MethodPut:
		ns := q.ns + strings.Trim(strings.TrimPrefix(p, "sys/namespaces/"), "/") + "/"
		s.namespaces[ns] = true
		writeResponse(w, http.StatusOK, response{Data: map[string]any{"id": newID()[:5], "path": ns, "custom_metadata": map[string]string{}}})
	default:
		writeErrors(w, http.StatusMethodNotAllowed, "vaulttest: "+q.method+" "+p+" is not served")
	}
}

// methodList is Vault's LIST, which the api client sends as GET ?list=true.
const methodList = "LIST"

// writeList answers a LIST of folder dir (empty or ending in '/') over the
// paths each yields, as the KV engines do: the names directly in dir, and
// each subfolder once with a trailing '/', sorted; 404 when there is none.
func writeList(w http.ResponseWriter, dir string, each func(yield func(string))) {
	if dir != "" && !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	seen := map[string]bool{}
	each(func(p string) {
		rest, ok := strings.CutPrefix(p, dir)
		if !ok || rest == "" {
			return
		}
		if i := strings.Index(rest, "/"); i >= 0 {
			rest = rest[:i+1]
		}
		seen[rest] = true
	})
	if len(seen) == 0 {
		writeErrors(w, http.StatusNotFound)
		return
	}
	keys := make([]any, 0, len(seen))
	for _, k := range slices.Sorted(maps.Keys(seen)) {
		keys = append(keys, k)
	}
	writeResponse(w, http.StatusOK, response{Data: map[string]any{"keys": keys}})
}

package vault

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// The tests in this file run against the fake, or a real server when
// SWARMKEEP_VAULT_ADDR is set: they seed through the api client and assert
// only what both must agree on.

func TestGet_KV2WholeDocument(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.put(t, "app/db", map[string]any{
		"user": "app", "password": "p<&>w", "port": 5432, "tls": true,
		// Vault re-reads a KV v2 document with json.Unmarshal, so 1.50
		// comes back as 1.5: the value is what the server answers.
		"ratio": json.Number("1.50"),
		"opts":  map[string]any{"z": "1", "a": []any{"x", 2}},
	})
	b := e.open(t, e.settings())
	want := `{"opts":{"a":["x",2],"z":"1"},"password":"p<&>w","port":5432,"ratio":1.5,"tls":true,"user":"app"}`
	for range 3 { // reusable secrets must answer the same bytes every time
		s, err := get(t, b, backend.Ref{Name: e.path("app/db")})
		if err != nil {
			t.Fatal(err)
		}
		if string(s.Value) != want {
			t.Fatalf("value\n got %s\nwant %s", s.Value, want)
		}
		if s.Version != 1 || s.Varies || time.Since(s.Created) > time.Hour || s.Created.After(time.Now().Add(time.Minute)) {
			t.Fatalf("metadata: version %d varies %v created %v", s.Version, s.Varies, s.Created)
		}
	}
}

func TestGet_KV2Field(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.put(t, "f", map[string]any{"user": "app", "port": 5432, "tls": true, "opts": map[string]any{"b": 1, "a": "x"}, "none": nil})
	b := e.open(t, e.settings())
	for field, want := range map[string]string{
		"user": "app", "port": "5432", "tls": "true", "opts": `{"a":"x","b":1}`, "none": "null",
	} {
		if got := mustGet(t, b, backend.Ref{Name: e.path("f"), Field: field}); got != want {
			t.Errorf("field %s = %q, want %q", field, got, want)
		}
	}
}

func TestGet_MissingFieldAndPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.put(t, "f", map[string]any{"user": "app", "password": "hunter2-value"})
	b := e.open(t, e.settings())

	_, err := get(t, b, backend.Ref{Name: e.path("f"), Field: "pass"})
	if !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("missing field: %v, want ErrNotFound", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, `"pass"`) || !strings.Contains(msg, `"password"`) || !strings.Contains(msg, `"user"`) {
		t.Errorf("error should name the field and the fields there are: %s", msg)
	}
	if strings.Contains(msg, "hunter2-value") {
		t.Errorf("error leaks a value: %s", msg)
	}

	_, err = get(t, b, backend.Ref{Name: e.path("nothing/here")})
	if !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), e.path("nothing/here")) {
		t.Fatalf("missing path: %v, want ErrNotFound naming the path", err)
	}
}

func TestGet_KV2Versions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, v := range []string{"one", "two", "three"} {
		e.put(t, "v", map[string]any{"v": v})
	}
	b := e.open(t, e.settings())
	name := e.path("v")
	for ver, want := range map[uint64]string{0: "three", 1: "one", 2: "two", 3: "three"} {
		s, err := get(t, b, backend.Ref{Name: name, Version: ver, Field: "v"})
		if err != nil {
			t.Fatalf("version %d: %v", ver, err)
		}
		wantVer := ver
		if ver == 0 {
			wantVer = 3
		}
		if string(s.Value) != want || s.Version != wantVer {
			t.Errorf("version %d: got %q (version %d), want %q (version %d)", ver, s.Value, s.Version, want, wantVer)
		}
	}
	if _, err := get(t, b, backend.Ref{Name: name, Version: 9}); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("version 9: %v, want ErrNotFound", err)
	}

	// Soft-delete version 1, delete the latest, destroy version 2.
	kv := e.admin.KVv2(e.mount)
	if err := kv.DeleteVersions(ctxT(t), name, []int{1}); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctxT(t), name); err != nil {
		t.Fatal(err)
	}
	if err := kv.Destroy(ctxT(t), name, []int{2}); err != nil {
		t.Fatal(err)
	}
	for ver, state := range map[uint64]string{1: "deleted", 0: "deleted", 3: "deleted", 2: "destroyed"} {
		_, err := get(t, b, backend.Ref{Name: name, Version: ver})
		if !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), state) {
			t.Errorf("version %d: %v, want ErrNotFound saying %s", ver, err, state)
		}
	}
}

func TestGet_KV1(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mount := e.kvMount(t, e.admin, 1)
	// KV v1 keeps numbers as written (its reads decode with UseNumber).
	if err := e.admin.KVv1(mount).Put(ctxT(t), "app/cfg", map[string]any{"b": "x", "a": json.Number("1.50")}); err != nil {
		t.Fatal(err)
	}
	b := e.open(t, e.settings(setMount, mount, setKVVersion, "1"))
	if got := mustGet(t, b, backend.Ref{Name: "app/cfg"}); got != `{"a":1.50,"b":"x"}` {
		t.Fatalf("whole document %s", got)
	}
	s, err := get(t, b, backend.Ref{Name: "app/cfg", Field: "b"})
	if err != nil || string(s.Value) != "x" || s.Version != 0 {
		t.Fatalf("field: %q version %d %v", s.Value, s.Version, err)
	}
	if _, err := get(t, b, backend.Ref{Name: "app/cfg", Version: 1}); !errors.Is(err, backend.ErrInvalidRef) {
		t.Fatalf("pinned version on KV v1: %v, want ErrInvalidRef", err)
	}
	if _, err := get(t, b, backend.Ref{Name: "app/none"}); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("missing: %v, want ErrNotFound", err)
	}

	// The same mount read as KV v1 when it is v2 says how to fix it.
	v1 := e.open(t, e.settings(setKVVersion, "1"))
	e.put(t, "v2doc", map[string]any{"a": "b"})
	_, err = get(t, v1, backend.Ref{Name: e.path("v2doc")})
	if !errors.Is(err, backend.ErrCannotOpen) || !strings.Contains(err.Error(), "kv_version=2") {
		t.Fatalf("v1 read of a v2 mount: %v, want a settings error saying to set kv_version=2", err)
	}
}

func TestGet_Namespace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ns := e.namespace(t)
	nsAdmin := e.admin.WithNamespace(ns)
	mount := e.kvMount(t, nsAdmin, 2)
	// A new KV v2 mount on a real server refuses writes for a moment while
	// it sets itself up ("upgrading ... unavailable for a brief period").
	var err error
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(200 * time.Millisecond) {
		if _, err = nsAdmin.KVv2(mount).Put(ctxT(t), "in/ns", map[string]any{"where": "ns"}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	b := e.open(t, e.settings(setNamespace, ns, setMount, mount))
	if got := mustGet(t, b, backend.Ref{Name: "in/ns", Field: "where"}); got != "ns" {
		t.Fatalf("got %q", got)
	}
	root := e.open(t, e.settings(setMount, mount))
	if _, err := get(t, root, backend.Ref{Name: "in/ns"}); err == nil {
		t.Fatal("read without the namespace setting succeeded")
	}
}

func TestGet_PathTemplateAndLabelOverride(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.put(t, "web/api/db", map[string]any{"v": "per-service"})
	e.put(t, "web/db", map[string]any{"v": "per-stack"})
	e.put(t, "team-a/db", map[string]any{"v": "per-team"})
	e.put(t, "override", map[string]any{"v": "label"})
	ref := backend.Ref{Name: "db", Secret: "web_db", Stack: "web", Service: "api", Field: "v",
		Labels: map[string]string{"team": "team-a"}}

	perService := e.open(t, e.settings(setPathTemplate, e.prefix+"{{.Stack}}/{{.Service}}/{{.Name}}"))
	s, err := get(t, perService, ref)
	if err != nil || string(s.Value) != "per-service" || !s.Varies {
		t.Fatalf("per-service: %q varies=%v %v", s.Value, s.Varies, err)
	}
	// The label path wins over the template, and names one value for
	// every requester.
	over := ref
	over.Path = e.path("override")
	s, err = get(t, perService, over)
	if err != nil || string(s.Value) != "label" || s.Varies {
		t.Fatalf("label override: %q varies=%v %v", s.Value, s.Varies, err)
	}

	perStack := e.open(t, e.settings(setPathTemplate, e.prefix+"{{.Stack}}/{{.Name}}"))
	s, err = get(t, perStack, ref)
	if err != nil || string(s.Value) != "per-stack" || s.Varies {
		t.Fatalf("per-stack: %q varies=%v %v", s.Value, s.Varies, err)
	}

	perTeam := e.open(t, e.settings(setPathTemplate, e.prefix+"{{.Labels.team}}/{{.Name}}"))
	if got := mustGet(t, perTeam, ref); got != "per-team" {
		t.Fatalf("per-team: %q", got)
	}
	noTeam := ref
	noTeam.Labels = nil
	if _, err := get(t, perTeam, noTeam); !errors.Is(err, backend.ErrInvalidRef) || !strings.Contains(err.Error(), "team") {
		t.Fatalf("missing label: %v, want ErrInvalidRef naming it", err)
	}
}

func TestGet_BadPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.open(t, e.settings())
	for _, ref := range []backend.Ref{
		{Name: "a/../b"}, {Name: "/abs"}, {Name: "a//b"}, {Name: "a/"}, {Name: ""}, {Name: "a/./b"},
		{Name: "ok", Path: "x/../../sys"}, {Name: "ok", Path: "x?version=1"},
	} {
		if _, err := get(t, b, ref); !errors.Is(err, backend.ErrInvalidRef) {
			t.Errorf("%+v: %v, want ErrInvalidRef", ref, err)
		}
	}
}

func TestGet_PermissionDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.put(t, "allowed", map[string]any{"v": "yes"})
	e.put(t, "refused", map[string]any{"v": "no"})
	tok := e.limitedToken(t, "allowed")
	b := e.open(t, e.settings(setTokenFile, writeFile(t, "token", tok)))
	if got := mustGet(t, b, backend.Ref{Name: e.path("allowed"), Field: "v"}); got != "yes" {
		t.Fatalf("allowed: %q", got)
	}
	_, err := get(t, b, backend.Ref{Name: e.path("refused")})
	if !errors.Is(err, backend.ErrDenied) {
		t.Fatalf("refused: %v, want ErrDenied", err)
	}
	if strings.Contains(err.Error(), tok) || !strings.Contains(err.Error(), "token_file") {
		t.Fatalf("error must name the credential, not the token: %s", err)
	}
}

func TestGet_TokenFileRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.put(t, "r", map[string]any{"v": "ok"})
	ref := backend.Ref{Name: e.path("r"), Field: "v"}
	first := e.limitedToken(t, "r")
	file := writeFile(t, "token", first)
	b := e.open(t, e.settings(setTokenFile, file))
	mustGet(t, b, ref)

	// A new token by rename, as Vault Agent writes it; the old one dies.
	second := e.limitedToken(t, "r")
	replaceFile(t, file, second)
	e.revoke(t, first)
	mustGet(t, b, ref)

	// A rewrite the stat cannot see (same size, mtime put back): the 403
	// makes the backend read the file again.
	info := statT(t, file)
	third := e.limitedToken(t, "r")
	if len(third) != len(second) {
		t.Skip("token lengths differ on this server")
	}
	writeInPlace(t, file, third, info.ModTime())
	e.revoke(t, second)
	mustGet(t, b, ref)
}

package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/sdk"
)

// serveUnix serves the handler on a real unix socket and returns a client
// that speaks to it like the engine does.
func serveUnix(t *testing.T, d *Driver) *http.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(l, NewHandler(d))
	t.Cleanup(func() { l.Close() })
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
	}
}

func post(t *testing.T, c *http.Client, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://plugin.moby.localhost"+path, strings.NewReader(body))
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHandlerOverUnixSocket(t *testing.T) {
	b := &memBackend{values: map[string][][]byte{"db": {[]byte("hunter2")}}}
	d, evs := newTestDriver(t, b, time.Second)
	c := serveUnix(t, d)

	code, body := post(t, c, "/Plugin.Activate", "")
	if code != 200 || !strings.Contains(body, `"Implements": ["secretprovider"]`) {
		t.Fatalf("activate: %d %s", code, body)
	}

	code, body = post(t, c, GetSecretPath, `{"SecretName":"db","SecretLabels":{"swarmkeep.reuse":"false"},"NodeID":"node-7","TaskID":"t"}`)
	var resp Response
	if err := json.Unmarshal([]byte(body), &resp); err != nil || code != 200 {
		t.Fatalf("get: %d %s %v", code, body, err)
	}
	if string(resp.Value) != "hunter2" || !resp.DoNotReuse || resp.Err != "" {
		t.Fatalf("get: %+v", resp)
	}
	if (*evs)[0].Request.NodeID != "node-7" || (*evs)[0].Size != 7 {
		t.Fatalf("event: %+v", (*evs)[0])
	}

	// An Err answer is HTTP 500 with a JSON body the engine reads Err from.
	code, body = post(t, c, GetSecretPath, `{"SecretName":"missing"}`)
	resp = Response{}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || code != 500 || !strings.Contains(resp.Err, "not found") {
		t.Fatalf("missing: %d %s", code, body)
	}

	for _, bad := range []string{"", "{", `{"SecretName":1}`, strings.Repeat("[", MaxRequestBytes+10)} {
		code, body = post(t, c, GetSecretPath, bad)
		resp = Response{}
		if err := json.Unmarshal([]byte(body), &resp); err != nil || code != 500 || !strings.Contains(resp.Err, "bad GetSecret request") {
			t.Fatalf("bad body %.20q: %d %.200s", bad, code, body)
		}
	}

	req, _ := http.NewRequest(http.MethodGet, "http://plugin.moby.localhost"+GetSecretPath, nil)
	r, err := c.Do(req)
	if err != nil || r.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v %v", r.StatusCode, err)
	}
	r.Body.Close()
}

// TestWriteValueMatchesEncodeResponse: a served value goes out as the bytes
// and headers sdk.EncodeResponse (json.Encoder) writes for it.
func TestWriteValueMatchesEncodeResponse(t *testing.T) {
	for _, v := range [][]byte{nil, {0}, []byte("a"), []byte("ab"), []byte("abc"), []byte("<&>\"\\\n\x00\xff"), bytes.Repeat([]byte{0xfb, 0xff}, 5000)} {
		for _, dnr := range []bool{false, true} {
			resp := Response{Value: v, DoNotReuse: dnr}
			want, got := httptest.NewRecorder(), httptest.NewRecorder()
			sdk.EncodeResponse(want, resp, false)
			writeValue(got, resp)
			if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) || !reflect.DeepEqual(got.Header(), want.Header()) {
				t.Fatalf("value %q dnr %v:\n got %d %v %q\nwant %d %v %q", v, dnr, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
			}
		}
	}
}

package driver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Fuzz targets for everything the engine's request reaches before a backend:
// the body decoder, the label parser and the handler as served on a socket.
// Seeds live in testdata/fuzz/<FuzzName>/ and run with every `go test`;
// scripts/fuzz.sh runs each target for a bounded time.

// FuzzDecodeRequest: any body either decodes to a request with a name that
// survives a re-encode unchanged, or fails and yields nothing.
func FuzzDecodeRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(bytes.NewReader(body))
		if err != nil {
			if !requestIsZero(req) {
				t.Fatalf("error %v came with a request: %+v", err, req)
			}
			return
		}
		if req.SecretName == "" {
			t.Fatal("decoded a request without SecretName")
		}
		enc := encodeRequest(t, req)
		if len(enc) > MaxRequestBytes {
			// Escaping can grow a body that was just under the limit.
			return
		}
		again, err := DecodeRequest(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v\n%s", err, enc)
		}
		// Compared as JSON, where a nil and an empty map are the same: the
		// engine cannot tell them apart either.
		if enc2 := encodeRequest(t, again); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the request:\n%s\n%s", enc, enc2)
		}
	})
}

func requestIsZero(r Request) bool {
	return r.SecretName == "" && r.SecretLabels == nil && r.ServiceHostname == "" && r.ServiceName == "" &&
		r.ServiceID == "" && r.ServiceLabels == nil && r.TaskID == "" && r.TaskName == "" &&
		r.TaskImage == "" && r.NodeID == "" && r.ServiceEndpointSpec == nil
}

// encodeRequest marshals like the engine (Go's encoding/json) but without
// HTML escaping, so the size check above means what it says.
func encodeRequest(t *testing.T, req Request) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(req); err != nil {
		t.Fatalf("encode %+v: %v", req, err)
	}
	return buf.Bytes()
}

// fuzzLabelKeys lets the fuzzer reach every label parser with one byte: in
// the label encoding of fuzzLabels, a key that is a single digit d stands for
// fuzzLabelKeys[d].
var fuzzLabelKeys = [10]string{
	LabelName, LabelVersion, LabelReuse, LabelEncoding, LabelBackend,
	LabelPath, LabelField, StackNamespaceLabel, LabelPrefix + "colour", "com.example.other",
}

// fuzzLabels builds a label map from bytes: entries separated by NUL, key and
// value by the first '='. An empty input is a secret without labels. Newlines
// and '%' can appear in keys and values, as they can in Swarm.
func fuzzLabels(b []byte) map[string]string {
	if len(b) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, e := range bytes.Split(b, []byte{0}) {
		k, v, _ := bytes.Cut(e, []byte("="))
		key := string(k)
		if len(k) == 1 && k[0] >= '0' && k[0] <= '9' {
			key = fuzzLabelKeys[k[0]-'0']
		}
		m[key] = string(v)
	}
	return m
}

// FuzzParseSpec: any secret name and labels either give a Spec that means
// exactly what the labels say, or a *LabelError that names a label present
// and fits on one safe line.
func FuzzParseSpec(f *testing.F) {
	f.Fuzz(func(t *testing.T, secretName string, rawLabels []byte) {
		labels := fuzzLabels(rawLabels)
		spec, err := ParseSpec(secretName, labels)
		// Map order must not matter: the same secret always gets the same
		// answer, first error included.
		spec2, err2 := ParseSpec(secretName, labels)
		if !reflect.DeepEqual(spec, spec2) || errText(err) != errText(err2) {
			t.Fatalf("not deterministic: %+v %v / %+v %v", spec, err, spec2, err2)
		}
		if err != nil {
			checkLabelError(t, secretName, labels, spec, err)
			return
		}
		for k := range labels {
			if _, known := labelParsers[k]; ourLabelKey(k) && !known {
				t.Fatalf("unknown label %q accepted", k)
			}
		}
		stack := labels[StackNamespaceLabel]
		wantName := secretName
		if v, ok := labels[LabelName]; ok {
			wantName = v
		} else if rest, ok := strings.CutPrefix(secretName, stack+"_"); ok && stack != "" && rest != "" {
			wantName = stack + "/" + rest
		}
		if spec.Name != wantName || (secretName != "" && spec.Name == "") {
			t.Fatalf("Name %q, want %q (secret %q, stack %q)", spec.Name, wantName, secretName, stack)
		}
		if strings.ContainsAny(labels[LabelName], " \t\r\n%") {
			t.Fatalf("swarmkeep.name %q accepted", labels[LabelName])
		}
		// Version: absent is 0 (latest); present is a decimal >= 1, read
		// exactly (leading zeros allowed, nothing else).
		var wantVersion uint64
		if v, ok := labels[LabelVersion]; ok {
			n, perr := strconv.ParseUint(v, 10, 64)
			if perr != nil || n == 0 {
				t.Fatalf("swarmkeep.version %q accepted as %d", v, spec.Version)
			}
			wantVersion = n
		}
		if spec.Version != wantVersion {
			t.Fatalf("Version %d, want %d", spec.Version, wantVersion)
		}
		if wantReuse := labels[LabelReuse] != "false"; spec.Reuse != wantReuse {
			t.Fatalf("Reuse %v with swarmkeep.reuse=%q", spec.Reuse, labels[LabelReuse])
		}
		if v, ok := labels[LabelReuse]; ok && v != "true" && v != "false" {
			t.Fatalf("swarmkeep.reuse %q accepted", v)
		}
		wantEnc := EncodingRaw
		if v, ok := labels[LabelEncoding]; ok {
			wantEnc = Encoding(v)
		}
		if spec.Encoding != wantEnc || (wantEnc != EncodingRaw && wantEnc != EncodingBase64) {
			t.Fatalf("Encoding %q, want %q", spec.Encoding, wantEnc)
		}
		if spec.Backend != labels[LabelBackend] || spec.Path != labels[LabelPath] || spec.Field != labels[LabelField] || spec.Stack != stack {
			t.Fatalf("labels not carried over: %+v from %q", spec, labels)
		}
		if _, ok := labels[LabelBackend]; ok && !ValidInstanceName(spec.Backend) {
			t.Fatalf("swarmkeep.backend %q accepted", spec.Backend)
		}
		if p := spec.Path; p != "" && (strings.Contains(p, "..") || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#% \t\r\n")) {
			t.Fatalf("swarmkeep.path %q accepted", p)
		}
	})
}

// ourLabelKey is the fuzz oracle for "a key ParseSpec must judge": its
// first runes equal the prefix under case folding (Swarmkeep., ſwarmkeep.).
func ourLabelKey(k string) bool {
	r, n := []rune(k), len([]rune(LabelPrefix))
	return len(r) >= n && strings.EqualFold(string(r[:n]), LabelPrefix)
}

// FuzzDecodeBase64: exactly the texts base64 and base64 -w0 write for some
// bytes are accepted, and they decode to those bytes.
func FuzzDecodeBase64(f *testing.F) {
	for _, seed := range []string{"QQ==", "QQ==\n", "QQ=====\n==", "QQ", "QR==", "aGVs\nbG8=\n", "QQ==\r\n", "",
		base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x"), 100)),
		wrap76(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x"), 100))) + "\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		got, err := DecodeBase64(text)
		if err != nil {
			// Refused: no decoding of any bytes is written this way.
			if v, derr := base64.StdEncoding.DecodeString(strings.NewReplacer("\n", "", "\r", "").Replace(string(text))); derr == nil {
				for _, form := range base64Forms(v) {
					if form == string(text) {
						t.Fatalf("%q refused, but base64 writes it for %q", text, v)
					}
				}
			}
			return
		}
		ok := false
		for _, form := range base64Forms(got) {
			ok = ok || form == string(text)
		}
		if !ok {
			t.Fatalf("%q accepted as %q, but base64 never writes it", text, got)
		}
	})
}

// base64Forms are the texts base64 and base64 -w0 may write for v, with
// and without the final newline.
func base64Forms(v []byte) []string {
	e := base64.StdEncoding.EncodeToString(v)
	return []string{e, e + "\n", wrap76(e), wrap76(e) + "\n"}
}

func wrap76(s string) string {
	var lines []string
	for len(s) > 76 {
		lines, s = append(lines, s[:76]), s[76:]
	}
	return strings.Join(append(lines, s), "\n")
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkLabelError: a ParseSpec failure is a *LabelError about a swarmkeep.*
// label the secret has, one line without '%' (the engine may pass it through
// a format call), and the line answered to the engine is safe as well.
func checkLabelError(t *testing.T, secretName string, labels map[string]string, spec Spec, err error) {
	t.Helper()
	var le *LabelError
	if !errors.As(err, &le) {
		t.Fatalf("error is %T, not *LabelError: %v", err, err)
	}
	if !reflect.DeepEqual(spec, Spec{}) {
		t.Fatalf("error %v came with a Spec: %+v", err, spec)
	}
	if _, ok := labels[le.Label]; !ok || !ourLabelKey(le.Label) {
		t.Fatalf("error names label %q, which the secret does not have", le.Label)
	}
	if msg := err.Error(); strings.ContainsAny(msg, "%\r\n") {
		t.Fatalf("LabelError text is not one safe line: %q", msg)
	}
	line := errorLine(secretName, classify(err), err)
	if classify(err) != ClassBadLabel || strings.ContainsAny(line, "%\r\n") || len(line) > 400 {
		t.Fatalf("class %s, line %q", classify(err), line)
	}
}

// fuzzStored are the fake backend's values for FuzzHandler. Each is long and
// odd enough that finding it in an Err can only mean a leak.
func fuzzStored() map[string][][]byte {
	return map[string][][]byte{
		"alpha":        {[]byte("fz-alpha-value-v1"), []byte("fz-alpha-value-v2")},
		"beta":         {[]byte("fz-beta-value\x00\xff")},
		"b64":          {[]byte(base64.StdEncoding.EncodeToString([]byte("fz-decoded-b64-value")) + "\n")},
		"demo/api_key": {[]byte("fz-stack-api-key-value")},
		"empty":        {{}},
	}
}

// FuzzHandler: any body sent to the real handler over a unix socket gets HTTP
// 200 with the exact value or 500 with one safe Err line, always as one JSON
// Response, and no stored value ever shows up in an Err.
func FuzzHandler(f *testing.F) {
	stored := fuzzStored()
	d := newDriverTB(f, "FuzzHandler", &memBackend{values: stored}, DefaultTimeout, nil)
	c, _ := serveUnixTB(f, d, 1)
	var secrets [][]byte
	for _, vs := range stored {
		for _, v := range vs {
			secrets = append(secrets, v)
			if dv, err := decodeValue(EncodingBase64, v); err == nil {
				secrets = append(secrets, dv)
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		code, resp, raw := postBody(t, c, body)
		want := expectFuzz(stored, body)
		if code != want.status {
			t.Fatalf("HTTP %d, want %d (%s); body %.300q", code, want.status, want.why, raw)
		}
		if code == http.StatusOK {
			if resp.Err != "" || !bytes.Equal(resp.Value, want.value) || resp.DoNotReuse != want.dnr {
				t.Fatalf("got %+v, want value %q DoNotReuse=%v", resp, want.value, want.dnr)
			}
			return
		}
		if resp.Value != nil || resp.DoNotReuse || !strings.HasPrefix(resp.Err, "swarmkeep: ") ||
			strings.ContainsAny(resp.Err, "%\r\n") || len(resp.Err) > 400 {
			t.Fatalf("error answer is not one safe line without a value: %+v", resp)
		}
		// A line cut at its 400-byte limit may have lost the cause (a long
		// name or label key comes before it); only the prefix is sure then.
		if !strings.Contains(resp.Err, want.why) && !(len(resp.Err) == 400 && strings.HasSuffix(resp.Err, "...")) {
			t.Fatalf("Err %q does not say %q", resp.Err, want.why)
		}
		asked := requestText(body)
		for _, s := range secrets {
			for _, form := range [][]byte{s, []byte(base64.StdEncoding.EncodeToString(s))} {
				// A value the request itself carries (say as a name) may be
				// echoed back; any other occurrence is a leak.
				if len(form) > 0 && strings.Contains(resp.Err, string(form)) && !strings.Contains(asked, string(form)) {
					t.Fatalf("Err carries a stored value %q: %q", form, resp.Err)
				}
			}
		}
	})
}

// fuzzWant is the answer FuzzHandler expects.
type fuzzWant struct {
	status int
	value  []byte
	dnr    bool
	why    string // on 500, a part of the Err
}

// expectFuzz works out the answer from the body with the package's own
// decoder and label parser (fuzzed on their own above) and the fake store: what
// is checked here is that the handler and driver put them together right.
func expectFuzz(stored map[string][][]byte, body []byte) fuzzWant {
	fail := func(why string) fuzzWant { return fuzzWant{status: http.StatusInternalServerError, why: why} }
	req, err := DecodeRequest(bytes.NewReader(body))
	if err != nil {
		return fail("bad GetSecret request")
	}
	spec, err := ParseSpec(req.SecretName, req.SecretLabels)
	if err != nil {
		return fail("fix: recreate the secret")
	}
	if spec.Backend != "" && spec.Backend != "local" {
		return fail("unknown backend")
	}
	vs := stored[spec.Name]
	v := uint64(len(vs))
	if spec.Version != 0 {
		v = spec.Version
	}
	if v == 0 || v > uint64(len(vs)) {
		return fail("not found")
	}
	value, err := decodeValue(spec.Encoding, vs[v-1])
	if err != nil {
		return fail("invalid value")
	}
	return fuzzWant{status: http.StatusOK, value: value, dnr: !spec.Reuse}
}

// requestText is every string the request carries, raw and decoded, to tell
// an echo of the caller's own input from a leak.
func requestText(body []byte) string {
	parts := []string{string(body)}
	if req, err := DecodeRequest(bytes.NewReader(body)); err == nil {
		parts = append(parts, req.SecretName, req.ServiceHostname, req.ServiceName, req.ServiceID,
			req.TaskID, req.TaskName, req.TaskImage, req.NodeID)
		for _, m := range []map[string]string{req.SecretLabels, req.ServiceLabels} {
			for k, v := range m {
				parts = append(parts, k, v)
			}
		}
		if req.ServiceEndpointSpec != nil {
			for _, p := range req.ServiceEndpointSpec.Ports {
				parts = append(parts, p.Name)
			}
		}
	}
	return strings.Join(parts, "\x00")
}

// newDriverTB is newTestDriver for fuzz targets and benchmarks: a driver with
// one "local" instance of the test backend type serving b.
func newDriverTB(tb testing.TB, id string, b backend.Backend, timeout time.Duration, obs Observer) *Driver {
	tb.Helper()
	d, err := New(Options{
		Routes:   []Route{{Name: "local", Backend: b}},
		Timeout:  timeout,
		Observer: obs,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// serveUnixTB serves the handler on a real unix socket, as the plugin does,
// and returns a client keeping up to maxIdle connections, like the engine's,
// and a stop function (also run at cleanup). Stop closes the client's
// connections before the listener, so the server's per-connection goroutines
// end too, and returns once Serve has returned.
func serveUnixTB(tb testing.TB, d *Driver, maxIdle int) (*http.Client, func()) {
	tb.Helper()
	sock := filepath.Join(tb.TempDir(), "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { http.Serve(l, NewHandler(d)); close(done) }()
	tr := &http.Transport{
		MaxIdleConnsPerHost: maxIdle,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			tr.CloseIdleConnections()
			l.Close()
			<-done
		})
	}
	tb.Cleanup(stop)
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}, stop
}

// postBody sends body as the engine does and returns the status, the decoded
// Response and the raw answer; any transport or format fault fails the test.
func postBody(t testing.TB, c *http.Client, body []byte) (int, Response, []byte) {
	t.Helper()
	code, resp, raw, err := getSecret(c, body)
	if err != nil {
		t.Fatal(err)
	}
	return code, resp, raw
}

// getSecret posts body to GetSecret. The answer must be exactly one JSON
// Response with the plugin content type; anything else is an error. It does
// not touch a testing.T, so load workers can call it.
func getSecret(c *http.Client, body []byte) (int, Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, "http://plugin.moby.localhost"+GetSecretPath, bytes.NewReader(body))
	if err != nil {
		return 0, Response{}, nil, err
	}
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, Response{}, nil, fmt.Errorf("POST %d bytes: %w", len(body), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, Response{}, nil, fmt.Errorf("reading the answer: %w", err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.docker.plugins.v1.1+json" {
		return 0, Response{}, raw, fmt.Errorf("HTTP %d, Content-Type %q; body %.200q", resp.StatusCode, ct, raw)
	}
	var out Response
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return 0, Response{}, raw, fmt.Errorf("HTTP %d, body is not a JSON Response: %w: %.300q", resp.StatusCode, err, raw)
	}
	if rest := raw[dec.InputOffset():]; len(bytes.TrimSpace(rest)) != 0 {
		return 0, Response{}, raw, fmt.Errorf("data after the JSON Response: %.100q", rest)
	}
	return resp.StatusCode, out, raw, nil
}

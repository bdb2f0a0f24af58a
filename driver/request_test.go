package driver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	full := `{"SecretName":"demo_api_key","SecretLabels":{"com.docker.stack.namespace":"demo"},
	"ServiceName":"demo_web","ServiceID":"s1","ServiceLabels":{"a":"b"},"TaskID":"t1",
	"TaskName":"demo_web.1.t1","TaskImage":"testbox:1","NodeID":"n1","ServiceHostname":"{{.Node.Hostname}}",
	"ServiceEndpointSpec":{"Mode":1,"Ports":[{"Name":"http","Protocol":0,"TargetPort":80,"PublishedPort":8080,"PublishMode":1}]},
	"FutureField":42}`
	req, err := DecodeRequest(strings.NewReader(full))
	if err != nil {
		t.Fatal(err)
	}
	if req.NodeID != "n1" || req.TaskID != "t1" || req.SecretLabels[StackNamespaceLabel] != "demo" ||
		req.ServiceHostname != "{{.Node.Hostname}}" || req.ServiceEndpointSpec.Ports[0].PublishedPort != 8080 {
		t.Fatalf("fields lost: %+v", req)
	}

	bad := []struct{ name, body, want string }{
		{"empty", "", "empty request body"},
		{"not json", "hello", "malformed JSON"},
		{"truncated", `{"SecretName":"a"`, "malformed JSON"},
		{"wrong type", `{"SecretName":5}`, "malformed JSON"},
		{"trailing data", `{"SecretName":"a"} {"x":1}`, "data after the request object"},
		{"no name", `{"ServiceName":"x"}`, "no SecretName"},
		{"huge", `{"SecretName":"a","ServiceName":"` + strings.Repeat("x", MaxRequestBytes) + `"}`, "larger than"},
		{"huge trailing", `{"SecretName":"a"}` + strings.Repeat(" ", MaxRequestBytes), "larger than"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRequest(strings.NewReader(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestIdentityOf(t *testing.T) {
	req := Request{
		SecretName: "s", SecretLabels: map[string]string{StackNamespaceLabel: "evil"},
		ServiceName: "payments_api", ServiceLabels: map[string]string{StackNamespaceLabel: "payments", "tier": "backend"},
		TaskImage: "img@sha256:ab", NodeID: "n1",
	}
	id := IdentityOf(req)
	if id.Stack != "payments" || id.Service != "payments_api" || id.Image != "img@sha256:ab" || id.Node != "n1" || id.ServiceLabels["tier"] != "backend" {
		t.Fatalf("identity %+v", id)
	}
	if IdentityOf(Request{ServiceName: "x"}).Stack != "" {
		t.Fatal("stack from nothing")
	}
}

// streamDecode is how requests were decoded before the pooled buffer: a
// json.Decoder over a limited reader, then a Token call for trailing data.
func streamDecode(body []byte) (Request, error) {
	var req Request
	lr := &io.LimitedReader{R: bytes.NewReader(body), N: MaxRequestBytes + 1}
	dec := json.NewDecoder(lr)
	if err := dec.Decode(&req); err != nil {
		return Request{}, err
	}
	if _, err := dec.Token(); lr.N <= 0 || !errors.Is(err, io.EOF) {
		return Request{}, errors.New("trailing data or too large")
	}
	if req.SecretName == "" {
		return Request{}, errors.New("no SecretName")
	}
	return req, nil
}

// FuzzDecodeRequestMatchesStream: DecodeRequest accepts exactly the bodies
// the stream decoder accepted, with the same request.
func FuzzDecodeRequestMatchesStream(f *testing.F) {
	for _, s := range []string{`{"SecretName":"a"}`, `{"SecretName":"a"} `, `{"SecretName":"a"} x`, " \n", "\f{}",
		`{"secretname":"a","SecretLabels":{"k":"v"},"SecretLabels":{"j":"w"},"ServiceEndpointSpec":{"Mode":1,"Ports":[{"TargetPort":80}]},"X":[1,{"y":null}]}`,
		`{"SecretName":"a\u00e9\ud800","NodeID":null}`, `{"SecretName":5}`, `[]`, `null`,
		`{"SecretName":"app_db","SecretLabels":{"a":"b","a":"c"},"ServiceName":"w","ServiceID":"s","ServiceLabels":{},"TaskID":"t","TaskName":"w.1",` +
			`"TaskImage":"i","NodeID":"n","ServiceHostname":"h","ServiceEndpointSpec":{"Mode":1,"Ports":[{"Name":"x\"}","TargetPort":80}]}}` + "\n",
		`{"SecretName":"a","ServiceEndpointSpec":null}`, `{"SecretName":"a","ServiceEndpointSpec":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gerr := DecodeRequest(bytes.NewReader(body))
		want, werr := streamDecode(body)
		if (gerr != nil) != (werr != nil) {
			t.Fatalf("DecodeRequest error %v, stream decoder error %v", gerr, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeRequest %+v, stream decoder %+v", got, want)
		}
	})
}

// TestFastDecodeTakesEngineBodies: the bodies the engine sends take the
// fast decoder (else every request pays for reflection again), and what
// it cannot decide goes to json.Unmarshal.
func TestFastDecodeTakesEngineBodies(t *testing.T) {
	engine := []string{
		`{"SecretName":"app_db","SecretLabels":{"com.docker.stack.namespace":"app"},"ServiceName":"app_web","ServiceID":"s1",` +
			`"ServiceLabels":{"com.docker.stack.namespace":"app","com.docker.stack.image":"nginx:1.27"},"TaskID":"t1","TaskName":"app_web.1.t1",` +
			`"TaskImage":"nginx:1.27@sha256:ab","NodeID":"n1","ServiceEndpointSpec":{"Mode":1,"Ports":[{"Name":"http","TargetPort":80,"PublishedPort":8080,"PublishMode":1}]}}` + "\n",
		`{"SecretName":"x","ServiceEndpointSpec":{}}`, `{"SecretName":"é","SecretLabels":{}}`, ` {"SecretName":"a"} `,
	}
	for _, body := range engine {
		var fast Request
		if !fastDecode([]byte(body), &fast) {
			t.Fatalf("fast decoder refused the engine's body %s", body)
		}
		var want Request
		if err := json.Unmarshal([]byte(body), &want); err != nil || !reflect.DeepEqual(fast, want) {
			t.Fatalf("fast %+v, json.Unmarshal %+v (%v)", fast, want, err)
		}
	}
	for _, body := range []string{`{"SecretName":"a\n"}`, `{"secretname":"a"}`, `{"SecretName":"a","SecretName":"b"}`, `{"SecretName":null}`,
		`{"SecretName":"a","Future":1}`, `{"SecretName":"\xff"}`, `{"SecretName":"a"} {}`, `{"ServiceEndpointSpec":{"Mode":1.5}}`} {
		var r Request
		if fastDecode([]byte(body), &r) {
			t.Fatalf("fast decoder decided %q, which is json.Unmarshal's to decide", body)
		}
	}
}

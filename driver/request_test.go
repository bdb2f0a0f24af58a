package driver

import (
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

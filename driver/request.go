package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/docker/go-plugins-helpers/secrets"
	"github.com/swarmkeep/swarmkeep/driver/policy"
)

// MaxRequestBytes bounds a GetSecret request body. Real requests are a few
// KiB (labels, endpoint spec); anything larger is refused unread.
const MaxRequestBytes = 1 << 20

// Request is the engine's GetSecret request. It mirrors swarmkit's
// SecretsProviderRequest, which, unlike go-plugins-helpers' secrets.Request,
// carries NodeID. JSON keys equal the Go field names.
type Request struct {
	SecretName          string                `json:",omitempty"`
	SecretLabels        map[string]string     `json:",omitempty"`
	ServiceHostname     string                `json:",omitempty"`
	ServiceName         string                `json:",omitempty"`
	ServiceID           string                `json:",omitempty"`
	ServiceLabels       map[string]string     `json:",omitempty"`
	TaskID              string                `json:",omitempty"`
	TaskName            string                `json:",omitempty"`
	TaskImage           string                `json:",omitempty"`
	NodeID              string                `json:",omitempty"`
	ServiceEndpointSpec *secrets.EndpointSpec `json:",omitempty"`
}

// Response is the answer the engine expects: a value, or Err.
type Response = secrets.Response

// DecodeRequest reads one JSON request of at most MaxRequestBytes. Unknown
// fields are accepted, since newer engines may send more.
func DecodeRequest(r io.Reader) (Request, error) {
	var req Request
	lr := &io.LimitedReader{R: r, N: MaxRequestBytes + 1}
	dec := json.NewDecoder(lr)
	if err := dec.Decode(&req); err != nil {
		if lr.N <= 0 {
			return Request{}, fmt.Errorf("request larger than %d bytes", MaxRequestBytes)
		}
		if errors.Is(err, io.EOF) {
			return Request{}, errors.New("empty request body")
		}
		return Request{}, fmt.Errorf("malformed JSON: %w", err)
	}
	// Anything but white space after the object is a malformed request too.
	_, err := dec.Token()
	if lr.N <= 0 {
		return Request{}, fmt.Errorf("request larger than %d bytes", MaxRequestBytes)
	}
	if !errors.Is(err, io.EOF) {
		return Request{}, errors.New("malformed JSON: data after the request object")
	}
	if req.SecretName == "" {
		return Request{}, errors.New("request has no SecretName")
	}
	return req, nil
}

// IdentityOf takes the requester's identity from a GetSecret request, for
// the access policy. The secret's own labels are left out on purpose:
// whoever deploys the secret sets them, so they must never widen access.
func IdentityOf(req Request) policy.Identity {
	return policy.Identity{
		Stack:         req.ServiceLabels[StackNamespaceLabel],
		Service:       req.ServiceName,
		ServiceLabels: req.ServiceLabels,
		Image:         req.TaskImage,
		Node:          req.NodeID,
	}
}

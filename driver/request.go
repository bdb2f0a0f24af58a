package driver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

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

// bodyPool holds request body buffers: one is read per request.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBody bounds the buffers kept for reuse: real requests are a few
// KiB, and a rare large one must not stay pinned in the pool.
const maxPooledBody = 64 << 10

// DecodeRequest reads one JSON request of at most MaxRequestBytes. Unknown
// fields are accepted, since newer engines may send more; anything but
// white space after the object is refused.
//
// The body is read whole into a pooled buffer and decoded in one pass: by
// fastDecode when it has the engine's usual shape, else by json.Unmarshal,
// which checks that nothing follows the value. A json.Decoder plus a Token
// call for the trailing check scanned and buffered the body once more, and
// reflection was most of the rest: decoding was the largest cost after the
// audit trail. Both decoders copy every string they keep, so the buffer is
// reused safely.
func DecodeRequest(r io.Reader) (Request, error) {
	bp := bodyPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBody {
			bodyPool.Put(bp)
		}
	}()
	body, err := readAtMost(r, (*bp)[:0], MaxRequestBytes+1)
	*bp = body[:0]
	if err != nil {
		return Request{}, fmt.Errorf("reading the request: %w", err)
	}
	if len(body) > MaxRequestBytes {
		return Request{}, fmt.Errorf("request larger than %d bytes", MaxRequestBytes)
	}
	start := skipSpace(body, 0)
	if start == len(body) {
		return Request{}, errors.New("empty request body")
	}
	var req Request
	if fastDecode(body, &req) {
		if req.SecretName == "" {
			return Request{}, errors.New("request has no SecretName")
		}
		return req, nil
	}
	return decodeGeneric(body)
}

// decodeGeneric decodes what fastDecode left undecided. Its own function,
// so that json.Unmarshal's request escapes to the heap, not fastDecode's.
func decodeGeneric(body []byte) (Request, error) {
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		// Rare: say what is wrong as a stream decoder sees it, the
		// request object first, then what follows it.
		return Request{}, explainMalformed(body, err)
	}
	if req.SecretName == "" {
		return Request{}, errors.New("request has no SecretName")
	}
	return req, nil
}

// explainMalformed names what makes body, which json.Unmarshal refused with
// err, a malformed request: the object itself, or data after it.
func explainMalformed(body []byte, err error) error {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(body))
	if derr := dec.Decode(&req); derr != nil {
		return fmt.Errorf("malformed JSON: %w", derr)
	}
	if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
		return errors.New("malformed JSON: data after the request object")
	}
	return fmt.Errorf("malformed JSON: %w", err)
}

// readAtMost appends r's bytes to buf until EOF or until buf holds limit
// bytes.
func readAtMost(r io.Reader, buf []byte, limit int) ([]byte, error) {
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
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

package driver

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"

	"github.com/docker/go-plugins-helpers/sdk"
)

// Protocol constants (go-plugins-helpers secrets/api.go, swarmkit
// manager/drivers/secrets.go).
const (
	// Manifest answers /Plugin.Activate: this plugin implements the
	// secretprovider capability.
	Manifest = `{"Implements": ["secretprovider"]}`
	// GetSecretPath is the one route the engine calls.
	GetSecretPath = "/SecretProvider.GetSecret"
)

// ActivatePath is the handshake route every plugin answers.
const ActivatePath = "/Plugin.Activate"

// NewHandler returns the plugin's HTTP handler: /Plugin.Activate, and
// GetSecret decoded here rather than by the secrets helper, because the
// helper's Request drops NodeID and reads bodies without a size limit. It
// is a plain http.Handler so that whoever serves it sets the connection
// limits and timeouts.
func NewHandler(d *Driver) http.Handler {
	h := http.NewServeMux()
	h.HandleFunc(ActivatePath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
		fmt.Fprintln(w, Manifest)
	})
	h.HandleFunc(GetSecretPath, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		req, err := DecodeRequest(r.Body)
		if err != nil {
			line := quoteFree(fmt.Sprintf("swarmkeep: bad GetSecret request: %v; fix: the caller must send the engine's JSON request", err))
			d.observe(Event{Class: ClassBadRequest, Err: err, Line: line})
			sdk.EncodeResponse(w, Response{Err: line}, true)
			return
		}
		resp := d.Get(r.Context(), req)
		if resp.Err != "" {
			sdk.EncodeResponse(w, resp, true)
			return
		}
		writeValue(w, resp)
	})
	return h
}

// respPool holds answer buffers: one is built per value served.
var respPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeValue answers a served value with the bytes sdk.EncodeResponse
// writes for it (json.Encoder: the omitempty fields, base64, a newline),
// built without reflection into a pooled buffer and sent in one Write.
// TestWriteValueMatchesEncodeResponse compares the two.
func writeValue(w http.ResponseWriter, resp Response) {
	w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
	bp := respPool.Get().(*[]byte)
	b := append((*bp)[:0], '{')
	if len(resp.Value) > 0 {
		b = append(b, `"Value":"`...)
		b = base64.StdEncoding.AppendEncode(b, resp.Value)
		b = append(b, '"')
	}
	if resp.DoNotReuse {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, `"DoNotReuse":true`...)
	}
	b = append(b, '}', '\n')
	_, _ = w.Write(b)
	// The buffer held a secret's value: clear it before it is reused, so
	// the value does not linger in memory any longer than net/http's copy.
	clear(b)
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		respPool.Put(bp)
	}
}

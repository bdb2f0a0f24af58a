package driver

import (
	"fmt"
	"net/http"

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
		sdk.EncodeResponse(w, resp, resp.Err != "")
	})
	return h
}

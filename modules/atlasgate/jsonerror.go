package atlasgate

import (
	"encoding/json"
	"net/http"
)

// ErrorBody is the JSON body of every error the gateway itself answers with.
// Error is a stable, machine-readable code; Message is for people. Neither ever
// holds a secret.
type ErrorBody struct {
	Error      string `json:"error"`
	Message    string `json:"message"`
	Credential string `json:"credential,omitempty"`
	Remedy     string `json:"remedy,omitempty"`
	// Link is a URL where the caller can fix the problem (authorize).
	Link string `json:"link,omitempty"`
}

// WriteError writes body as a JSON error response with the given status.
func WriteError(w http.ResponseWriter, status int, body ErrorBody) {
	WriteJSON(w, status, body)
}

// WriteJSON writes a JSON answer of the gateway's own (an error or a
// decision), never cached and never sniffed as another type.
func WriteJSON(w http.ResponseWriter, status int, body any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

package authhandler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/authn"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves `POST /atlasgate/test-token`: it shows what the gateway
// concludes about a token — valid or why not, and the identity, groups, scopes
// and claims (or userinfo JSON) — so an operator can check an integration and
// choose the username attribute.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.atlasgate_test_token",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes implements caddy.AdminRouter.
func (adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: "/atlasgate/test-token",
		Handler: caddy.AdminHandlerFunc(handleTestToken),
	}}
}

// TestTokenRequest is the body of POST /atlasgate/test-token.
type TestTokenRequest struct {
	// The token to test, as a client would send it after "Bearer ".
	Token string `json:"token"`
	// The authenticator to test with; empty: every configured one, by name.
	Authenticator string `json:"authenticator,omitempty"`
}

// TestTokenResult is one authenticator's conclusion.
type TestTokenResult struct {
	Authenticator string          `json:"authenticator"`
	Valid         bool            `json:"valid"`
	Identity      *authn.Identity `json:"identity,omitempty"`
	// Status is the HTTP status a client would get: 200, 401 or 503.
	Status int `json:"status"`
	// Error is the RFC 6750 error code or `authentication_unavailable`;
	// `not_applicable` when the token is not of this authenticator's kind.
	Error       string `json:"error,omitempty"`
	Description string `json:"description,omitempty"`
	// Detail is the internal reason, for operators only.
	Detail string `json:"detail,omitempty"`
}

func handleTestToken(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed: use POST")}
	}
	var req TestTokenRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("decoding request: %v", err)}
	}
	if req.Token == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("token: required")}
	}
	app, err := atlasgate.Running()
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
	}
	names := app.AuthenticatorNames()
	if req.Authenticator != "" {
		names = []string{req.Authenticator}
	}
	auths, err := lookup(app, names)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	results := make([]TestTokenResult, 0, len(auths))
	for _, a := range auths {
		results = append(results, testToken(r, a, req.Token))
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(results)
}

func testToken(r *http.Request, a namedAuthenticator, token string) TestTokenResult {
	probe, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "/", nil)
	probe.Header.Set("Authorization", "Bearer "+token)
	res := TestTokenResult{Authenticator: a.name}
	id, err := a.Authenticate(probe)
	var ae *authn.Error
	switch {
	case err == nil && id != nil:
		id.Authenticator = a.name
		res.Valid, res.Identity, res.Status = true, id, http.StatusOK
	case errors.Is(err, authn.ErrNoCredential):
		res.Status, res.Error = http.StatusUnauthorized, "not_applicable"
		res.Description = "the token is not of a kind this authenticator checks"
	case errors.As(err, &ae):
		res.Status, res.Error, res.Description = ae.Status, ae.Code, ae.Description
		if ae.Err != nil {
			res.Detail = ae.Err.Error()
		}
	default:
		res.Status, res.Error, res.Description = http.StatusServiceUnavailable, "authentication_unavailable", "authentication failed unexpectedly"
		if err != nil {
			res.Detail = err.Error()
		}
	}
	return res
}

// Interface guards
var _ caddy.AdminRouter = (*adminAPI)(nil)

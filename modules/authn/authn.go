// Package authn holds what every inbound authenticator of atlasgate shares: the
// Identity a request authenticates as, the Authenticator interface that the
// guest modules of the `atlasgate.authn` namespace implement, the errors that
// become 401 and 503 answers, bearer-token extraction and the verified-token
// cache.
package authn

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Identity is who a request authenticated as. Policy decides on it; the
// `authentication` placeholders expose it.
type Identity struct {
	// Authenticator is the configured name of the authenticator that accepted
	// the request.
	Authenticator string `json:"authenticator"`
	// Kind is the authenticator type: jwt, introspection, userinfo, api_key,
	// client_cert.
	Kind string `json:"kind"`
	// User is the value of the configured username attribute; it becomes
	// {http.auth.user.id}.
	User string `json:"user"`
	// Subject is the token's `sub` (or the key id, or the certificate's
	// identity) when it differs from User.
	Subject string `json:"subject,omitempty"`
	// Issuer of the token, if any.
	Issuer string `json:"issuer,omitempty"`
	// Groups and roles, as the issuer or the API key states them.
	Groups []string `json:"groups,omitempty"`
	// Scopes granted to the token (`scp` or `scope`).
	Scopes []string `json:"scopes,omitempty"`
	// Labels are key/value facts that are not claims: API key labels,
	// certificate fields.
	Labels map[string]string `json:"labels,omitempty"`
	// Claims of a JWT, the introspection response or the userinfo JSON.
	Claims map[string]any `json:"claims,omitempty"`
	// ExpiresAt is when the credential stops being valid (zero: unknown).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// IdentityVar is the name of the Caddy variable (caddyhttp.GetVar) that holds
// the request's *Identity once atlasgate_auth has authenticated it.
const IdentityVar = "atlasgate.identity"

// Authenticator is implemented by the guest modules of the `atlasgate.authn`
// namespace.
type Authenticator interface {
	// Authenticate checks the credential that r carries. It returns
	// ErrNoCredential when r carries no credential of its kind (so the next
	// authenticator may try), an *Error when the credential is invalid (401)
	// or cannot be checked now (503), or the identity. It must not modify r.
	Authenticate(r *http.Request) (*Identity, error)
}

// HeaderUser is implemented by authenticators that read a credential from a
// header other than Authorization. atlasgate_auth removes those headers once
// the request is authenticated, so the gateway's own credentials never travel
// further (to Atlassian, say).
type HeaderUser interface {
	CredentialHeaders() []string
}

// ErrNoCredential means the request carries no credential this authenticator
// understands.
var ErrNoCredential = errors.New("no credential of this kind")

// Error is an authentication failure. Status is 401 (the credential is
// invalid) or 503 (it could not be checked: never allow then). Code is the RFC
// 6750 error code for 401s (invalid_token, invalid_request) and
// `authentication_unavailable` for 503s. Description is sent to the client and
// must name no secret and leak no internals; Err is logged only.
type Error struct {
	Status      int
	Code        string
	Description string
	Err         error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Description, e.Err)
	}
	return e.Code + ": " + e.Description
}

func (e *Error) Unwrap() error { return e.Err }

// Invalid returns a 401 invalid_token error.
func Invalid(description string, err error) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Description: description, Err: err}
}

// BadRequest returns a 401 invalid_request error (a malformed credential).
func BadRequest(description string, err error) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "invalid_request", Description: description, Err: err}
}

// Unavailable returns a 503: the credential could not be checked (identity
// provider unreachable, slow or answering errors). Never treated as success.
func Unavailable(description string, err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "authentication_unavailable", Description: description, Err: err}
}

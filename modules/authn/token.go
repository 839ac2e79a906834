package authn

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// MaxTokenLength bounds the credentials the gateway looks at. Real access
// tokens are a few KiB at most; anything larger is refused before any parsing.
const MaxTokenLength = 16 << 10

// BearerToken returns the bearer token of r. It returns ErrNoCredential when
// there is no Authorization header or it uses another scheme, and an
// invalid_request *Error for a malformed or oversized one, or when the client
// sent more than one Authorization header (which one would a proxy use?).
func BearerToken(r *http.Request) (string, error) {
	scheme, value, err := authorization(r)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoCredential
	}
	if value == "" || strings.ContainsAny(value, " \t,") {
		return "", BadRequest("malformed bearer token", nil)
	}
	return value, nil
}

// BasicAuth returns the user and password of an HTTP Basic Authorization
// header, with the same rules as BearerToken.
func BasicAuth(r *http.Request) (user, password string, err error) {
	scheme, value, err := authorization(r)
	if err != nil {
		return "", "", err
	}
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", ErrNoCredential
	}
	raw, derr := base64.StdEncoding.DecodeString(value)
	if derr != nil {
		return "", "", BadRequest("malformed basic credentials", nil)
	}
	user, password, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", BadRequest("malformed basic credentials", nil)
	}
	return user, password, nil
}

func authorization(r *http.Request) (scheme, value string, err error) {
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", "", ErrNoCredential
	case len(values) > 1:
		return "", "", BadRequest("more than one Authorization header", nil)
	}
	h := values[0]
	if len(h) > MaxTokenLength+len("Bearer ") {
		return "", "", BadRequest("credential too large", nil)
	}
	scheme, value, _ = strings.Cut(strings.TrimSpace(h), " ")
	return scheme, strings.TrimSpace(value), nil
}

// TokenSource is where a token authenticator (jwt, introspection, userinfo)
// finds the caller's token besides `Authorization: Bearer`. SDKs such as
// jira.js, confluence.js and the Bitbucket clients always send their own
// (placeholder) Atlassian credentials in Authorization, so the caller's token
// has to travel in another header. Embedded in those modules' config.
type TokenSource struct {
	// TokenHeader is a request header that carries the caller's token:
	// `Proxy-Authorization` or a custom one such as `X-Atlasgate-Token`. It is
	// read before Authorization, and removed once the request is
	// authenticated. Default: none (Authorization only).
	TokenHeader string `json:"token_header,omitempty"`
	// TokenHeaderScheme is the scheme the header's value starts with
	// (`Bearer` for `Bearer <token>`). Default: `Bearer` for
	// Proxy-Authorization, none (the whole value is the token) for others.
	TokenHeaderScheme string `json:"token_header_scheme,omitempty"`
}

// ValidateTokenSource checks the header options.
func (s TokenSource) ValidateTokenSource() error {
	return ValidateHeader("token_header", s.TokenHeader)
}

// ValidateHeader checks the name of a credential header option.
func ValidateHeader(field, name string) error {
	switch {
	case name == "":
		return nil
	case strings.EqualFold(name, "Authorization"):
		return fmt.Errorf("%s: Authorization is always read; name another header (Proxy-Authorization or your own)", field)
	case !httpguts.ValidHeaderFieldName(name):
		return fmt.Errorf("%s: %q is not a valid header name", field, name)
	}
	return nil
}

// Token returns the caller's token: from TokenHeader when the request has it,
// else `Authorization: Bearer`.
func (s TokenSource) Token(r *http.Request) (string, error) {
	if s.TokenHeader != "" {
		token, err := HeaderToken(r, s.TokenHeader, s.TokenHeaderScheme)
		if !errors.Is(err, ErrNoCredential) {
			return token, err
		}
	}
	return BearerToken(r)
}

// CredentialHeaders implements HeaderUser.
func (s TokenSource) CredentialHeaders() []string {
	if s.TokenHeader == "" {
		return nil
	}
	return []string{s.TokenHeader}
}

// HeaderToken reads a token from a header other than Authorization: the
// whole value, or what follows `<scheme> ` when a scheme is given (Bearer by
// default for Proxy-Authorization). ErrNoCredential when the header is absent
// or uses another scheme (a Basic Proxy-Authorization meant for a proxy);
// invalid_request when it is repeated, oversized or malformed.
func HeaderToken(r *http.Request, name, scheme string) (string, error) {
	values := r.Header.Values(name)
	switch {
	case len(values) == 0:
		return "", ErrNoCredential
	case len(values) > 1:
		return "", BadRequest("more than one "+name+" header", nil)
	}
	v := strings.TrimSpace(values[0])
	if len(v) > MaxTokenLength+len(scheme)+1 {
		return "", BadRequest("credential too large", nil)
	}
	if scheme == "" && strings.EqualFold(name, "Proxy-Authorization") {
		scheme = "Bearer"
	}
	if scheme != "" {
		got, rest, _ := strings.Cut(v, " ")
		if !strings.EqualFold(got, scheme) {
			return "", ErrNoCredential
		}
		v = strings.TrimSpace(rest)
	}
	if v == "" {
		return "", ErrNoCredential
	}
	if strings.ContainsAny(v, " \t,") {
		return "", BadRequest("malformed token in "+name, nil)
	}
	return v, nil
}

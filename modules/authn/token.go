package authn

import (
	"encoding/base64"
	"net/http"
	"strings"
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

package jwt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// maxHeaderLength bounds the encoded JOSE header. Real headers (alg, kid, typ,
// x5t) are well under 300 characters.
const maxHeaderLength = 1024

// Client-facing descriptions. They name the failed check and nothing of the
// token, its claims or the gateway's internals.
const (
	errMalformed   = "malformed token"
	errEncrypted   = "encrypted tokens are not accepted"
	errHeader      = "token header not accepted"
	errAlgorithm   = "token algorithm not accepted"
	errType        = "token type not accepted"
	errUnknownKey  = "token signing key unknown"
	errSignature   = "token signature invalid"
	errIssuer      = "token issuer not accepted"
	errAudience    = "token audience not accepted"
	errNoExpiry    = "token lacks an expiry"
	errExpired     = "token expired"
	errNotYetValid = "token not yet valid"
	errIssuedLater = "token issued in the future"
	errTooOld      = "token too old"
	errUsername    = "token lacks the username claim"
	errRequirement = "token claims not accepted"
	errUnavailable = "the token issuer's keys are unavailable"
)

// forbiddenHeaders carry or point to keys, or demand extensions. Keys come
// only from the issuer's JWKS, so a token that brings its own is refused
// outright rather than having the header ignored.
var forbiddenHeaders = map[string]string{
	"jwk": errHeader, "jku": errHeader, "x5u": errHeader, "x5c": errHeader, "crit": errHeader,
	"enc": errEncrypted, "zip": errEncrypted, "b64": errHeader,
}

// verify checks a token and returns the identity and how long it may be
// cached. Errors are *authn.Error or authn.ErrNoCredential.
func (j *JWT) verify(ctx context.Context, token string) (*authn.Identity, *jose.JSONWebKey, time.Time, error) {
	var key *jose.JSONWebKey
	id, until, err := j.verifyWith(ctx, token, &key)
	return id, key, until, err
}

// verifyWith is verify; it sets *key to the key that verified the signature.
func (j *JWT) verifyWith(ctx context.Context, token string, key **jose.JSONWebKey) (*authn.Identity, time.Time, error) {
	var zero time.Time
	switch dots := strings.Count(token, "."); dots {
	case 2:
	case 0:
		// An opaque token: another authenticator (introspection) may know it.
		return nil, zero, authn.ErrNoCredential
	case 4:
		return nil, zero, authn.Invalid(errEncrypted, nil)
	default:
		return nil, zero, authn.Invalid(errMalformed, nil)
	}
	for i := 0; i < len(token); i++ {
		if !isBase64URL(token[i]) && token[i] != '.' {
			return nil, zero, authn.Invalid(errMalformed, nil)
		}
	}
	encHeader, rest, _ := strings.Cut(token, ".")
	// Route by the (not yet verified) issuer: a token of another issuer is
	// not this authenticator's to judge, so another may take it — and a token
	// that is ours is never handed on to a later authenticator. The claim
	// decides nothing else until the signature is verified.
	if encPayload, _, _ := strings.Cut(rest, "."); !j.mayBeOurs(encPayload) {
		return nil, zero, authn.ErrNoCredential
	}
	if len(encHeader) > maxHeaderLength {
		return nil, zero, authn.Invalid(errHeader, errors.New("header too large"))
	}
	alg, kid, err := j.checkHeader(encHeader)
	if err != nil {
		return nil, zero, err
	}
	jws, err := jose.ParseSignedCompact(token, j.joseAlgs)
	if err != nil {
		return nil, zero, authn.Invalid(errMalformed, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, zero, authn.Invalid(errMalformed, errors.New("not exactly one signature"))
	}
	keys, err := j.keys.lookup(ctx, kid, alg)
	if err != nil {
		return nil, zero, err
	}
	var payload []byte
	for i := range keys {
		if payload, err = jws.Verify(keys[i].Key); err == nil {
			*key = &keys[i]
			break
		}
	}
	if payload == nil {
		return nil, zero, authn.Invalid(errSignature, err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil || dec.More() {
		return nil, zero, authn.Invalid(errMalformed, errors.New("claims are not a JSON object"))
	}
	return j.checkClaims(claims)
}

// mayBeOurs reports whether the unverified payload names this issuer. A
// payload that cannot be decoded is ours to refuse (a malformed JWT).
func (j *JWT) mayBeOurs(encPayload string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(encPayload)
	if err != nil {
		return true
	}
	var peek struct {
		Iss json.RawMessage `json:"iss"`
	}
	if json.Unmarshal(raw, &peek) != nil {
		return true
	}
	var iss string
	return json.Unmarshal(peek.Iss, &iss) == nil && iss == j.Issuer
}

// checkHeader decodes the JOSE header and applies the rules go-jose leaves to
// the application: no embedded or referenced keys, no extensions, an allowed
// algorithm and type.
func (j *JWT) checkHeader(enc string) (alg, kid string, err error) {
	raw, derr := base64.RawURLEncoding.DecodeString(enc)
	if derr != nil {
		return "", "", authn.Invalid(errMalformed, derr)
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(raw, &h); err != nil || h == nil {
		return "", "", authn.Invalid(errMalformed, errors.New("header is not a JSON object"))
	}
	for name := range h {
		if desc, bad := forbiddenHeaders[name]; bad {
			return "", "", authn.Invalid(desc, errors.New("forbidden header "+name))
		}
	}
	if err := stringHeader(h, "alg", &alg); err != nil || alg == "" {
		return "", "", authn.Invalid(errMalformed, errors.New("header alg missing or not a string"))
	}
	if !slices.Contains(j.algs, alg) {
		return "", "", authn.Invalid(errAlgorithm, errors.New("algorithm "+safeValue(alg)+" not allowed"))
	}
	if err := stringHeader(h, "kid", &kid); err != nil {
		return "", "", authn.Invalid(errMalformed, err)
	}
	if len(j.TokenTypes) > 0 {
		var typ string
		if err := stringHeader(h, "typ", &typ); err != nil || !typeAccepted(j.TokenTypes, typ) {
			return "", "", authn.Invalid(errType, nil)
		}
	}
	return alg, kid, nil
}

func stringHeader(h map[string]json.RawMessage, name string, dst *string) error {
	v, ok := h[name]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return errors.New("header " + name + " is not a string")
	}
	return nil
}

// typeAccepted compares media types as RFC 7515 §4.1.9 says: case-insensitive,
// with an optional `application/` prefix.
func typeAccepted(accepted []string, typ string) bool {
	norm := func(s string) string {
		s = strings.ToLower(s)
		return strings.TrimPrefix(s, "application/")
	}
	for _, a := range accepted {
		if norm(a) == norm(typ) && typ != "" {
			return true
		}
	}
	return false
}

func isBase64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// safeValue shortens an attacker-supplied value for a log line.
func safeValue(s string) string {
	if len(s) > 16 {
		s = s[:16] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

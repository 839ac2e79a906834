package jwt

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// ClaimRequirement is a claim a token must carry with one of the values.
type ClaimRequirement struct {
	// The claim, a dotted path for nested objects (e.g. `repository`,
	// `kubernetes.io.namespace`).
	Claim string `json:"claim,omitempty"`
	// Accepted values. A value ending in `*` matches every value with that
	// prefix (`refs/heads/*`); others match exactly. When the claim is an
	// array, one element must match.
	Values []string `json:"values,omitempty"`
}

type requirement struct {
	claim  string
	values []string
}

func compileRequirements(rs []ClaimRequirement) ([]requirement, error) {
	out := make([]requirement, 0, len(rs))
	for _, r := range rs {
		if r.Claim == "" || len(r.Values) == 0 {
			return nil, errors.New("require_claims: each needs a claim and at least one value")
		}
		for _, v := range r.Values {
			if v == "" || v == "*" {
				return nil, fmt.Errorf("require_claims: %q: value %q would match anything", r.Claim, v)
			}
		}
		out = append(out, requirement{claim: r.Claim, values: r.Values})
	}
	return out, nil
}

func (r requirement) matches(claims map[string]any) bool {
	v, ok := lookup(claims, r.claim)
	if !ok {
		return false
	}
	for _, s := range stringValues(v) {
		for _, want := range r.values {
			if prefix, glob := strings.CutSuffix(want, "*"); glob && strings.HasPrefix(s, prefix) || s == want {
				return true
			}
		}
	}
	return false
}

// checkClaims validates the registered claims and maps the token to an
// identity; the returned time bounds how long the result may be cached.
func (j *JWT) checkClaims(claims map[string]any) (*authn.Identity, time.Time, error) {
	var zero time.Time
	t := now()
	if iss, _ := claims["iss"].(string); iss != j.Issuer {
		return nil, zero, authn.Invalid(errIssuer, nil)
	}
	if !j.audienceAccepted(claims) {
		return nil, zero, authn.Invalid(errAudience, nil)
	}
	exp, ok, err := numericDate(claims, "exp")
	if err != nil || !ok {
		// Without exp a stolen token would be valid forever.
		return nil, zero, authn.Invalid(errNoExpiry, err)
	}
	if !t.Before(exp.Add(j.leeway)) {
		return nil, zero, authn.Invalid(errExpired, nil)
	}
	nbf, ok, err := numericDate(claims, "nbf")
	if err != nil {
		return nil, zero, authn.Invalid(errMalformed, err)
	}
	if ok && t.Add(j.leeway).Before(nbf) {
		return nil, zero, authn.Invalid(errNotYetValid, nil)
	}
	iat, hasIat, err := numericDate(claims, "iat")
	if err != nil {
		return nil, zero, authn.Invalid(errMalformed, err)
	}
	if hasIat && t.Add(j.leeway).Before(iat) {
		return nil, zero, authn.Invalid(errIssuedLater, nil)
	}
	until := exp
	if j.maxAge > 0 {
		if !hasIat {
			return nil, zero, authn.Invalid(errTooOld, errors.New("no iat"))
		}
		limit := iat.Add(j.maxAge + j.leeway)
		if !t.Before(limit) {
			return nil, zero, authn.Invalid(errTooOld, nil)
		}
		until = minTime(until, limit)
	}
	for _, r := range j.requirements {
		if !r.matches(claims) {
			return nil, zero, authn.Invalid(errRequirement, errors.New("claim "+r.claim+" does not match"))
		}
	}
	user := j.username(claims)
	if user == "" {
		return nil, zero, authn.Invalid(errUsername, nil)
	}
	sub, _ := claims["sub"].(string)
	id := &authn.Identity{
		Kind:      "jwt",
		User:      user,
		Subject:   sub,
		Issuer:    j.Issuer,
		Groups:    j.groups(claims),
		Scopes:    scopes(claims),
		Claims:    claims,
		ExpiresAt: exp,
	}
	return id, until, nil
}

func (j *JWT) audienceAccepted(claims map[string]any) bool {
	aud, ok := claims["aud"]
	if !ok && j.AudienceFallbackClaim != "" {
		aud, ok = claims[j.AudienceFallbackClaim]
		if _, isString := aud.(string); !isString {
			return false
		}
	}
	if !ok {
		return false
	}
	var got []string
	switch v := aud.(type) {
	case string:
		got = []string{v}
	case []any:
		for _, e := range v {
			s, isString := e.(string)
			if !isString {
				return false
			}
			got = append(got, s)
		}
	default:
		return false
	}
	for _, g := range got {
		for _, want := range j.Audiences {
			if g == want {
				return true
			}
		}
	}
	return false
}

// username is the first non-empty string among the username claims.
func (j *JWT) username(claims map[string]any) string {
	for i := -1; i < len(j.UsernameFallbackClaims); i++ {
		path := j.UsernameClaim
		if i >= 0 {
			path = j.UsernameFallbackClaims[i]
		}
		v, _ := lookup(claims, path)
		switch v := v.(type) {
		case string:
			if v != "" {
				return v
			}
		case json.Number:
			return v.String()
		}
	}
	return ""
}

func (j *JWT) groups(claims map[string]any) []string {
	var out []string
	for _, path := range j.GroupsClaim {
		if v, ok := lookup(claims, path); ok {
			out = append(out, stringValues(v)...)
		}
	}
	return out
}

// scopes reads `scp` (Entra, Okta: a space-separated string or an array) or
// `scope` (RFC 9068, Keycloak, Cognito).
func scopes(claims map[string]any) []string {
	for _, name := range []string{"scp", "scope"} {
		switch v := claims[name].(type) {
		case string:
			return strings.Fields(v)
		case []any:
			return stringValues(v)
		}
	}
	return nil
}

// lookup finds a claim by path. A claim whose name contains dots
// (`kubernetes.io`) is found before the path is split at a dot.
func lookup(m map[string]any, path string) (any, bool) {
	if v, ok := m[path]; ok {
		return v, true
	}
	for i := 0; i < len(path); i++ {
		if path[i] != '.' {
			continue
		}
		if sub, ok := m[path[:i]].(map[string]any); ok {
			if v, ok := lookup(sub, path[i+1:]); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// stringValues returns a string claim, or the string elements of an array
// claim; numbers and booleans are given in their JSON form.
func stringValues(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case json.Number:
		return []string{v.String()}
	case bool:
		return []string{fmt.Sprint(v)}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			switch e := e.(type) {
			case string:
				out = append(out, e)
			case json.Number:
				out = append(out, e.String())
			}
		}
		return out
	}
	return nil
}

// numericDate reads a NumericDate claim (seconds since the epoch, possibly
// fractional). A claim of another type is an error, not absent.
func numericDate(claims map[string]any, name string) (time.Time, bool, error) {
	v, ok := claims[name]
	if !ok {
		return time.Time{}, false, nil
	}
	n, isNumber := v.(json.Number)
	if !isNumber {
		return time.Time{}, false, fmt.Errorf("claim %s is not a number", name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, false, fmt.Errorf("claim %s is out of range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

package jwt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// attackCase builds a token for the test issuer and names the answer.
type attackCase struct {
	name  string
	token func(t testing.TB, is *issuer) string
	// want is the client-facing description; "" means the token is accepted.
	want   string
	status int
}

func attackCases() []attackCase {
	in := func(d time.Duration) int64 { return clock.Now().Add(d).Unix() }
	signed := func(k func() testKey, over map[string]any, hdr map[string]any) func(testing.TB, *issuer) string {
		return func(t testing.TB, is *issuer) string { return sign(t, k(), is.claims(over), hdr) }
	}
	attackerKey := func() testKey {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return testKey{kid: "attacker", alg: "ES256", priv: k}
	}
	return []attackCase{
		{name: "valid", token: signed(rs256, nil, nil)},
		{name: "alg none", want: errAlgorithm, token: signed(rs256, nil, map[string]any{"alg": "none"})},
		{name: "alg None", want: errAlgorithm, token: signed(rs256, nil, map[string]any{"alg": "None"})},
		{name: "alg lowercase rs256", want: errAlgorithm, token: func(t testing.TB, is *issuer) string {
			tok := sign(t, rs256(), is.claims(nil), nil)
			parts := strings.Split(tok, ".")
			hb, _ := json.Marshal(map[string]any{"alg": "rs256", "kid": "rsa-1"})
			return b64(hb) + "." + parts[1] + "." + parts[2]
		}},
		{name: "HS256 keyed with the RSA public key", want: errAlgorithm, token: signed(rs256, nil, map[string]any{"alg": "HS256"})},
		{name: "alg not in allowed list (ES256 signed by a JWKS key)", want: errAlgorithm, token: signed(es256, nil, nil)},
		{name: "embedded jwk", want: errHeader, token: func(t testing.TB, is *issuer) string {
			k := attackerKey()
			return sign(t, k, is.claims(nil), map[string]any{"jwk": k.jwk()})
		}},
		{name: "embedded jwk with a valid issuer signature", want: errHeader,
			token: signed(rs256, nil, map[string]any{"jwk": map[string]any{"kty": "oct", "k": "AAAA"}})},
		{name: "jku", want: errHeader, token: signed(rs256, nil, map[string]any{"jku": "https://attacker.example/keys"})},
		{name: "x5u", want: errHeader, token: signed(rs256, nil, map[string]any{"x5u": "https://attacker.example/cert.pem"})},
		{name: "x5c", want: errHeader, token: signed(rs256, nil, map[string]any{"x5c": []string{"MIIB"}})},
		{name: "crit", want: errHeader, token: signed(rs256, nil, map[string]any{"crit": []string{"exp"}, "exp": 1})},
		{name: "b64 false", want: errHeader, token: signed(rs256, nil, map[string]any{"b64": false})},
		{name: "x5t is a hint, not a key: accepted", token: signed(rs256, nil, map[string]any{"x5t": "abc"})},
		{name: "signed by another key with the same kid", want: errSignature, token: signed(stranger, nil, nil)},
		{name: "payload swapped after signing", want: errSignature, token: func(t testing.TB, is *issuer) string {
			tok := sign(t, rs256(), is.claims(nil), nil)
			evil, _ := json.Marshal(is.claims(map[string]any{"sub": "admin"}))
			parts := strings.Split(tok, ".")
			return parts[0] + "." + b64(evil) + "." + parts[2]
		}},
		{name: "signature stripped", want: errSignature, token: func(t testing.TB, is *issuer) string {
			tok := sign(t, rs256(), is.claims(nil), nil)
			return tok[:strings.LastIndex(tok, ".")+1]
		}},
		{name: "unknown kid", want: errUnknownKey, token: signed(rotated, nil, nil)},
		{name: "kid not a string", want: errMalformed, token: signed(rs256, nil, map[string]any{"kid": 7})},
		{name: "expired", want: errExpired, token: signed(rs256, map[string]any{"exp": in(-2 * time.Hour), "iat": in(-3 * time.Hour), "nbf": nil}, nil)},
		{name: "expired within leeway: accepted", token: signed(rs256, map[string]any{"exp": in(-30 * time.Second)}, nil)},
		{name: "no exp", want: errNoExpiry, token: signed(rs256, map[string]any{"exp": nil}, nil)},
		{name: "exp not a number", want: errNoExpiry, token: signed(rs256, map[string]any{"exp": "tomorrow"}, nil)},
		{name: "nbf in the future", want: errNotYetValid, token: signed(rs256, map[string]any{"nbf": in(10 * time.Minute)}, nil)},
		{name: "nbf within leeway: accepted", token: signed(rs256, map[string]any{"nbf": in(30 * time.Second)}, nil)},
		{name: "iat in the future", want: errIssuedLater, token: signed(rs256, map[string]any{"iat": in(10 * time.Minute)}, nil)},
		// Another issuer's token (or one naming none) is not this
		// authenticator's: it answers "not mine", and atlasgate_auth refuses
		// the token when no authenticator claims it.
		{name: "wrong iss", want: notOurs, token: signed(rs256, map[string]any{"iss": "https://evil.example"}, nil)},
		{name: "iss with trailing slash", want: notOurs, token: func(t testing.TB, is *issuer) string {
			return sign(t, rs256(), is.claims(map[string]any{"iss": is.URL() + "/"}), nil)
		}},
		{name: "no iss", want: notOurs, token: signed(rs256, map[string]any{"iss": nil}, nil)},
		{name: "iss not a string", want: notOurs, token: signed(rs256, map[string]any{"iss": 42}, nil)},
		{name: "wrong aud", want: errAudience, token: signed(rs256, map[string]any{"aud": "other-app"}, nil)},
		{name: "no aud", want: errAudience, token: signed(rs256, map[string]any{"aud": nil}, nil)},
		{name: "aud array without ours", want: errAudience, token: signed(rs256, map[string]any{"aud": []string{"a", "b"}}, nil)},
		{name: "aud array with ours: accepted", token: signed(rs256, map[string]any{"aud": []string{"a", testAudience}}, nil)},
		{name: "aud of the wrong type", want: errAudience, token: signed(rs256, map[string]any{"aud": map[string]any{"x": testAudience}}, nil)},
		{name: "dot-bomb", want: errMalformed, token: func(testing.TB, *issuer) string { return strings.Repeat("a.", 5000) }},
		{name: "huge header", want: errHeader, token: signed(rs256, nil, map[string]any{"pad": strings.Repeat("x", 4000)})},
		{name: "2 segments", want: errMalformed, token: func(t testing.TB, is *issuer) string {
			tok := sign(t, rs256(), is.claims(nil), nil)
			return tok[:strings.LastIndex(tok, ".")]
		}},
		{name: "4 segments", want: errMalformed, token: func(t testing.TB, is *issuer) string {
			return sign(t, rs256(), is.claims(nil), nil) + ".AAAA"
		}},
		{name: "JWE (5 segments)", want: errEncrypted, token: func(testing.TB, *issuer) string {
			hb, _ := json.Marshal(map[string]any{"alg": "RSA-OAEP", "enc": "A256GCM"})
			return b64(hb) + ".AAAA.AAAA.AAAA.AAAA"
		}},
		{name: "enc header in a JWS", want: errEncrypted, token: signed(rs256, nil, map[string]any{"enc": "A256GCM"})},
		{name: "not base64url", want: errMalformed, token: func(testing.TB, *issuer) string { return "eyJ!.eyJ.sig" }},
		{name: "header not an object", want: errMalformed, token: func(_ testing.TB, is *issuer) string {
			return b64([]byte(`["RS256"]`)) + "." + ourPayload(is) + ".AAAA"
		}},
		{name: "header not JSON", want: errMalformed, token: func(_ testing.TB, is *issuer) string { return b64([]byte(`{alg`)) + "." + ourPayload(is) + ".AAAA" }},
		{name: "claims not an object", want: errMalformed, token: func(t testing.TB, is *issuer) string {
			hb, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "rsa-1"})
			input := b64(hb) + "." + b64([]byte(`["sub"]`))
			return input + "." + b64(signature(t, "RS256", rs256(), []byte(input)))
		}},
		{name: "oversized token", want: "credential too large", status: 401, token: func(t testing.TB, is *issuer) string {
			return sign(t, rs256(), is.claims(map[string]any{"pad": strings.Repeat("x", authn.MaxTokenLength)}), nil)
		}},
	}
}

// ourPayload is a claims segment naming the test issuer, so that the token is
// this authenticator's to judge.
func ourPayload(is *issuer) string { return b64([]byte(`{"iss":"` + is.URL() + `"}`)) }

// notOurs marks a token this authenticator must leave to others.
const notOurs = "(another issuer's token)"

// allDescriptions are the only texts a client may see.
var allDescriptions = []string{errMalformed, errEncrypted, errHeader, errAlgorithm, errType, errUnknownKey, errSignature,
	errIssuer, errAudience, errNoExpiry, errExpired, errNotYetValid, errIssuedLater, errTooOld, errUsername, errRequirement,
	errUnavailable, "credential too large"}

func TestAttacks(t *testing.T) {
	is := newIssuer(t, rs256(), es256())
	j := newAuth(t, is, nil)
	for _, tc := range attackCases() {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token(t, is)
			id, err := j.Authenticate(bearer(tok))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if id != nil {
				t.Fatalf("accepted as %+v", id)
			}
			if tc.want == notOurs {
				if !errors.Is(err, authn.ErrNoCredential) {
					t.Fatalf("got %v, want: not this authenticator's token", err)
				}
				return
			}
			if errors.Is(err, authn.ErrNoCredential) {
				t.Fatalf("treated as no credential")
			}
			ae := authErr(t, err)
			if ae.Description != tc.want || ae.Status != 401 {
				t.Fatalf("got %d %q, want 401 %q (%v)", ae.Status, ae.Description, tc.want, err)
			}
			safe := false
			for _, d := range allDescriptions {
				safe = safe || ae.Description == d
			}
			if !safe || (len(tok) > 8 && strings.Contains(err.Error(), tok[len(tok)-8:])) {
				t.Errorf("error leaks: %v", err)
			}
		})
	}
}

// The dot-bomb and other malformed inputs are refused without real work.
func TestMalformedIsCheap(t *testing.T) {
	is := newIssuer(t, rs256())
	j := newAuth(t, is, nil)
	bomb := strings.Repeat(".", authn.MaxTokenLength)
	r := bearer("")
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = j.authenticate(r, bomb)
	})
	if allocs > 5 {
		t.Errorf("a dot-bomb costs %v allocations", allocs)
	}
}

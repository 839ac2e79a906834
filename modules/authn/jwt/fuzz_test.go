package jwt

import (
	"context"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzParse feeds arbitrary tokens to the verifier: it must never panic, and
// whatever it accepts must carry a valid signature of the issuer's key.
func FuzzParse(f *testing.F) {
	is := newIssuer(f, rs256(), es256(), eddsa())
	j := newAuth(f, is, func(j *JWT) { j.Algorithms = []string{"RS256", "PS256", "ES256", "EdDSA"} })
	for _, k := range []testKey{rs256(), ps256(), es256(), eddsa()} {
		f.Add(sign(f, k, is.claims(nil), nil))
	}
	for _, tc := range attackCases() {
		if tc.name == "oversized token" {
			continue
		}
		f.Add(tc.token(f, is))
	}
	pubs := []any{rsaKey.Public(), ecKey.Public(), edKey.Public()}
	f.Fuzz(func(t *testing.T, token string) {
		id, _, _, err := j.verify(context.Background(), token)
		if err != nil {
			return
		}
		if id == nil {
			t.Fatal("no error and no identity")
		}
		jws, perr := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA})
		if perr != nil {
			t.Fatalf("accepted a token go-jose cannot parse: %v", perr)
		}
		for _, pub := range pubs {
			if _, verr := jws.Verify(pub); verr == nil {
				return
			}
		}
		t.Fatalf("accepted a token not signed by the issuer's keys")
	})
}

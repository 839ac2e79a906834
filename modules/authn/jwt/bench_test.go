package jwt

import (
	"context"
	"testing"
)

// BenchmarkAuthenticate measures a request whose token is in the verified
// cache, and the full verification (header checks, RS256 signature, claims)
// that a cache miss costs.
func BenchmarkAuthenticate(b *testing.B) {
	is := newIssuer(b, rs256())
	j := newAuth(b, is, nil)
	tok := sign(b, rs256(), is.claims(map[string]any{"groups": []string{"dev"}, "scp": "read write"}), nil)
	r := bearer(tok)
	if _, err := j.Authenticate(r); err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := j.Authenticate(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		for b.Loop() {
			if _, _, _, err := j.verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package apikey

import (
	"testing"
)

// BenchmarkAuthenticate measures the request path: a cached key, a key read
// from file storage (the cache disabled by advancing the clock), and a forged
// key refused by its checksum.
func BenchmarkAuthenticate(b *testing.B) {
	f := newFixture(b, APIKey{})
	key := f.create(b, CreateRequest{Owner: "bench"}).Key
	forged := key[:41] + "!"
	b.Run("cached", func(b *testing.B) {
		r := bearer(key)
		for b.Loop() {
			if _, err := f.a.Authenticate(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("storage", func(b *testing.B) {
		r := bearer(key)
		for b.Loop() {
			f.clock.advance(cacheTTL)
			if _, err := f.a.Authenticate(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bad checksum", func(b *testing.B) {
		r := bearer(forged)
		for b.Loop() {
			if _, err := f.a.Authenticate(r); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}

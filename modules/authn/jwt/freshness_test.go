package jwt

import (
	"net/http"
	"testing"
	"time"
)

func TestMaxAgeAndRefreshInterval(t *testing.T) {
	cfg := sourceConfig{refresh: 5 * time.Minute, minRefetch: 5 * time.Second}
	cases := []struct {
		cacheControl string
		want         time.Duration
	}{
		{"", 5 * time.Minute},
		{"public, max-age=60", time.Minute},
		{"max-age=\"120\", must-revalidate", 2 * time.Minute},
		{"max-age=1", 5 * time.Second},     // never below jwks_min_refetch
		{"max-age=86400", 5 * time.Minute}, // never beyond jwks_refresh
		{"no-store", 5 * time.Minute},      // would mean a fetch per request
		{"max-age=60, no-cache", 5 * time.Minute},
		{"max-age=-1", 5 * time.Minute},
		{"max-age=soon", 5 * time.Minute},
		{"max-age=99999999999999", 5 * time.Minute},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.cacheControl != "" {
			h.Set("Cache-Control", c.cacheControl)
		}
		if got := cfg.nextRefresh(maxAge(h)); got != c.want {
			t.Errorf("Cache-Control %q: refresh in %s, want %s", c.cacheControl, got, c.want)
		}
	}
}

// A token verified while its key was published is refused once the issuer
// has withdrawn the key, although the token is still in the verified-token
// cache; tokens of the keys that remain stay cached.
func TestWithdrawnKeyEndsCachedTokens(t *testing.T) {
	is := newIssuer(t, rs256(), rotated())
	j := newAuth(t, is, nil)
	old := sign(t, rs256(), is.claims(nil), nil)
	current := sign(t, rotated(), is.claims(nil), nil)
	for _, tok := range []string{old, current} {
		if _, err := j.Authenticate(bearer(tok)); err != nil {
			t.Fatal(err)
		}
	}
	is.setKeys(rotated())
	clock.Advance(6 * time.Second)
	j.keys.refetch(true)
	_, err := j.Authenticate(bearer(old))
	if ae := authErr(t, err); ae.Description != errUnknownKey {
		t.Fatalf("cached token of a withdrawn key: %v, want %q", err, errUnknownKey)
	}
	hits := is.jwksHits.Load()
	for range 3 {
		if _, err := j.Authenticate(bearer(current)); err != nil {
			t.Fatalf("token of the remaining key: %v", err)
		}
	}
	if n := is.jwksHits.Load() - hits; n != 0 {
		t.Errorf("the remaining key's cached token caused %d fetches", n)
	}
}

// The defaults pick up a new key within seconds: a token with an unknown kid
// refetches once jwks_min_refetch (5 s) has passed since the last fetch.
func TestDefaultsPickUpNewKeyQuickly(t *testing.T) {
	is := newIssuer(t, rs256())
	j := newAuth(t, is, nil)
	if j.keys.cfg.minRefetch != 5*time.Second || j.keys.cfg.refresh != 5*time.Minute {
		t.Fatalf("defaults: min refetch %s, refresh %s", j.keys.cfg.minRefetch, j.keys.cfg.refresh)
	}
	is.setKeys(rs256(), rotated())
	clock.Advance(5 * time.Second)
	if _, err := j.Authenticate(bearer(sign(t, rotated(), is.claims(nil), nil))); err != nil {
		t.Fatalf("token of the new key 5 s after the last fetch: %v", err)
	}
}

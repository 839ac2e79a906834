package jwt

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// Tokens with made-up key ids cannot make the gateway hammer the issuer.
func TestUnknownKidSprayIsRateLimited(t *testing.T) {
	is := newIssuer(t, rs256())
	j := newAuth(t, is, nil)
	if n := is.jwksHits.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches at start, want 1", n)
	}
	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := rs256()
			k.kid = fmt.Sprintf("spray-%d", i)
			_, err := j.Authenticate(bearer(sign(t, k, is.claims(nil), nil)))
			if ae, ok := err.(*authn.Error); !ok || ae.Description != errUnknownKey {
				t.Errorf("sprayed kid: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := is.jwksHits.Load(); n > 2 {
		t.Errorf("1000 unknown kids caused %d JWKS fetches", n)
	}
	// Once the limit has passed, one more refetch, then quiet again.
	clock.Advance(31 * time.Second)
	for i := 0; i < 100; i++ {
		k := rs256()
		k.kid = fmt.Sprintf("late-%d", i)
		_, _ = j.Authenticate(bearer(sign(t, k, is.claims(nil), nil)))
	}
	if n := is.jwksHits.Load(); n > 3 {
		t.Errorf("%d JWKS fetches after the limit passed, want at most one more", n)
	}
}

// An issuer that cannot be reached and no keys: 503, never allow.
func TestIssuerDownAtStart(t *testing.T) {
	is := newIssuer(t, rs256())
	is.srv.Close()
	j := newAuth(t, is, nil)
	_, err := j.Authenticate(bearer(sign(t, rs256(), is.claims(nil), nil)))
	if ae := authErr(t, err); ae.Status != http.StatusServiceUnavailable || ae.Code != "authentication_unavailable" {
		t.Fatalf("err = %v, want 503", err)
	}
	// Still 503 after the refetch limit, when the issuer still fails.
	clock.Advance(31 * time.Second)
	_, err = j.Authenticate(bearer(sign(t, rs256(), is.claims(nil), nil)))
	if ae := authErr(t, err); ae.Status != http.StatusServiceUnavailable {
		t.Fatalf("err = %v, want 503", err)
	}
}

// A failed refresh keeps the known keys.
func TestIssuerDownAfterFetchKeepsKeys(t *testing.T) {
	is := newIssuer(t, rs256())
	j := newAuth(t, is, nil)
	is.down.Store(true)
	clock.Advance(31 * time.Second)
	j.keys.refetch(true)
	if j.keys.lastErr == nil {
		t.Fatal("the refresh against a down issuer did not fail")
	}
	if _, err := j.Authenticate(bearer(sign(t, rs256(), is.claims(map[string]any{"sub": "new"}), nil))); err != nil {
		t.Fatalf("token of a known key refused while the issuer is down: %v", err)
	}
	// A key we could not fetch: unavailable, not invalid.
	_, err := j.Authenticate(bearer(sign(t, rotated(), is.claims(nil), nil)))
	if ae := authErr(t, err); ae.Status != http.StatusServiceUnavailable {
		t.Fatalf("unknown kid while the issuer is down: %v", err)
	}
}

// A key the issuer adds is accepted after one refetch.
func TestKeyRotation(t *testing.T) {
	is := newIssuer(t, rs256())
	j := newAuth(t, is, nil)
	is.setKeys(rs256(), rotated())
	clock.Advance(31 * time.Second)
	if _, err := j.Authenticate(bearer(sign(t, rotated(), is.claims(nil), nil))); err != nil {
		t.Fatalf("token of the rotated key refused: %v", err)
	}
	if n := is.jwksHits.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2", n)
	}
	// The old key is withdrawn: gone after the next refresh.
	is.setKeys(rotated())
	clock.Advance(31 * time.Second)
	j.keys.refetch(true)
	_, err := j.Authenticate(bearer(sign(t, rs256(), is.claims(map[string]any{"sub": "x"}), nil)))
	if ae := authErr(t, err); ae.Description != errUnknownKey {
		t.Fatalf("token of a withdrawn key: %v", err)
	}
}

// Two configs of the same issuer (a reload) share the keys; the old config's
// cleanup neither drops them nor triggers a fetch.
func TestReloadSharesKeys(t *testing.T) {
	is := newIssuer(t, rs256())
	old, err := provision(is, nil)
	must(t, err)
	<-old.keys.ready
	fresh := newAuth(t, is, nil)
	if fresh.keys != old.keys {
		t.Fatal("the new config got its own key source")
	}
	must(t, old.Cleanup())
	must(t, old.Cleanup()) // a second cleanup must not release the new config's reference
	if refs, _ := keySources.References(fresh.keys.poolID); refs != 1 {
		t.Fatalf("%d references to the key source, want 1", refs)
	}
	if _, err := fresh.Authenticate(bearer(sign(t, rs256(), is.claims(nil), nil))); err != nil {
		t.Fatal(err)
	}
	if n := is.jwksHits.Load(); n != 1 {
		t.Errorf("%d JWKS fetches, want 1", n)
	}
	// The last user stops the background refresh.
	src := fresh.keys
	must(t, fresh.Cleanup())
	select {
	case <-src.done:
	case <-time.After(5 * time.Second):
		t.Fatal("background refresh still running after the last cleanup")
	}
	// Requests still in flight on the cleaned-up config keep working.
	if _, err := fresh.Authenticate(bearer(sign(t, rs256(), is.claims(map[string]any{"sub": "late"}), nil))); err != nil {
		t.Fatalf("after cleanup: %v", err)
	}
}

func TestExplicitJWKSURI(t *testing.T) {
	is := newIssuer(t, rs256())
	j := newAuth(t, is, func(j *JWT) { j.JWKSURI = is.URL() + "/keys" })
	if _, err := j.Authenticate(bearer(sign(t, rs256(), is.claims(nil), nil))); err != nil {
		t.Fatal(err)
	}
	if n := is.discovery.Load(); n != 0 {
		t.Errorf("discovery fetched %d times with jwks_uri set", n)
	}
}

// Discovery must name the configured issuer; keys the gateway cannot use are
// skipped.
func TestDiscoveryAndKeyFiltering(t *testing.T) {
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	var base string
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": base, "jwks_uri": base + "/keys"})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: weak.Public(), KeyID: "weak"},
			{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "oct"},
			{Key: rsaKey.Public(), KeyID: "enc", Use: "enc"},
			rs256().jwk(),
		}}
		b, _ := json.Marshal(set)
		// an unknown key type next to ours must not spoil the set
		b = append(b[:len(b)-2], []byte(`,{"kty":"XYZ","kid":"future"}]}`)...)
		_, _ = w.Write(b)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base = srv.URL
	is := &issuer{srv: srv}
	j := newAuth(t, is, nil)
	set := j.keys.set.Load()
	if set == nil || len(set.keys) != 1 || set.keys[0].KeyID != "rsa-1" {
		t.Fatalf("usable keys = %+v", set)
	}
	if _, err := j.Authenticate(bearer(sign(t, rs256(), is.claims(nil), nil))); err != nil {
		t.Fatal(err)
	}

	// An issuer mismatch in discovery leaves no keys: 503.
	other := newIssuer(t, rs256())
	j2 := newAuth(t, other, func(j *JWT) { j.Issuer = other.URL() + "/tenant" })
	_, err := j2.Authenticate(bearer(sign(t, rs256(), other.claims(map[string]any{"iss": other.URL() + "/tenant"}), nil)))
	if ae := authErr(t, err); ae.Status != http.StatusServiceUnavailable {
		t.Fatalf("err = %v, want 503", err)
	}
}

package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// clock is the fake time of every test: token times are relative to it and
// the JWKS refetch limit counts in it.
var clock fakeClock

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var epoch = time.Unix(1_800_000_000, 0)

func TestMain(m *testing.M) {
	clock.ns.Store(epoch.UnixNano())
	gclock.Set(clock.Now)
	os.Exit(m.Run())
}

// testKey is a signing key of the test issuer.
type testKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

var (
	keyOnce                  sync.Once
	rsaKey, rsaKey2, rsaKey3 *rsa.PrivateKey
	ecKey                    *ecdsa.PrivateKey
	edKey                    ed25519.PrivateKey
)

func keys() {
	keyOnce.Do(func() {
		rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048)
		rsaKey2, _ = rsa.GenerateKey(rand.Reader, 2048)
		rsaKey3, _ = rsa.GenerateKey(rand.Reader, 2048)
		ecKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		_, edKey, _ = ed25519.GenerateKey(rand.Reader)
	})
}

func rs256() testKey   { keys(); return testKey{kid: "rsa-1", alg: "RS256", priv: rsaKey} }
func ps256() testKey   { keys(); return testKey{kid: "rsa-1", alg: "PS256", priv: rsaKey} }
func es256() testKey   { keys(); return testKey{kid: "ec-1", alg: "ES256", priv: ecKey} }
func eddsa() testKey   { keys(); return testKey{kid: "ed-1", alg: "EdDSA", priv: edKey} }
func rotated() testKey { keys(); return testKey{kid: "rsa-2", alg: "RS256", priv: rsaKey2} }
func stranger() testKey {
	keys()
	return testKey{kid: "rsa-1", alg: "RS256", priv: rsaKey3} // same kid, not the issuer's key
}

func (k testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Use: "sig"}
}

// issuer is an httptest OpenID Provider: discovery and JWKS on 127.0.0.1.
type issuer struct {
	srv       *httptest.Server
	mu        sync.Mutex
	keys      []jose.JSONWebKey
	down      atomic.Bool
	jwksHits  atomic.Int64
	discovery atomic.Int64
}

func newIssuer(t testing.TB, ks ...testKey) *issuer {
	t.Helper()
	is := &issuer{}
	for _, k := range ks {
		is.keys = append(is.keys, k.jwk())
	}
	is.srv = httptest.NewServer(http.HandlerFunc(is.serve))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) URL() string { return is.srv.URL }

func (is *issuer) setKeys(ks ...testKey) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = nil
	for _, k := range ks {
		is.keys = append(is.keys, k.jwk())
	}
}

func (is *issuer) serve(w http.ResponseWriter, r *http.Request) {
	if is.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		is.discovery.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.URL(), "jwks_uri": is.URL() + "/keys"})
	case "/keys":
		is.jwksHits.Add(1)
		is.mu.Lock()
		set := jose.JSONWebKeySet{Keys: is.keys}
		is.mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}

const testAudience = "atlasgate"

// claims returns valid claims of the test issuer, with overrides.
func (is *issuer) claims(over map[string]any) map[string]any {
	t := clock.Now()
	c := map[string]any{
		"iss": is.URL(), "aud": testAudience, "sub": "user-1",
		"iat": t.Unix(), "nbf": t.Unix(), "exp": t.Add(time.Hour).Unix(),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign builds a compact JWS by hand, so that tests control every header.
// Extra header entries override the defaults; a nil value removes one.
func sign(t testing.TB, k testKey, claims map[string]any, extra map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": k.alg, "kid": k.kid, "typ": "JWT"}
	for name, v := range extra {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(claims)
	input := b64(hb) + "." + b64(cb)
	alg, _ := h["alg"].(string)
	return input + "." + b64(signature(t, alg, k, []byte(input)))
}

func signature(t testing.TB, alg string, k testKey, input []byte) []byte {
	t.Helper()
	digest := sha256.Sum256(input)
	switch alg {
	case "RS256":
		s, err := rsa.SignPKCS1v15(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:])
		must(t, err)
		return s
	case "PS256":
		s, err := rsa.SignPSS(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		must(t, err)
		return s
	case "ES256":
		r, s, err := ecdsa.Sign(rand.Reader, k.priv.(*ecdsa.PrivateKey), digest[:])
		must(t, err)
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	case "EdDSA":
		return ed25519.Sign(k.priv.(ed25519.PrivateKey), input)
	case "HS256":
		// The algorithm-confusion forgery: HMAC keyed with the issuer's
		// public key, in the encodings a vulnerable verifier might use.
		pub := k.priv.Public().(*rsa.PublicKey)
		m := hmac.New(sha256.New, append(pub.N.Bytes(), big.NewInt(int64(pub.E)).Bytes()...))
		m.Write(input)
		return m.Sum(nil)
	case "none", "None", "":
		return nil
	}
	t.Fatalf("no signer for %s", alg)
	return nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newAuth provisions an authenticator for the issuer; mod adjusts the config
// first. It waits for the first JWKS fetch attempt so that fetch counts are
// deterministic.
func newAuth(t testing.TB, is *issuer, mod func(*JWT)) *JWT {
	t.Helper()
	j, err := provision(is, mod)
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	t.Cleanup(func() { _ = j.Cleanup() })
	<-j.keys.ready
	return j
}

func provision(is *issuer, mod func(*JWT)) (*JWT, error) {
	j := &JWT{Issuer: is.URL(), Audiences: []string{testAudience}}
	if mod != nil {
		mod(j)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := j.Provision(ctx)
	j.logger = zap.NewNop()
	if err != nil {
		_ = j.Cleanup()
	}
	return j, err
}

func bearer(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://gateway.test/rest/api/3/myself", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// authErr returns the *authn.Error of err, failing the test otherwise.
func authErr(t testing.TB, err error) *authn.Error {
	t.Helper()
	var ae *authn.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *authn.Error", err, err)
	}
	return ae
}

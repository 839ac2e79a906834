package jwt

import (
	"crypto"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// How long a JWKS is trusted. The issuer says how long its keys may be
// cached (`Cache-Control: max-age`); the background refresh follows it within
// [jwks_min_refetch, jwks_refresh], so a key the issuer removes stops being
// accepted within the issuer's own cache lifetime (at most jwks_refresh) —
// also in tokens verified and cached before, whose key is checked against the
// current set on every cache hit.

// verified is a cached verification: the identity and the key that verified
// the signature, with the key set it was last seen in.
type verified struct {
	id  *authn.Identity
	key *jose.JSONWebKey
	in  atomic.Pointer[keySet] // the last set known to hold key
}

func (s *keySource) verifiedWith(id *authn.Identity, key *jose.JSONWebKey) *verified {
	v := &verified{id: id, key: key}
	v.in.Store(s.set.Load())
	return v
}

// stillPublished reports whether the key that verified v is in the current
// key set. The check costs a pointer comparison until the set changes, then
// one scan of the new set.
func (s *keySource) stillPublished(v *verified) bool {
	cur := s.set.Load()
	if cur == nil || v.in.Load() == cur {
		return true
	}
	for _, k := range cur.keys {
		if k.KeyID == v.key.KeyID && k.Algorithm == v.key.Algorithm && sameKey(k.Key, v.key.Key) {
			v.in.Store(cur)
			return true
		}
	}
	return false
}

func sameKey(a, b any) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

// maxAge is the lifetime an answer's Cache-Control gives it: max-age in
// seconds, 0 when there is none (or no-store/no-cache, which would mean
// fetching on every request: the bounds apply instead).
func maxAge(h http.Header) time.Duration {
	var age time.Duration
	for _, d := range strings.Split(h.Get("Cache-Control"), ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return 0
		case "max-age":
			n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
			if err != nil || n < 0 {
				return 0
			}
			age = time.Duration(min(n, int64(365*24*time.Hour/time.Second))) * time.Second
		}
	}
	return age
}

// nextRefresh is when the background refresh runs again after a successful
// fetch: the issuer's max-age within [minRefetch, refresh], else refresh.
func (c sourceConfig) nextRefresh(age time.Duration) time.Duration {
	if age <= 0 {
		return c.refresh
	}
	return min(max(age, c.minRefetch, minRetry), c.refresh)
}

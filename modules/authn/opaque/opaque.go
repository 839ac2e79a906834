// Package opaque holds the authenticators that cannot check a bearer token by
// themselves and ask its issuer instead: `introspection` (RFC 7662 token
// introspection) and `userinfo` (a userinfo-style endpoint such as Microsoft
// Graph /me or GitHub /user, called with the client's token).
//
// Both cache verdicts by a hash of the token (never the token itself), collapse
// concurrent lookups of the same token into one call, and answer 503 rather
// than allow when the issuer cannot be asked.
package opaque

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/singleflight"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// now is the gateway's one clock (internal/clock); tests move it with
// clock.Set.
func now() time.Time { return gclock.Now() }

// maxBody bounds the responses read from identity providers.
const maxBody = 1 << 20

const (
	defaultTimeout     = 5 * time.Second
	defaultNegativeTTL = 10 * time.Second
)

// verdict is the outcome of asking the issuer about one token: an identity
// with the time until which it may be cached, or a 401 error. 503s are never
// verdicts: they are not cached.
type verdict struct {
	identity *authn.Identity
	invalid  *authn.Error
	until    time.Time
}

// lookupFunc asks the issuer about a token. It returns a verdict, or an error
// that means the token could not be checked (503).
type lookupFunc func(ctx context.Context, token string) (*verdict, error)

// checker is what both authenticators share: bearer extraction, the verdict
// cache, single-flight and the 503 logging.
type checker struct {
	kind        string
	endpoint    string // for log lines; holds no secret
	timeout     time.Duration
	negativeTTL time.Duration
	lookup      lookupFunc
	cache       *authn.Cache[*verdict]
	group       singleflight.Group
	logger      *zap.Logger
}

func newChecker(kind, endpoint string, timeout, negativeTTL time.Duration, lookup lookupFunc, logger *zap.Logger) *checker {
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	if negativeTTL <= 0 {
		negativeTTL = defaultNegativeTTL
	}
	c := &checker{
		kind: kind, endpoint: endpoint, timeout: timeout, negativeTTL: negativeTTL,
		lookup: lookup, cache: authn.NewCache[*verdict](0), logger: logger,
	}
	c.cache.SetClock(func() time.Time { return now() })
	return c
}

// authenticate implements authn.Authenticator for both modules.
func (c *checker) authenticate(r *http.Request, src authn.TokenSource) (*authn.Identity, error) {
	token, err := src.Token(r)
	if err != nil {
		return nil, err
	}
	key := authn.Key(token)
	v, ok := c.cache.Get(key)
	authn.CacheLookup(c.kind, ok)
	if ok {
		return v.result()
	}
	// Concurrent requests with the same token share one call. The call must
	// not die with the request that happened to start it, so it runs on a
	// context that keeps the request's values but not its cancellation.
	res, err, _ := c.group.Do(string(key[:]), func() (any, error) {
		if v, ok := c.cache.Get(key); ok {
			return v, nil
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), c.timeout)
		defer cancel()
		start := time.Now()
		v, err := c.lookup(ctx, token)
		authn.ObserveIdPCall(c.kind, start, err)
		if err != nil {
			// Logged here, once per call, not once per waiting request.
			c.unavailable(key, err)
			return nil, err
		}
		if v.invalid != nil {
			v.until = now().Add(c.negativeTTL)
		}
		c.cache.Put(key, v, v.until)
		return v, nil
	})
	if err != nil {
		return nil, authn.Unavailable(c.kind+" endpoint unavailable: the token could not be checked", err)
	}
	v = res.(*verdict)
	if v.invalid != nil {
		if ce := c.logger.Check(zapcore.DebugLevel, "token refused"); ce != nil {
			ce.Write(zap.String("token_hash", shortHash(key)), zap.String("reason", v.invalid.Description))
		}
	}
	return v.result()
}

// result returns a copy of the cached identity: callers set fields such as
// Authenticator on what they get, and the cached one is shared.
func (v *verdict) result() (*authn.Identity, error) {
	if v.invalid != nil {
		return nil, v.invalid
	}
	id := *v.identity
	return &id, nil
}

func (c *checker) unavailable(key [32]byte, err error) {
	if ce := c.logger.Check(zapcore.ErrorLevel, "cannot check token: "+c.kind+" endpoint unavailable"); ce != nil {
		ce.Write(zap.String("endpoint", c.endpoint), zap.String("token_hash", shortHash(key)), zap.Error(err))
	}
}

// shortHash names a token in logs without revealing it.
func shortHash(key [32]byte) string {
	h := sha256.Sum256(key[:])
	return hex.EncodeToString(h[:6])
}

// newClient returns the client for calls to identity providers. It never
// follows redirects: the request carries a token or client secret that must
// reach only the configured endpoint.
func newClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// fetch performs req and returns the status, headers and the body (at most
// maxBody bytes). Network errors and oversized bodies are errors.
func fetch(client *http.Client, req *http.Request) (int, http.Header, []byte, error) {
	req.Header.Set("User-Agent", "atlasgate")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, scrubURLError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading response: %w", err)
	}
	if len(body) > maxBody {
		return 0, nil, nil, fmt.Errorf("response larger than %d bytes", maxBody)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// scrubURLError drops the URL from a client error: a custom endpoint might
// carry something in its query, and the operator knows the endpoint anyway.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if errors.Is(ue.Err, context.DeadlineExceeded) {
			return errors.New("timed out")
		}
		return ue.Err
	}
	return err
}

// parseEndpoint checks an identity provider URL: https, or http to a loopback
// address (tests, sidecars). Tokens and client secrets never travel in clear
// text over a network.
func parseEndpoint(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid URL: %v", field, err)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("%s: %q must be an absolute URL without user info or fragment", field, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("%s: %q must be an https:// URL (http:// is allowed for 127.0.0.1 and ::1 only): tokens are never sent in clear text", field, raw)
		}
	default:
		return nil, fmt.Errorf("%s: %q must be an https:// URL", field, raw)
	}
	return u, nil
}

// cacheUntil is how long a positive verdict may be cached: ttl from now, but
// never past the token's expiry.
func cacheUntil(ttl time.Duration, exp time.Time) time.Time {
	until := now().Add(ttl)
	if !exp.IsZero() && exp.Before(until) {
		return exp
	}
	return until
}

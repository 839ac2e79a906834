package jwt

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// keySources holds one key source per JWKS (and its settings) across config
// reloads: a reload neither drops the keys nor fetches them again.
var keySources = caddy.NewUsagePool()

// Bounds on what an issuer may send.
const (
	maxDocumentSize = 1 << 20
	maxKeys         = 100
	minRSABits      = 2048
	minRetry        = time.Second
)

// sourceConfig is what identifies a key source.
type sourceConfig struct {
	issuer, jwksURI              string
	refresh, minRefetch, timeout time.Duration
	caFiles                      string
	roots                        *x509.CertPool
}

func (c sourceConfig) key() string {
	src := "discovery " + c.issuer
	if c.jwksURI != "" {
		src = "jwks " + c.jwksURI
	}
	return fmt.Sprintf("%s|%s|%s|%s|%s", src, c.refresh, c.minRefetch, c.timeout, c.caFiles)
}

// keySet is one fetched JWKS, never modified after it is published.
type keySet struct {
	keys   []jose.JSONWebKey
	maxAge time.Duration // the issuer's Cache-Control max-age; 0: none
}

// keySource is the shared, background-refreshed JWKS of one issuer.
type keySource struct {
	cfg    sourceConfig
	poolID string
	client *http.Client
	logger *zap.Logger
	cancel context.CancelFunc
	ctx    context.Context
	done   chan struct{}
	ready  chan struct{} // closed after the first fetch attempt

	set     atomic.Pointer[keySet]
	flight  singleflight.Group
	fetches atomic.Int64 // JWKS documents requested (for tests and metrics)

	mu          sync.Mutex
	lastAttempt time.Time
	lastErr     error
}

func acquireKeySource(cfg sourceConfig) (*keySource, error) {
	id := cfg.key()
	v, _, err := keySources.LoadOrNew(id, func() (caddy.Destructor, error) {
		ctx, cancel := context.WithCancel(context.Background())
		s := &keySource{
			cfg:    cfg,
			poolID: id,
			client: newClient(cfg),
			logger: caddy.Log().Named("atlasgate.authn.jwt"),
			ctx:    ctx,
			cancel: cancel,
			done:   make(chan struct{}),
			ready:  make(chan struct{}),
		}
		go s.run()
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*keySource), nil
}

func (s *keySource) release() { _, _ = keySources.Delete(s.poolID) }

// Destruct stops the background refresh once no config uses the source.
func (s *keySource) Destruct() error {
	s.cancel()
	return nil
}

func newClient(cfg sourceConfig) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	if cfg.roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: cfg.roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Transport: tr,
		Timeout:   cfg.timeout,
		// A redirect to another host is refused: the keys come from the
		// configured place.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 || req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
				return errors.New("redirect refused")
			}
			return nil
		},
	}
}

func loadRoots(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("trusted_ca_files: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("trusted_ca_files: %s holds no PEM certificate", f)
		}
	}
	return pool, nil
}

// run fetches the keys at once and then every refresh interval; after a
// failure it retries every minRefetch (at least every second) until it
// succeeds.
func (s *keySource) run() {
	defer close(s.done)
	s.refetch(false)
	close(s.ready)
	for {
		wait := s.cfg.refresh
		if set := s.set.Load(); set != nil {
			wait = s.cfg.nextRefresh(set.maxAge)
		}
		s.mu.Lock()
		if s.lastErr != nil {
			// Retry soon, but never in a tight loop against a dead issuer.
			wait = max(s.cfg.minRefetch, minRetry)
		}
		s.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		s.refetch(true)
	}
}

// refetch fetches the JWKS unless another fetch is under way (then it waits
// for that one) or, unless forced, the last attempt was less than minRefetch
// ago. On failure the old keys stay.
func (s *keySource) refetch(force bool) {
	<-s.flight.DoChan("fetch", func() (any, error) { return nil, s.attempt(force) })
}

// refetchWait is refetch for a request: it stops waiting when the request
// goes away, while the fetch goes on for the others.
func (s *keySource) refetchWait(ctx context.Context) {
	select {
	case <-s.flight.DoChan("fetch", func() (any, error) { return nil, s.attempt(false) }):
	case <-ctx.Done():
	}
}

func (s *keySource) attempt(force bool) error {
	s.mu.Lock()
	t := now()
	if !force && !s.lastAttempt.IsZero() && t.Sub(s.lastAttempt) < s.cfg.minRefetch {
		s.mu.Unlock()
		return nil
	}
	s.lastAttempt = t
	s.mu.Unlock()
	start := time.Now()
	set, err := s.fetch()
	authn.ObserveIdPCall("jwt", start, err)
	if err == nil {
		s.set.Store(set) // before lastErr is cleared: lookup reads them in the other order
	}
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if err != nil {
		s.logger.Warn("fetching the JWKS failed; keeping the known keys",
			zap.String("issuer", s.cfg.issuer), zap.Error(err))
	}
	return err
}

// lookup returns the keys that may have signed a token with this key id and
// algorithm. An unknown key id causes a (rate-limited) refetch.
func (s *keySource) lookup(ctx context.Context, kid, alg string) ([]jose.JSONWebKey, error) {
	if set := s.set.Load(); set != nil {
		if keys := set.match(kid, alg); len(keys) > 0 {
			return keys, nil
		}
		if kid == "" {
			return nil, authn.Invalid(errUnknownKey, nil)
		}
	}
	s.refetchWait(ctx)
	set := s.set.Load()
	s.mu.Lock()
	lastErr := s.lastErr
	s.mu.Unlock()
	if set == nil {
		// No keys at all: the token cannot be checked. Never allow.
		if lastErr == nil {
			lastErr = errors.New("no JWKS fetched yet")
		}
		return nil, authn.Unavailable(errUnavailable, lastErr)
	}
	if keys := set.match(kid, alg); len(keys) > 0 {
		return keys, nil
	}
	if lastErr != nil {
		// The issuer may have rotated to a key we could not fetch.
		return nil, authn.Unavailable(errUnavailable, lastErr)
	}
	return nil, authn.Invalid(errUnknownKey, nil)
}

// match returns the signing keys with the key id (all of them when the token
// names none) whose type fits the algorithm.
func (ks *keySet) match(kid, alg string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range ks.keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if keyFits(k.Key, alg) {
			out = append(out, k)
		}
	}
	return out
}

// keyFits reports whether key can verify alg, so that an RSA key is never
// handed to an EC verifier and a P-256 key never verifies ES512.
func keyFits(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

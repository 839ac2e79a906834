// Package jwt is the `jwt` authenticator of atlasgate: bearer tokens that are
// JWTs signed by an OpenID Provider or any issuer that publishes a JWKS (Entra
// ID, Okta, Keycloak, Cognito, Google, GitLab, GitHub Actions, Kubernetes
// service accounts, generic OIDC).
package jwt

import (
	"errors"
	"fmt"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/modules/authn"
)

func init() {
	caddy.RegisterModule(JWT{})
}

// now is the gateway's one clock (internal/clock); tests move it with
// clock.Set.
func now() time.Time { return gclock.Now() }

// Defaults and limits.
const (
	defaultLeeway       = time.Minute
	maxLeeway           = 5 * time.Minute
	defaultCacheSize    = 10000
	defaultRefresh      = 5 * time.Minute // a withdrawn key is refused within minutes
	defaultMinRefetch   = 5 * time.Second // a new key is accepted within seconds; the spray limit
	defaultFetchTimeout = 10 * time.Second
)

// supportedAlgorithms are the asymmetric JWS algorithms a token may use. HS*
// are missing on purpose: a shared-secret algorithm verified with a public key
// is the classic algorithm-confusion forgery, and the gateway holds no secret
// shared with an issuer.
var supportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// JWT authenticates requests whose bearer token is a JWT of one issuer,
// verified with the keys of the issuer's JWKS.
type JWT struct {
	// Where the token is read besides `Authorization: Bearer`
	// (`token_header`, `token_header_scheme`); see authn.TokenSource.
	authn.TokenSource

	// Preset fills in the defaults of a well-known identity provider (issuer,
	// keys, algorithms, username and groups claims, sometimes the audience).
	// Explicit options override them. Default: none.
	Preset *Preset `json:"preset,omitempty"`

	// The issuer; a token's `iss` must equal it exactly. Must be an https URL
	// (http only for loopback addresses). Required unless the preset sets it.
	Issuer string `json:"issuer,omitempty"`

	// Fetch `{issuer}/.well-known/openid-configuration` to find the JWKS.
	// Default true when `jwks_uri` is empty; setting `jwks_uri` turns it off.
	Discovery *bool `json:"discovery,omitempty"`

	// URL of the issuer's JWKS, instead of discovery. Same scheme rules as
	// `issuer`. Default: discovered (some presets set it).
	JWKSURI string `json:"jwks_uri,omitempty"`

	// Accepted audiences: the token's `aud` (a string or an array) must
	// contain one of them. Required unless the preset supplies one; there is no
	// way to accept any audience.
	Audiences []string `json:"audiences,omitempty"`

	// A claim to check against `audiences` when a token has no `aud` at all
	// (Cognito access tokens carry `client_id` instead). Default: none (a
	// token without `aud` is refused); the cognito preset sets `client_id`.
	AudienceFallbackClaim string `json:"audience_fallback_claim,omitempty"`

	// Accepted signature algorithms: RS256, RS384, RS512, PS256, PS384, PS512,
	// ES256, ES384, ES512, EdDSA. HS* and `none` are never accepted. Default
	// RS256 (or the preset's).
	Algorithms []string `json:"algorithms,omitempty"`

	// Clock skew tolerated on `exp`, `nbf` and `iat`. Default 1m, at most 5m.
	Leeway caddy.Duration `json:"leeway,omitempty"`

	// Claim whose value becomes the user name ({http.auth.user.id}); a dotted
	// path reaches into nested objects (`realm_access.name`). Default `sub`
	// (or the preset's).
	UsernameClaim string `json:"username_claim,omitempty"`

	// Claims tried in order when the username claim is missing, e.g. `azp`
	// for Entra app-only tokens. Default: none (or the preset's).
	UsernameFallbackClaims []string `json:"username_fallback_claims,omitempty"`

	// Claims whose values (a string or an array of strings) become the
	// identity's groups. Default `groups` (or the preset's, e.g. `groups` and
	// `roles` for entra).
	GroupsClaim []string `json:"groups_claim,omitempty"`

	// Claims that must match: all of them, each with one of its values.
	// Default: none.
	RequireClaims []ClaimRequirement `json:"require_claims,omitempty"`

	// Accepted values of the token's `typ` header, e.g. `at+jwt` for RFC 9068
	// access tokens (compared case-insensitively, `application/` prefix
	// optional). Default: any typ.
	TokenTypes []string `json:"token_types,omitempty"`

	// Refuse tokens issued (`iat`) longer ago than this; tokens without `iat`
	// are refused then. Default 0: no limit beyond `exp`.
	MaxTokenAge caddy.Duration `json:"max_token_age,omitempty"`

	// Verified tokens remembered (by hash, never beyond their `exp`), so a
	// busy client costs no signature check per request. Default 10000.
	CacheSize int `json:"cache_size,omitempty"`

	// How often the JWKS is refetched in the background, at most: an
	// issuer's `Cache-Control: max-age` shortens it (never below
	// jwks_min_refetch). A key the issuer removed is refused at the latest
	// this long after, also in tokens verified before. Default 5m.
	JWKSRefresh caddy.Duration `json:"jwks_refresh,omitempty"`

	// The least time between two JWKS fetches, both those caused by tokens
	// with an unknown key id (so that tokens with made-up key ids cannot
	// hammer the issuer: one fetch per interval whatever the flood) and the
	// background ones a short max-age asks for. Default 5s.
	JWKSMinRefetch caddy.Duration `json:"jwks_min_refetch,omitempty"`

	// Timeout of each discovery and JWKS request. Default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// PEM files of the CAs the issuer's TLS certificate must chain to,
	// replacing the system roots (e.g. a cluster's CA for kubernetes).
	// Default: system roots.
	TrustedCAFiles []string `json:"trusted_ca_files,omitempty"`

	leeway, maxAge time.Duration
	algs           []string
	joseAlgs       []jose.SignatureAlgorithm
	requirements   []requirement
	keys           *keySource
	released       bool
	cache          *authn.Cache[*verified]
	logger         *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (JWT) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "atlasgate.authn.jwt",
		New: func() caddy.Module { return new(JWT) },
	}
}

// Provision applies the preset and the defaults, checks the config and
// acquires the shared JWKS of the issuer.
func (j *JWT) Provision(ctx caddy.Context) error {
	if err := authn.RegisterMetrics(ctx); err != nil {
		return err
	}
	j.logger = ctx.Logger()
	if err := j.ValidateTokenSource(); err != nil {
		return err
	}
	j.resolvePlaceholders()
	if err := j.applyPreset(); err != nil {
		return err
	}
	if err := j.compile(); err != nil {
		return err
	}
	src, err := j.sourceConfig()
	if err != nil {
		return err
	}
	j.keys, err = acquireKeySource(src)
	if err != nil {
		return err
	}
	j.cache = authn.NewCache[*verified](j.CacheSize)
	j.cache.SetClock(func() time.Time { return now() })
	return nil
}

// resolvePlaceholders expands global placeholders ({env.*}, {file.*}) in the
// options that name things — none of them is a secret — so that a tenant id or
// an audience can come from the environment like everything else.
func (j *JWT) resolvePlaceholders() {
	repl := caddy.NewReplacer()
	r := func(v string) string { return repl.ReplaceKnown(v, "") }
	if j.Preset != nil {
		for i, a := range j.Preset.Args {
			j.Preset.Args[i] = r(a)
		}
	}
	j.Issuer, j.JWKSURI = r(j.Issuer), r(j.JWKSURI)
	for i, a := range j.Audiences {
		j.Audiences[i] = r(a)
	}
	for i := range j.RequireClaims {
		for k, v := range j.RequireClaims[i].Values {
			j.RequireClaims[i].Values[k] = r(v)
		}
	}
}

// compile checks the options and applies the defaults.
func (j *JWT) compile() error {
	if j.Issuer == "" {
		return errors.New("issuer: required (or use a preset)")
	}
	if err := checkURL("issuer", j.Issuer); err != nil {
		return err
	}
	if j.JWKSURI != "" {
		if err := checkURL("jwks_uri", j.JWKSURI); err != nil {
			return err
		}
		if j.Discovery != nil && *j.Discovery {
			return errors.New("discovery: cannot be used together with jwks_uri")
		}
	} else if j.Discovery != nil && !*j.Discovery {
		return errors.New("jwks_uri: required when discovery is off")
	}
	if len(j.Audiences) == 0 {
		return errors.New("audiences: required: name the audience your tokens are issued for (the `aud` claim); accepting any audience would accept tokens issued for other applications")
	}
	for _, a := range j.Audiences {
		if a == "" || a == "*" {
			return fmt.Errorf("audiences: %q is not an audience", a)
		}
	}
	j.algs = j.Algorithms
	if len(j.algs) == 0 {
		j.algs = []string{"RS256"}
	}
	for _, a := range j.algs {
		if strings.HasPrefix(strings.ToUpper(a), "HS") || strings.EqualFold(a, "none") {
			return fmt.Errorf("algorithms: %s is never accepted: only asymmetric algorithms can be verified with an issuer's public keys", a)
		}
		if !slices.Contains(supportedAlgorithms, a) {
			return fmt.Errorf("algorithms: %q is not supported (%s)", a, strings.Join(supportedAlgorithms, ", "))
		}
		j.joseAlgs = append(j.joseAlgs, jose.SignatureAlgorithm(a))
	}
	j.leeway = time.Duration(j.Leeway)
	if j.Leeway == 0 {
		j.leeway = defaultLeeway
	}
	if j.leeway < 0 || j.leeway > maxLeeway {
		return fmt.Errorf("leeway: %s is out of range (0 to %s)", j.leeway, maxLeeway)
	}
	if j.MaxTokenAge < 0 {
		return errors.New("max_token_age: must not be negative")
	}
	j.maxAge = time.Duration(j.MaxTokenAge)
	if j.UsernameClaim == "" {
		j.UsernameClaim = "sub"
	}
	if j.GroupsClaim == nil {
		j.GroupsClaim = []string{"groups"}
	}
	if j.CacheSize < 0 {
		return errors.New("cache_size: must not be negative")
	}
	if j.CacheSize == 0 {
		j.CacheSize = defaultCacheSize
	}
	var err error
	if j.requirements, err = compileRequirements(j.RequireClaims); err != nil {
		return err
	}
	for _, t := range j.TokenTypes {
		if t == "" {
			return errors.New("token_types: empty type")
		}
	}
	return nil
}

// checkURL accepts https URLs, and http only on loopback addresses (local
// development and tests): keys fetched over plain http could be replaced by
// anyone on the network path.
func checkURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s: %q is not an absolute URL without query or fragment", field, raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("%s: %q must be an https URL (http is allowed for loopback addresses only)", field, raw)
}

// sourceConfig describes the issuer's JWKS for the shared key source.
func (j *JWT) sourceConfig() (sourceConfig, error) {
	roots, err := loadRoots(j.TrustedCAFiles)
	if err != nil {
		return sourceConfig{}, err
	}
	c := sourceConfig{
		issuer:     j.Issuer,
		jwksURI:    j.JWKSURI,
		refresh:    time.Duration(j.JWKSRefresh),
		minRefetch: time.Duration(j.JWKSMinRefetch),
		timeout:    time.Duration(j.Timeout),
		caFiles:    strings.Join(j.TrustedCAFiles, "\n"),
		roots:      roots,
	}
	if c.refresh == 0 {
		c.refresh = defaultRefresh
	}
	if c.minRefetch == 0 {
		c.minRefetch = defaultMinRefetch
	}
	if c.timeout == 0 {
		c.timeout = defaultFetchTimeout
	}
	if c.refresh < 0 || c.minRefetch < 0 || c.timeout < 0 {
		return c, errors.New("jwks_refresh, jwks_min_refetch and timeout must not be negative")
	}
	if c.refresh < c.minRefetch {
		return c, fmt.Errorf("jwks_refresh: %s is shorter than jwks_min_refetch (%s)", c.refresh, c.minRefetch)
	}
	return c, nil
}

// Cleanup releases the shared JWKS; its background refresh stops when no
// config uses it any more.
// Requests still in flight on the old config keep working with the keys they
// have, so j.keys stays set.
func (j *JWT) Cleanup() error {
	if j.keys != nil && !j.released {
		j.released = true
		j.keys.release()
	}
	return nil
}

// Authenticate implements authn.Authenticator.
func (j *JWT) Authenticate(r *http.Request) (*authn.Identity, error) {
	token, err := j.Token(r)
	if err != nil {
		return nil, err
	}
	return j.authenticate(r, token)
}

func (j *JWT) authenticate(r *http.Request, token string) (*authn.Identity, error) {
	// The size is checked before hashing or decoding anything.
	if len(token) > authn.MaxTokenLength {
		return nil, authn.BadRequest("credential too large", nil)
	}
	key := authn.Key(token)
	v, ok := j.cache.Get(key)
	// A token whose key the issuer has since removed is verified again (and
	// refused): the cache must not outlive the key.
	ok = ok && j.keys.stillPublished(v)
	authn.CacheLookup("jwt", ok)
	if ok {
		// The cache expires entries at exp; each caller gets its own copy
		// because the handler fills in Authenticator.
		c := *v.id
		return &c, nil
	}
	id, k, until, err := j.verify(r.Context(), token)
	if err != nil {
		if c := j.logger.Check(zap.DebugLevel, "jwt refused"); c != nil {
			c.Write(zap.Error(err))
		}
		return nil, err
	}
	j.cache.Put(key, j.keys.verifiedWith(id, k), until)
	c := *id
	return &c, nil
}

// Interface guards
var (
	_ caddy.Provisioner   = (*JWT)(nil)
	_ caddy.CleanerUpper  = (*JWT)(nil)
	_ authn.Authenticator = (*JWT)(nil)
)

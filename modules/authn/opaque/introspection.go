package opaque

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/authn"
)

func init() {
	caddy.RegisterModule(Introspection{})
}

const defaultIntrospectionTTL = 5 * time.Minute

// Introspection validates bearer tokens with an OAuth 2.0 token introspection
// endpoint (RFC 7662): Keycloak, Okta, Ping, Auth0, ZITADEL, Authentik,
// Curity… The gateway authenticates to the endpoint as a client of the
// authorization server; a token is accepted when the answer says `active`.
type Introspection struct {
	// Where the token is read besides `Authorization: Bearer`
	// (`token_header`, `token_header_scheme`); see authn.TokenSource.
	authn.TokenSource

	// The introspection endpoint. Must be https (http is accepted for
	// 127.0.0.1 and ::1 only). Placeholders are resolved. Required.
	Endpoint string `json:"endpoint,omitempty"`

	// The client ID the gateway authenticates to the endpoint with.
	// Placeholders are resolved. Required.
	ClientID string `json:"client_id,omitempty"`

	// The client secret, as an `{env.NAME}` or `{file.PATH}` placeholder;
	// literal values are refused. Required.
	ClientSecret string `json:"client_secret,omitempty"`

	// How the client credentials are sent: `basic` (HTTP Basic,
	// client_secret_basic) or `post` (client_id and client_secret in the form
	// body, client_secret_post). Default `basic`.
	ClientAuth string `json:"client_auth,omitempty"`

	// The `token_type_hint` sent with each request. Default `access_token`.
	TokenTypeHint string `json:"token_type_hint,omitempty"`

	// Dotted JSON path to the username in the introspection response; it
	// becomes {http.auth.user.id}. Default `username`, falling back to `sub`
	// when the response has no `username`.
	UsernameClaim string `json:"username_claim,omitempty"`

	// Dotted JSON path to the caller's groups or roles in the response (an
	// array or a single string). Default: no groups.
	GroupsClaim string `json:"groups_claim,omitempty"`

	// If set, the response's `aud` must contain one of these. Default: any.
	Audiences []string `json:"audiences,omitempty"`

	// If set, the response's `iss` must equal it exactly. Default: any.
	Issuer string `json:"issuer,omitempty"`

	// How long an active token's verdict is cached, at most: it is never cached
	// past the token's `exp`. Default 5m.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// How long an inactive (or refused) token is remembered, so that a client
	// retrying a bad token does not hammer the endpoint. Default 10s.
	NegativeCacheTTL caddy.Duration `json:"negative_cache_ttl,omitempty"`

	// Timeout of one call to the endpoint. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	endpoint     *url.URL
	clientID     string
	clientSecret string
	client       *http.Client
	checker      *checker
}

// CaddyModule returns the Caddy module information.
func (Introspection) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "atlasgate.authn.introspection",
		New: func() caddy.Module { return new(Introspection) },
	}
}

// Provision resolves the placeholders, checks the options and applies defaults.
func (in *Introspection) Provision(ctx caddy.Context) error {
	if err := authn.RegisterMetrics(ctx); err != nil {
		return err
	}
	if err := in.ValidateTokenSource(); err != nil {
		return err
	}
	endpoint, err := atlasgate.ResolveValue("endpoint", in.Endpoint)
	if err != nil {
		return err
	}
	if in.endpoint, err = parseEndpoint("endpoint", endpoint); err != nil {
		return err
	}
	if in.clientID, err = atlasgate.ResolveValue("client_id", in.ClientID); err != nil {
		return err
	}
	if in.clientSecret, err = atlasgate.ResolveSecret("client_secret", in.ClientSecret); err != nil {
		return err
	}
	switch in.ClientAuth {
	case "":
		in.ClientAuth = "basic"
	case "basic", "post":
	default:
		return fmt.Errorf("client_auth: %q is not supported: use basic or post", in.ClientAuth)
	}
	if in.TokenTypeHint == "" {
		in.TokenTypeHint = "access_token"
	}
	if in.CacheTTL < 0 || in.NegativeCacheTTL < 0 || in.Timeout < 0 {
		return fmt.Errorf("cache_ttl, negative_cache_ttl and timeout must not be negative")
	}
	if in.CacheTTL == 0 {
		in.CacheTTL = caddy.Duration(defaultIntrospectionTTL)
	}
	in.client = newClient()
	in.checker = newChecker("introspection", in.endpoint.Redacted(), time.Duration(in.Timeout),
		time.Duration(in.NegativeCacheTTL), in.introspect, ctx.Logger())
	return nil
}

// Authenticate implements authn.Authenticator.
func (in *Introspection) Authenticate(r *http.Request) (*authn.Identity, error) {
	return in.checker.authenticate(r, in.TokenSource)
}

// introspect asks the endpoint about token.
func (in *Introspection) introspect(ctx context.Context, token string) (*verdict, error) {
	form := url.Values{"token": {token}}
	if in.TokenTypeHint != "" {
		form.Set("token_type_hint", in.TokenTypeHint)
	}
	if in.ClientAuth == "post" {
		form.Set("client_id", in.clientID)
		form.Set("client_secret", in.clientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.endpoint.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if in.ClientAuth == "basic" {
		// RFC 6749 section 2.3.1: both are form-encoded before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.clientSecret))
	}
	status, _, body, err := fetch(in.client, req)
	if err != nil {
		return nil, err
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		// The endpoint refused the gateway, not the caller's token.
		return nil, fmt.Errorf("the endpoint refused the gateway's client credentials (status %d): check client_id, client_secret and client_auth", status)
	case status != http.StatusOK:
		return nil, fmt.Errorf("unexpected status %d", status)
	}
	doc, err := decodeObject(body)
	if err != nil {
		return nil, fmt.Errorf("response is not a JSON object: %v", err)
	}
	active, ok := doc["active"].(bool)
	if !ok {
		return nil, fmt.Errorf("response has no boolean `active` member")
	}
	if !active {
		return &verdict{invalid: authn.Invalid("the token is not active", nil)}, nil
	}
	return in.identity(doc), nil
}

// identity turns an active introspection response into a verdict.
func (in *Introspection) identity(doc map[string]any) *verdict {
	id := &authn.Identity{Kind: "introspection", Claims: doc}
	id.Subject, _ = doc["sub"].(string)
	id.Issuer, _ = doc["iss"].(string)
	if exp, ok := numericDate(doc["exp"]); ok {
		id.ExpiresAt = exp
		if !now().Before(exp) {
			return &verdict{invalid: authn.Invalid("the token has expired", nil)}
		}
	}
	if in.Issuer != "" && id.Issuer != in.Issuer {
		return &verdict{invalid: authn.Invalid("the token was issued by another issuer", nil)}
	}
	if len(in.Audiences) > 0 && !slices.ContainsFunc(stringsAt(doc, "aud"), func(a string) bool {
		return slices.Contains(in.Audiences, a)
	}) {
		return &verdict{invalid: authn.Invalid("the token is not meant for this gateway (audience)", nil)}
	}
	var ok bool
	if in.UsernameClaim != "" {
		id.User, ok = stringAt(doc, in.UsernameClaim)
	} else if id.User, ok = stringAt(doc, "username"); !ok {
		id.User, ok = stringAt(doc, "sub")
	}
	if !ok {
		return &verdict{invalid: authn.Invalid("token lacks the username attribute", nil)}
	}
	id.Groups = stringsAt(doc, in.GroupsClaim)
	switch s := doc["scope"].(type) {
	case string:
		id.Scopes = strings.Fields(s)
	case []any:
		id.Scopes = stringsAt(doc, "scope")
	}
	return &verdict{identity: id, until: cacheUntil(time.Duration(in.CacheTTL), id.ExpiresAt)}
}

// numericDate reads a JSON NumericDate (seconds since the epoch).
func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok || f <= 0 {
		return time.Time{}, false
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), true
}

// Cleanup closes the idle connections to the endpoint.
func (in *Introspection) Cleanup() error {
	if in.client != nil {
		in.client.CloseIdleConnections()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner   = (*Introspection)(nil)
	_ caddy.CleanerUpper  = (*Introspection)(nil)
	_ authn.Authenticator = (*Introspection)(nil)
)

package credentials

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/atlasgate/atlasgate/internal/clock"
	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/internal/cfparse"
	"github.com/atlasgate/atlasgate/modules/tokenstore"
)

func init() {
	caddy.RegisterModule(ClientCredentials{})
}

// Routing modes of a client_credentials credential.
const (
	routingEx     = "ex"
	routingDirect = "direct"
)

// ClientCredentials is an OAuth 2.0 client-credentials credential: the
// gateway is the OAuth client itself, with no person consenting. It covers
// Atlassian service accounts (tokens from auth.atlassian.com, used through
// api.atlassian.com/ex), Bitbucket Cloud OAuth consumers, Data Center
// service accounts and any other OAuth 2.0 server.
//
// Access tokens are kept in memory only — a new one is a single request away —
// by the token engine (tokenstore.Engine over a MemoryBackend): fetched
// again in the background shortly before they expire, one token request for
// any number of concurrent requests, back-off after failures, and a bound on
// futile refreshes after upstream 401s.
type ClientCredentials struct {
	// The token endpoint. Default `https://auth.atlassian.com/oauth/token`
	// (Atlassian service accounts). Bitbucket Cloud:
	// `https://bitbucket.org/site/oauth2/access_token`; Data Center:
	// `https://<base>/rest/oauth2/latest/token`. Must be https.
	TokenURL string `json:"token_url,omitempty"`

	// The client id. Required.
	ClientID string `json:"client_id,omitempty"`

	// The client secret, as an `{env.NAME}` or `{file.PATH}` placeholder;
	// literal values are refused. Required.
	ClientSecret string `json:"client_secret,omitempty"`

	// Scopes to request (the `scope` parameter). Default: none requested, the
	// server grants the client's configured scopes.
	Scopes []string `json:"scopes,omitempty"`

	// The `audience` token-request parameter. Default: not sent.
	Audience string `json:"audience,omitempty"`

	// How the client authenticates at the token endpoint: `body`
	// (client_id and client_secret as form parameters, as Atlassian and Data
	// Center expect) or `basic` (HTTP Basic, as Bitbucket Cloud expects).
	// Default `basic` when token_url is Bitbucket Cloud's, `body` otherwise.
	ClientAuth string `json:"client_auth,omitempty"`

	// Extra token-request parameters. Values may be placeholders. The
	// standard parameters (grant_type, client_id, client_secret, scope,
	// audience) cannot be set here.
	Params map[string]string `json:"params,omitempty"`

	// The base URL clients address: the Atlassian Cloud site
	// (`https://acme.atlassian.net`), `https://api.bitbucket.org`, or a Data
	// Center base URL. Must be https. Required.
	Site string `json:"site,omitempty"`

	// Where requests go: `ex` sends them through Atlassian's API gateway as
	// `{api_base}/ex/{jira|confluence}/{cloudId}/…` (the cloudId discovered
	// from the site), `direct` sends them to `site`. Default `ex` when
	// token_url is Atlassian's and the site is an `*.atlassian.net` site,
	// `direct` when token_url is another server's. With Atlassian's token_url
	// and any other site (a custom domain) it must be set.
	Routing string `json:"routing,omitempty"`

	// Base URL of Atlassian's API gateway for `ex` routing. Default
	// `https://api.atlassian.com`; only changed for tests and simulators.
	APIBase string `json:"api_base,omitempty"`

	// PEM files of the CAs that the token endpoint's and the upstream's TLS
	// certificates must chain to, replacing the system roots for this
	// credential. Default: system roots.
	TrustedCAFiles []string `json:"trusted_ca_files,omitempty"`

	// Fetch a new access token when less than this is left of the current
	// one (at most half its lifetime). Default 5m.
	RefreshBefore caddy.Duration `json:"refresh_before,omitempty"`

	name     string
	site     *url.URL
	apiBase  *url.URL
	tokenURL *url.URL
	roots    *x509.CertPool
	client   *http.Client
	config   *clientcredentials.Config
	cloudID  *cloudIDEntry
	logger   *zap.Logger
	engine   *tokenstore.Engine
}

// CaddyModule returns the Caddy module information.
func (ClientCredentials) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "atlasgate.credentials.client_credentials",
		New: func() caddy.Module { return new(ClientCredentials) },
	}
}

// Provision resolves the placeholders, applies the defaults and checks the
// URLs.
func (c *ClientCredentials) Provision(ctx caddy.Context) error {
	c.name = atlasgate.CredentialName(ctx)
	c.logger = ctx.Logger()
	var err error
	tokenURL := orDefault(c.TokenURL, defaultTokenURL)
	if c.tokenURL, err = parseTokenURL(tokenURL); err != nil {
		return err
	}
	clientID, err := atlasgate.ResolveValue("client_id", c.ClientID)
	if err != nil {
		return err
	}
	secret, err := atlasgate.ResolveSecret("client_secret", c.ClientSecret)
	if err != nil {
		return err
	}
	site, err := atlasgate.ResolveValue("site", c.Site)
	if err != nil {
		return err
	}
	if c.site, err = parseBase("site", site); err != nil {
		return err
	}
	style, err := c.authStyle()
	if err != nil {
		return err
	}
	params := url.Values{}
	if c.Audience != "" {
		params.Set("audience", c.Audience)
	}
	for k, v := range c.Params {
		switch k {
		case "grant_type", "client_id", "client_secret", "scope", "audience":
			return errField("params", fmt.Sprintf("%q is set by the credential itself (use the %s option)", k, paramOption(k)))
		}
		if params[k], err = resolveParam(k, v); err != nil {
			return err
		}
	}
	routing, err := c.routing()
	if err != nil {
		return err
	}
	c.Routing = routing
	if routing == routingEx {
		if c.apiBase, err = parseBase("api_base", orDefault(c.APIBase, defaultAPIBase)); err != nil {
			return err
		}
		c.cloudID = acquireCloudID(c.site.String())
	} else if c.APIBase != "" {
		return errField("api_base", "only applies to `routing ex`")
	}
	if c.roots, err = loadRoots("trusted_ca_files", c.TrustedCAFiles); err != nil {
		return err
	}
	c.client = newClient(c.roots)
	c.config = &clientcredentials.Config{
		ClientID:       clientID,
		ClientSecret:   secret,
		TokenURL:       tokenURL,
		Scopes:         c.Scopes,
		EndpointParams: params,
		AuthStyle:      style,
	}
	c.engine = &tokenstore.Engine{
		Name:    c.name,
		Backend: tokenstore.MemoryBackend{Fetch: c.fetch},
		Skew:    time.Duration(c.RefreshBefore),
		Recheck: -1, // nothing stored to re-read
		Context: ctx,
		Logger:  c.logger,
	}
	return nil
}

func paramOption(k string) string {
	switch k {
	case "scope":
		return "scopes"
	case "grant_type":
		return "token_url"
	}
	return k
}

func resolveParam(k, v string) ([]string, error) {
	r, err := atlasgate.ResolveValue("params."+k, v)
	return []string{r}, err
}

func parseTokenURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, errField("token_url", fmt.Sprintf("%q must be an https:// URL: the client secret is never sent in clear text", raw))
	}
	return u, nil
}

func isBitbucketTokenURL(u *url.URL) bool {
	return strings.EqualFold(u.Hostname(), "bitbucket.org")
}

func (c *ClientCredentials) authStyle() (oauth2.AuthStyle, error) {
	mode := c.ClientAuth
	if mode == "" {
		mode = "body"
		if isBitbucketTokenURL(c.tokenURL) {
			mode = "basic"
		}
	}
	switch mode {
	case "body":
		return oauth2.AuthStyleInParams, nil
	case "basic":
		return oauth2.AuthStyleInHeader, nil
	}
	return 0, errField("client_auth", fmt.Sprintf("%q: must be body or basic", c.ClientAuth))
}

// routing decides where requests go; see the Routing field.
func (c *ClientCredentials) routing() (string, error) {
	switch c.Routing {
	case routingEx, routingDirect:
		return c.Routing, nil
	case "":
	default:
		return "", errField("routing", fmt.Sprintf("%q: must be ex or direct", c.Routing))
	}
	if c.tokenURL.String() != defaultTokenURL {
		return routingDirect, nil
	}
	if isCloudHost(c.site.Hostname()) {
		return routingEx, nil
	}
	return "", errField("routing", fmt.Sprintf("tokens from Atlassian's token endpoint work only through api.atlassian.com, but %s is not an *.atlassian.net site: set `routing ex` for a Cloud site on a custom domain, or `routing direct`", c.site))
}

// Cleanup releases the shared cloudId cache entry.
func (c *ClientCredentials) Cleanup() error {
	if c.cloudID != nil {
		_, _ = cloudIDs.Delete(c.cloudID.site)
	}
	return nil
}

// Target implements atlasgate.Credential. It also obtains the access token,
// so that a token endpoint failure is answered before anything is proxied.
func (c *ClientCredentials) Target(ctx context.Context, path string) (*url.URL, error) {
	if _, err := c.token(ctx); err != nil {
		return nil, err
	}
	if c.Routing != routingEx {
		return c.site, nil
	}
	return exTarget(ctx, c.apiBase, c.cloudID, c.client, path)
}

// Origins implements atlasgate.Credential.
func (c *ClientCredentials) Origins() []*url.URL {
	if c.Routing == routingEx {
		return []*url.URL{c.apiBase}
	}
	return []*url.URL{c.site}
}

// Home implements atlasgate.Credential.
func (c *ClientCredentials) Home() *url.URL { return c.site }

// RootCAs implements atlasgate.Credential.
func (c *ClientCredentials) RootCAs() *x509.CertPool { return c.roots }

// Inject implements atlasgate.Credential.
func (c *ClientCredentials) Inject(req *http.Request) error {
	tok, err := c.token(req.Context())
	if err != nil {
		return err
	}
	req.Header["Authorization"] = []string{"Bearer " + tok}
	return nil
}

// Reauthenticate implements atlasgate.Refresher: the upstream refused the
// token in req (401), so get a new one — unless a newer one is held already,
// or the last new tokens were refused too — and set it on req.
func (c *ClientCredentials) Reauthenticate(req *http.Request) error {
	sent := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
	if cur := c.engine.Cached(); cur != nil && cur.AccessToken == sent {
		if _, err := c.engine.Invalidate(req.Context(), cur); errors.Is(err, tokenstore.ErrTooManyForced) {
			return err // the upstream's 401 says more than we can
		} else if err != nil {
			return c.unavailable(err)
		}
	}
	return c.Inject(req)
}

// ReplayRefused implements atlasgate.ReplayObserver.
func (c *ClientCredentials) ReplayRefused(*http.Request) { c.engine.ReplayRefused() }

// token returns a usable access token.
func (c *ClientCredentials) token(ctx context.Context) (string, error) {
	ts, err := c.engine.Token(ctx)
	if err != nil {
		return "", c.unavailable(err)
	}
	return ts.AccessToken, nil
}

// fetch requests a new access token: the engine's MemoryBackend.Fetch.
func (c *ClientCredentials) fetch(ctx context.Context) (*tokenstore.TokenSet, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.client)
	tok, err := c.config.Token(ctx)
	t := clock.Now()
	if err == nil && !strings.EqualFold(orDefault(tok.TokenType, "bearer"), "bearer") {
		err = fmt.Errorf("the token endpoint issued a %q token, not a bearer token", tok.TokenType)
	}
	if err != nil {
		err = ccError(err)
		c.logger.Warn("client-credentials token request failed",
			zap.String("credential", c.name), zap.String("token_url", c.tokenURL.Redacted()), zap.Error(err))
		return nil, err
	}
	exp := expiry(tok, t)
	if ce := c.logger.Check(zap.DebugLevel, "client-credentials token issued"); ce != nil {
		ce.Write(zap.String("credential", c.name), zap.Time("expiry", exp))
	}
	return &tokenstore.TokenSet{AccessToken: tok.AccessToken, TokenType: "Bearer", Expiry: exp, RefreshedAt: t}, nil
}

// ccFailure is a token-request failure: a class for the client's 503 and a
// detail for logs — the status and OAuth error code, never the response body
// (it could echo a secret).
type ccFailure struct {
	class  string // what went wrong, for the client's 503
	remedy string
	detail string // for logs
}

func (e *ccFailure) Error() string { return e.class + ": " + e.detail }

// ccError classifies a token-request error.
func ccError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := re.Response.StatusCode
		detail := fmt.Sprintf("token endpoint answered HTTP %d", status)
		if re.ErrorCode != "" {
			detail += " " + re.ErrorCode
		}
		if d := re.ErrorDescription; d != "" {
			detail += " (" + truncate(d, 200) + ")"
		}
		switch {
		case status >= 500 || status == http.StatusTooManyRequests:
			return &ccFailure{"the token endpoint failed", "the authorization server may be down or rate limiting; the gateway retries", detail}
		case re.ErrorCode == "invalid_scope":
			return &ccFailure{"the token endpoint refused the requested scopes", "check `scopes` against the scopes granted to the client", detail}
		case status == http.StatusUnauthorized || re.ErrorCode == "invalid_client" || re.ErrorCode == "access_denied" || re.ErrorCode == "unauthorized_client":
			return &ccFailure{"the token endpoint rejected the client credentials", "check client_id, client_secret and client_auth", detail}
		}
		return &ccFailure{"the token endpoint refused the token request", "check token_url, client_auth and the token-request parameters", detail}
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) {
		return &ccFailure{"the token endpoint could not be reached", "check connectivity and TLS trust (trusted_ca_file) from the gateway to the token endpoint", err.Error()}
	}
	return &ccFailure{"the token endpoint's answer was not a usable token", "check token_url", err.Error()}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (c *ClientCredentials) unavailable(err error) error {
	var f *ccFailure
	if !errors.As(err, &f) {
		f = &ccFailure{class: "no access token could be obtained", detail: err.Error()}
	}
	return &atlasgate.UnavailableError{
		Credential: c.name,
		Reason:     f.class,
		Remedy:     f.remedy,
		Err:        errors.New(f.detail),
	}
}

// UnmarshalCaddyfile sets up a client_credentials credential:
//
//	credential <name> client_credentials {
//	    token_url     <url>                 # default https://auth.atlassian.com/oauth/token
//	    client_id     <id>
//	    client_secret <{env.NAME}|{file.PATH}>
//	    scopes        <scope...>
//	    audience      <audience>
//	    client_auth   body|basic
//	    param         <name> <value>        # repeatable
//	    site          <https://acme.atlassian.net>
//	    routing       ex|direct
//	    api_base      <url>
//	    trusted_ca_file <pem_file...>
//	    refresh_before  <duration>
//	}
func (c *ClientCredentials) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume credential type
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "token_url":
			err = cfparse.One(d, &c.TokenURL)
		case "client_id":
			err = cfparse.One(d, &c.ClientID)
		case "client_secret":
			err = cfparse.One(d, &c.ClientSecret)
		case "scopes":
			err = cfparse.More(d, &c.Scopes)
		case "audience":
			err = cfparse.One(d, &c.Audience)
		case "client_auth":
			err = cfparse.One(d, &c.ClientAuth)
		case "param":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.ArgErr()
			}
			if c.Params == nil {
				c.Params = map[string]string{}
			}
			c.Params[args[0]] = args[1]
		case "site":
			err = cfparse.One(d, &c.Site)
		case "routing":
			err = cfparse.One(d, &c.Routing)
		case "api_base":
			err = cfparse.One(d, &c.APIBase)
		case "trusted_ca_file":
			err = cfparse.More(d, &c.TrustedCAFiles)
		case "refresh_before":
			err = cfparse.Duration(d, &c.RefreshBefore)
		default:
			return d.Errf("client_credentials: unrecognized option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner        = (*ClientCredentials)(nil)
	_ caddy.CleanerUpper       = (*ClientCredentials)(nil)
	_ caddyfile.Unmarshaler    = (*ClientCredentials)(nil)
	_ atlasgate.Credential     = (*ClientCredentials)(nil)
	_ atlasgate.Refresher      = (*ClientCredentials)(nil)
	_ atlasgate.ReplayObserver = (*ClientCredentials)(nil)
)

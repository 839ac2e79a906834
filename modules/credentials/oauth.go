package credentials

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/authn"
	"github.com/atlasgate/atlasgate/modules/tokenstore"
)

func init() {
	caddy.RegisterModule(OAuth{})
}

// Atlassian's OAuth 2.0 (3LO) endpoints.
const (
	defaultAuthorizeURL = "https://auth.atlassian.com/authorize"
	defaultTokenURL     = "https://auth.atlassian.com/oauth/token"
)

// OAuth is an OAuth 2.0 authorization-code ("3LO") credential: a person
// authorizes the gateway once in the console (Authorize → Atlassian's consent
// page → callback), and the gateway then calls Jira and Confluence Cloud as
// that account, refreshing the access token itself.
//
// Atlassian's refresh tokens rotate, and reusing a replaced one after a
// 10-minute leeway revokes the whole grant; the token set therefore lives
// encrypted in Caddy's storage (the app's `encryption_key`) and is refreshed
// with the protocol of tokenstore.Manager: single-flight, storage lock,
// re-read, generation numbers. Requests are routed to
// `{api_base}/ex/{jira|confluence}/{cloudId}` while clients keep site paths;
// the cloudId is picked from accessible-resources at authorization time.
type OAuth struct {
	// The OAuth app's client id (Atlassian developer console). Required.
	ClientID string `json:"client_id,omitempty"`

	// The app's client secret, as an `{env.NAME}` or `{file.PATH}`
	// placeholder. Required.
	ClientSecret string `json:"client_secret,omitempty"`

	// Scopes to request. Must include `offline_access`, without which
	// Atlassian issues no refresh token and the credential dies after an
	// hour. Required.
	Scopes []string `json:"scopes,omitempty"`

	// The Atlassian site the client addresses, e.g. `https://acme.atlassian.net`.
	// Its cloudId is chosen from the sites the grant covers. Required.
	Site string `json:"site,omitempty"`

	// The gateway's public callback URL, registered as the app's callback
	// URL: the console's `/callback` (e.g.
	// `https://gateway.example.com/atlasgate/oauth/callback`). Required.
	CallbackURL string `json:"callback_url,omitempty"`

	// Endpoints, Atlassian's by default; overridable for the simulator and for
	// authorization servers with the same flow.
	AuthorizeURL string `json:"authorize_url,omitempty"`
	TokenURL     string `json:"token_url,omitempty"`
	APIBase      string `json:"api_base,omitempty"`

	// The `audience` authorization parameter. Default `api.atlassian.com`.
	Audience string `json:"audience,omitempty"`

	// PEM files of the CAs the authorization server's and API's certificates
	// must chain to. Default: system roots.
	TrustedCAFiles []string `json:"trusted_ca_files,omitempty"`

	// Refresh the access token when less than this is left. Default 5m.
	RefreshBefore caddy.Duration `json:"refresh_before,omitempty"`

	// Refresh an idle grant at least this often, far inside Atlassian's
	// 90-day inactivity expiry. Default 30 days.
	KeepAlive caddy.Duration `json:"keep_alive,omitempty"`

	// Delegated mode: each authenticated caller authorizes their own
	// Atlassian account once (in the console, or through the link in the 403
	// they get until then), and their requests then run as themselves, so
	// Atlassian's own permissions and audit apply. Token sets are kept per
	// identity with the same lifecycle guarantees. Needs an authenticated
	// identity on the requests (atlasgate_auth, or basic_auth) and on the
	// console. Default false: one grant shared by every caller.
	PerUser bool `json:"per_user,omitempty"`

	name       string
	site       *url.URL
	apiBase    *url.URL
	roots      *x509.CertPool
	client     *http.Client
	config     *oauth2.Config
	mgr        *tokenstore.Manager // shared mode
	users      *userEngines        // per-user mode: the recent callers' managers
	ctx        context.Context
	store      *tokenstore.Store
	logger     *zap.Logger
	consoleURL string
}

// CaddyModule returns the Caddy module information.
func (OAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "atlasgate.credentials.oauth",
		New: func() caddy.Module { return new(OAuth) },
	}
}

// Provision checks the configuration and sets up the token manager.
func (c *OAuth) Provision(ctx caddy.Context) error {
	c.name = atlasgate.CredentialName(ctx)
	c.logger = ctx.Logger()
	var err error
	if c.ClientID, err = atlasgate.ResolveValue("client_id", c.ClientID); err != nil {
		return err
	}
	secret, err := atlasgate.ResolveSecret("client_secret", c.ClientSecret)
	if err != nil {
		return err
	}
	if !slices.Contains(c.Scopes, "offline_access") {
		return errField("scopes", "must include offline_access: without it Atlassian issues no refresh token and the credential stops working after an hour")
	}
	site, err := atlasgate.ResolveValue("site", c.Site)
	if err != nil {
		return err
	}
	if c.site, err = parseBase("site", site); err != nil {
		return err
	}
	cb, err := atlasgate.ResolveValue("callback_url", c.CallbackURL)
	if err != nil {
		return err
	}
	cbURL, err := url.Parse(cb)
	if err != nil || cbURL.Host == "" || (cbURL.Scheme != "https" && !(cbURL.Scheme == "http" && isLoopback(cbURL.Hostname()))) {
		return errField("callback_url", "must be the gateway's public https:// callback URL (http only for localhost)")
	}
	authURL, tokenURL := orDefault(c.AuthorizeURL, defaultAuthorizeURL), orDefault(c.TokenURL, defaultTokenURL)
	for field, v := range map[string]string{"authorize_url": authURL, "token_url": tokenURL} {
		if _, err := parseBase(field, v); err != nil {
			return err
		}
	}
	if c.apiBase, err = parseBase("api_base", orDefault(c.APIBase, defaultAPIBase)); err != nil {
		return err
	}
	if c.roots, err = loadRoots("trusted_ca_files", c.TrustedCAFiles); err != nil {
		return err
	}
	store, err := atlasgate.TokenStore(ctx)
	if err != nil {
		return err
	}
	c.client = newClient(c.roots)
	c.config = &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: secret,
		Endpoint:     oauth2.Endpoint{AuthURL: authURL, TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL:  cb,
		Scopes:       c.Scopes,
	}
	c.consoleURL = strings.TrimSuffix(cb, "/callback")
	c.store = store
	c.ctx = ctx
	c.users = newUserEngines(maxUserEngines)
	if !c.PerUser {
		c.mgr = c.newManager(c.storageName())
	}
	go c.maintain(ctx)
	return nil
}

func (c *OAuth) newManager(name string) *tokenstore.Manager {
	return &tokenstore.Manager{
		Store:   c.store,
		Name:    name,
		Refresh: c.refresh,
		Skew:    time.Duration(c.RefreshBefore),
		Context: c.ctx,
		Logger:  c.logger,
	}
}

// storageName keys the token set by credential name: renaming the credential
// in the config means authorizing it again.
func (c *OAuth) storageName() string { return "oauth-" + c.name }

// usersPrefix is where per-user token sets live, one per caller, keyed by a
// hash of the caller's identity.
func (c *OAuth) usersPrefix() string { return c.storageName() + "/users/" }

// noCallerRemedy is what to do when a per-user credential meets a request
// without an authenticated identity.
const noCallerRemedy = "put atlasgate_auth (or another authentication handler) before atlasgate_proxy and the console"

// errNoCaller is a new error each time: the proxy fills in the credential name.
func errNoCaller() error {
	return &atlasgate.UnavailableError{
		Status: http.StatusUnauthorized,
		Code:   "authentication_required",
		Reason: "it acts as the calling user, and this request has no authenticated identity",
		Remedy: noCallerRemedy,
	}
}

// manager returns the token manager for the request: the shared one, or the
// caller's own in per-user mode.
func (c *OAuth) manager(ctx context.Context) (*tokenstore.Manager, error) {
	if !c.PerUser {
		return c.mgr, nil
	}
	who := caller(ctx)
	if who == "" {
		return nil, errNoCaller()
	}
	sum := sha256.Sum256([]byte(who))
	name := c.usersPrefix() + hex.EncodeToString(sum[:16])
	return c.users.get(name, c.newManager), nil
}

// caller identifies the authenticated caller of a request: the identity that
// atlasgate_auth established (qualified by its authenticator, so that two
// identity providers' "alice" stay apart), else Caddy's {http.auth.user.id}.
func caller(ctx context.Context) string {
	if id, ok := caddyhttp.GetVar(ctx, authn.IdentityVar).(*authn.Identity); ok && id != nil && id.User != "" {
		return id.Authenticator + ":" + id.User
	}
	if repl, ok := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if u, _ := repl.GetString("http.auth.user.id"); u != "" {
			return "caddy:" + u
		}
	}
	return ""
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// Target implements atlasgate.Credential: the API gateway route of the
// authorized site, or an *UnavailableError saying what a person must do.
func (c *OAuth) Target(ctx context.Context, path string) (*url.URL, error) {
	mgr, err := c.manager(ctx)
	if err != nil {
		return nil, err
	}
	ts, err := mgr.Token(ctx)
	if err != nil {
		return nil, c.unavailable(err)
	}
	if ts.SiteURL != "" && ts.SiteURL != c.site.String() {
		// The config now names another site than the one authorized.
		return nil, c.unavailable(&tokenstore.ReauthError{Reason: "it was authorized for " + ts.SiteURL + ", and the configured site is now " + c.site.String()})
	}
	return exURL(c.apiBase, ts.CloudID, path), nil
}

func (c *OAuth) unavailable(err error) error {
	var re *tokenstore.ReauthError
	// The console's confirmation page for this credential: under the
	// console's prefix (where every shipped Caddyfile routes the console),
	// and a GET that changes nothing until the person presses Authorize.
	link := c.consoleURL + "/authorize/" + url.PathEscape(c.name)
	remedy := "open " + link + " (the atlasgate console) and click Authorize"
	switch {
	case c.PerUser && (errors.Is(err, tokenstore.ErrUnauthorized) || errors.As(err, &re)):
		reason := "you have not authorized the gateway to use your Atlassian account yet"
		if re != nil {
			reason = "your authorization must be renewed: " + re.Reason
		}
		return &atlasgate.UnavailableError{
			Status: http.StatusForbidden, Code: "authorization_required",
			Reason: reason, Remedy: "open the link and click Authorize", Link: link, Err: err,
		}
	case errors.Is(err, tokenstore.ErrUnauthorized):
		return &atlasgate.UnavailableError{Reason: "no one has authorized it yet", Remedy: remedy, Link: link, Awaiting: true}
	case errors.As(err, &re):
		return &atlasgate.UnavailableError{Reason: "it must be authorized again: " + re.Reason, Remedy: remedy, Link: link, Err: err}
	case errors.Is(err, tokenstore.ErrUnreadable):
		return &atlasgate.UnavailableError{Reason: "its token set could not be read from storage",
			Remedy: "check the storage and that every replica has the same encryption_key; the gateway log has the cause", Err: err}
	case errors.Is(err, tokenstore.ErrTooManyForced):
		return &atlasgate.UnavailableError{Reason: "the upstream refuses freshly refreshed access tokens",
			Remedy: "check the grant's scopes and the account's access to the site", Err: err}
	}
	return &atlasgate.UnavailableError{Reason: "its access token expired and could not be refreshed", Remedy: "the authorization server may be unreachable; the gateway keeps retrying", Err: err}
}

// Origins implements atlasgate.Credential.
func (c *OAuth) Origins() []*url.URL { return []*url.URL{c.apiBase} }

// Home implements atlasgate.Credential.
func (c *OAuth) Home() *url.URL { return c.site }

// RootCAs implements atlasgate.Credential.
func (c *OAuth) RootCAs() *x509.CertPool { return c.roots }

// Inject implements atlasgate.Credential.
func (c *OAuth) Inject(req *http.Request) error {
	mgr, err := c.manager(req.Context())
	if err != nil {
		return err
	}
	ts, err := mgr.Token(req.Context())
	if err != nil {
		return c.unavailable(err)
	}
	req.Header["Authorization"] = []string{"Bearer " + ts.AccessToken}
	return nil
}

// Reauthenticate implements atlasgate.Refresher: the upstream rejected the
// access token in req (401), so refresh — unless a newer one is held or
// stored already — and set the new token on req. A dead grant or unreadable
// storage comes back as the credential's UnavailableError (the client gets
// the gateway's answer); a refresh refused as futile as a plain error (the
// upstream's 401 stands).
func (c *OAuth) Reauthenticate(req *http.Request) error {
	mgr, err := c.manager(req.Context())
	if err != nil {
		return err
	}
	sent := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
	if cur := mgr.Cached(); cur != nil && cur.AccessToken == sent {
		if _, err := mgr.Invalidate(req.Context(), cur); errors.Is(err, tokenstore.ErrTooManyForced) {
			return err
		} else if err != nil {
			return c.unavailable(err)
		}
	}
	return c.Inject(req)
}

// ReplayRefused implements atlasgate.ReplayObserver: counts toward the bound
// of futile forced refreshes.
func (c *OAuth) ReplayRefused(req *http.Request) {
	if mgr, err := c.manager(req.Context()); err == nil {
		mgr.Engine().ReplayRefused()
	}
}

// Manager returns the token manager for a request's caller (per-user mode) or
// the shared one, for the console and the admin API.
func (c *OAuth) Manager(ctx context.Context) (*tokenstore.Manager, error) { return c.manager(ctx) }

// IsPerUser reports whether each caller authorizes their own account.
func (c *OAuth) IsPerUser() bool { return c.PerUser }

// Interface guards
var (
	_ caddy.Provisioner        = (*OAuth)(nil)
	_ atlasgate.Credential     = (*OAuth)(nil)
	_ atlasgate.Refresher      = (*OAuth)(nil)
	_ atlasgate.ReplayObserver = (*OAuth)(nil)
)

package atlassim

import (
	"crypto/rand"
	"encoding/base64"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// The simulated OAuth 2.0 authorization server (HostAuth, standing in for
// auth.atlassian.com) implements Atlassian's authorization code flow ("3LO")
// and service-account client credentials as ../shared/ATLASSIAN.md describes
// them: rotating refresh tokens with a reuse leeway, family revocation on a
// late reuse, inactivity and absolute expiry, refresh responses that may omit
// refresh_token, and accessible-resources at the api host. Every time-based
// rule goes through the simulator's clock (Config.Clock, Sim.Advance).
//
// This file holds the registration API, the token state and the api-host side
// (bearer checking, accessible-resources); oauth_authorize.go serves
// /authorize and the consent page, oauth_token.go serves /oauth/token.

// Demo OAuth values registered by Config.Seed. Like the other Demo*
// constants they are made up and grant nothing anywhere.
const (
	// DemoSiteName is the name accessible-resources reports for the
	// simulated site (HostSite).
	DemoSiteName = "acme"

	// DemoOAuthClientID and DemoOAuthClientSecret identify the demo 3LO app
	// (DemoOAuthAppName), which may redirect only to DemoOAuthRedirectURI
	// (exact match; register more with AddRedirectURI).
	DemoOAuthClientID     = "Xq7bN2dEmOaTlAsGaTe3LoCl1eNt0001"
	DemoOAuthClientSecret = "ATOAdemoOAuthClientSecretNotReal0123456789abcdefABCDEF0123456789AB"
	DemoOAuthAppName      = "atlasgate demo"
	DemoOAuthRedirectURI  = "http://localhost:8080/atlasgate/oauth/callback"

	// DemoServiceAccountClientID and DemoServiceAccountClientSecret are the
	// client credentials of the demo service account DemoServiceAccountID
	// (scopes DemoScopes, every site).
	DemoServiceAccountClientID     = "Sv4cCdEmOsErViCeAcCoUnTcL1eNt002"
	DemoServiceAccountClientSecret = "ATSAdemoServiceAccountSecretNotReal9876543210fedcbaFEDCBA98765432"
	DemoServiceAccountID           = "712020:3f6c1d2e-8a9b-4c0d-9e1f-2a3b4c5d6e7f"
	DemoServiceAccountEmail        = "atlasgate-demo-bot@serviceaccount.atlassian.com"
)

// Lifetimes the authorization server enforces, as Atlassian documents them.
const (
	AccessTokenLifetime = time.Hour        // 3LO and client-credentials access tokens
	AuthCodeLifetime    = 10 * time.Minute // authorization codes (single use)
	// RefreshLeeway is how long a replaced refresh token, and the access
	// tokens issued with it, stay valid after a rotation.
	RefreshLeeway = 10 * time.Minute
	// RefreshInactivity is how long a refresh token lives unused; each
	// refresh resets it.
	RefreshInactivity = 90 * 24 * time.Hour
	// RefreshAbsolute is how long a chain of refresh tokens lives from the
	// consent that started it, however often it is refreshed.
	RefreshAbsolute = 365 * 24 * time.Hour
)

// ScopeOfflineAccess is the scope without which no refresh token is issued.
const ScopeOfflineAccess = "offline_access"

// OAuthApp is a registered OAuth 2.0 (3LO) integration.
type OAuthApp struct {
	ClientID, ClientSecret string
	Name                   string // shown on the consent page
	// RedirectURIs are the callback URLs /authorize accepts, compared
	// exactly (no wildcards, no port ranges), as Atlassian does.
	RedirectURIs []string
	// Scopes limits what the app may request (offline_access is always
	// allowed); nil allows any scope.
	Scopes []string
	// AutoConsent skips the consent page for this app (see
	// Config.AutoConsent).
	AutoConsent bool
}

// ServiceAccount is an Atlassian service account's OAuth 2.0 client
// credentials.
type ServiceAccount struct {
	ClientID, ClientSecret string
	AccountID              string   // the service account's accountId
	Scopes                 []string // scopes its access tokens carry
	// Sites are the cloudIds it may reach; nil means every site (HostSite
	// and those added with AddSite).
	Sites []string
}

// Site is an Atlassian Cloud site as accessible-resources lists it. The
// simulated site (HostSite, DemoCloudID) is always present; AddSite adds more
// so tests can check that the gateway picks the right one by URL. Added sites
// only appear in listings and grants: /ex routes answer 404 for their
// cloudIds, so a gateway that picks the wrong site fails visibly.
type Site struct {
	CloudID, Name, URL, AvatarURL string
}

// TokenCall is one request to the token endpoint, for tests that assert
// e.g. "exactly one refresh happened". It never holds a secret or token.
type TokenCall struct {
	Time      time.Time // simulator time
	GrantType string    // as sent (may be empty or bogus)
	ClientID  string    // as sent in the body
	AccountID string    // whom the issued tokens act for; "" unless Status is 200
	Status    int
	// Outcome is a stable code: "issued", "issued_reuse_in_leeway" (a
	// replaced refresh token reused within RefreshLeeway), "issued_no_refresh_token"
	// (the response omitted refresh_token on purpose), "invalid_request",
	// "invalid_client", "unauthorized_client", "unsupported_grant_type",
	// "invalid_scope", "invalid_grant", "grant_revoked" (a late reuse that
	// just revoked the whole grant), "injected_failure" (FailTokenEndpoint).
	Outcome string
}

type grantKey struct{ clientID, accountID string }

// grant is the consent of one account to one app (or a service account's
// standing grant). Revocation bumps epoch, which kills every token issued
// under an older epoch; a new consent clears revoked but keeps the epoch, so
// the old tokens stay dead.
type grant struct {
	epoch    int
	revoked  bool
	sites    []string // consented cloudIds (3LO)
	allSites bool     // service account without a site list
}

type accessToken struct {
	g         *grant
	epoch     int
	accountID string
	scopes    []string
	sites     []string // service accounts: fixed at issue; nil with g.allSites
	expires   time.Time
	rt        *refreshToken // the refresh token it was issued with, if any
}

type refreshToken struct {
	g          *grant
	epoch      int
	clientID   string
	accountID  string
	scopes     []string
	consentAt  time.Time // start of the absolute lifetime
	activeAt   time.Time // start of the inactivity lifetime
	replacedAt time.Time // zero while current
}

type authCode struct {
	clientID, redirectURI, accountID string
	scopes, sites                    []string
	issued                           time.Time
	used                             bool
}

// authRequest is a validated /authorize request waiting on the consent page.
type authRequest struct {
	app         OAuthApp
	redirectURI string
	state       string
	scopes      []string
	created     time.Time
}

// oauthState is the authorization server's data, guarded by its own lock so
// token checks never contend with the product data in Sim.mu.
type oauthState struct {
	mu              sync.RWMutex
	apps            map[string]OAuthApp
	serviceAccounts map[string]ServiceAccount
	sites           []Site // besides HostSite
	consentAs       string
	autoConsent     bool
	omitEvery       int
	refreshes       int // successful rotating refreshes, for omitEvery
	issued          int // access tokens issued, to pace sweep
	pending         map[string]*authRequest
	codes           map[string]*authCode
	grants          map[grantKey]*grant
	access          map[string]*accessToken
	refresh         map[string]*refreshToken
	calls           []TokenCall
	maxCalls        int
	failN           int
	failStatus      int
}

func newOAuthState(cfg Config) *oauthState {
	return &oauthState{
		apps:            map[string]OAuthApp{},
		serviceAccounts: map[string]ServiceAccount{},
		consentAs:       DemoAccountID,
		autoConsent:     cfg.AutoConsent,
		omitEvery:       max(cfg.OmitRefreshToken, 0),
		pending:         map[string]*authRequest{},
		codes:           map[string]*authCode{},
		grants:          map[grantKey]*grant{},
		access:          map[string]*accessToken{},
		refresh:         map[string]*refreshToken{},
		maxCalls:        cfg.MaxRecorded,
	}
}

func (s *Sim) seedOAuth() {
	s.RegisterOAuthApp(OAuthApp{
		ClientID: DemoOAuthClientID, ClientSecret: DemoOAuthClientSecret,
		Name: DemoOAuthAppName, RedirectURIs: []string{DemoOAuthRedirectURI},
	})
	s.AddUser(User{AccountID: DemoServiceAccountID, Email: DemoServiceAccountEmail, DisplayName: "atlasgate demo bot"})
	s.RegisterServiceAccount(ServiceAccount{
		ClientID: DemoServiceAccountClientID, ClientSecret: DemoServiceAccountClientSecret,
		AccountID: DemoServiceAccountID, Scopes: DemoScopes,
	})
}

// RegisterOAuthApp adds or replaces a 3LO app. Replacing one keeps its
// grants and tokens.
func (s *Sim) RegisterOAuthApp(app OAuthApp) {
	app.RedirectURIs = slices.Clone(app.RedirectURIs)
	app.Scopes = slices.Clone(app.Scopes)
	o := s.oauth
	o.mu.Lock()
	defer o.mu.Unlock()
	o.apps[app.ClientID] = app
}

// AddRedirectURI registers one more exact redirect URI for a 3LO app, e.g.
// the callback of a gateway listening on an ephemeral port. It reports
// whether the app exists.
func (s *Sim) AddRedirectURI(clientID, uri string) bool {
	o := s.oauth
	o.mu.Lock()
	defer o.mu.Unlock()
	app, ok := o.apps[clientID]
	if ok && !slices.Contains(app.RedirectURIs, uri) {
		app.RedirectURIs = append(slices.Clone(app.RedirectURIs), uri)
		o.apps[clientID] = app
	}
	return ok
}

// RegisterServiceAccount adds or replaces a service account's client
// credentials.
func (s *Sim) RegisterServiceAccount(sa ServiceAccount) {
	sa.Scopes = slices.Clone(sa.Scopes)
	sa.Sites = slices.Clone(sa.Sites)
	o := s.oauth
	o.mu.Lock()
	defer o.mu.Unlock()
	o.serviceAccounts[sa.ClientID] = sa
}

// AddSite adds (or, by CloudID, replaces) a site that consents can grant and
// accessible-resources lists. See Site for what an added site can and cannot
// do.
func (s *Sim) AddSite(site Site) {
	if site.AvatarURL == "" {
		site.AvatarURL = avatarURL(site.Name)
	}
	o := s.oauth
	o.mu.Lock()
	defer o.mu.Unlock()
	if i := slices.IndexFunc(o.sites, func(x Site) bool { return x.CloudID == site.CloudID }); i >= 0 {
		o.sites[i] = site
		return
	}
	o.sites = append(o.sites, site)
}

// Sites returns every site: the simulated one (HostSite) first, then those
// added with AddSite.
func (s *Sim) Sites() []Site {
	s.oauth.mu.RLock()
	defer s.oauth.mu.RUnlock()
	return s.sitesLocked()
}

// sitesLocked must be called with s.oauth.mu held.
func (s *Sim) sitesLocked() []Site {
	main := Site{CloudID: s.cloudID, Name: DemoSiteName, URL: s.URL(HostSite), AvatarURL: avatarURL(DemoSiteName)}
	return append([]Site{main}, s.oauth.sites...)
}

func avatarURL(name string) string {
	return "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/" + name + ".png"
}

// ConsentAs sets the account that consents on the consent page and under
// auto-consent; the default is DemoAccountID (Alice). The account needs no
// User record.
func (s *Sim) ConsentAs(accountID string) {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	s.oauth.consentAs = accountID
}

// SetAutoConsent turns auto-consent (Config.AutoConsent) on or off.
func (s *Sim) SetAutoConsent(on bool) {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	s.oauth.autoConsent = on
}

// SetOmitRefreshToken changes Config.OmitRefreshToken: every nth successful
// refresh from now on omits refresh_token (0 = never).
func (s *Sim) SetOmitRefreshToken(n int) {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	s.oauth.omitEvery, s.oauth.refreshes = max(n, 0), 0
}

// FailTokenEndpoint makes the next n requests to /oauth/token fail with
// status (default 500) before anything else is checked, for resilience
// tests. Nothing is consumed: a refresh token sent in a failed call stays as
// it was.
func (s *Sim) FailTokenEndpoint(n, status int) {
	if status == 0 {
		status = http.StatusInternalServerError
	}
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	s.oauth.failN, s.oauth.failStatus = max(n, 0), status
}

// TokenCalls returns the calls that reached the token endpoint, oldest first
// (at most Config.MaxRecorded of them). Requests a RateLimit rule answered
// never reach it.
func (s *Sim) TokenCalls() []TokenCall {
	s.oauth.mu.RLock()
	defer s.oauth.mu.RUnlock()
	return slices.Clone(s.oauth.calls)
}

// ResetTokenCalls forgets the recorded token-endpoint calls.
func (s *Sim) ResetTokenCalls() {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	s.oauth.calls = nil
}

// GrantRevoked reports whether the grant of accountID to clientID (a 3LO app
// or a service account) has been revoked — by RevokeGrant or by a refresh
// token reused after the leeway — and not re-established by a new consent
// since. An account that never consented has no grant: false.
func (s *Sim) GrantRevoked(clientID, accountID string) bool {
	s.oauth.mu.RLock()
	defer s.oauth.mu.RUnlock()
	g := s.oauth.grants[grantKey{clientID, accountID}]
	return g != nil && g.revoked
}

// RevokeGrant simulates the user (or an admin) revoking accountID's consent
// to clientID: every access and refresh token of the grant dies at once. It
// reports whether there was a grant.
func (s *Sim) RevokeGrant(clientID, accountID string) bool {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	g := s.oauth.grants[grantKey{clientID, accountID}]
	if g == nil {
		return false
	}
	g.revoke()
	return true
}

func (g *grant) revoke() { g.epoch++; g.revoked = true }

// recordCall must be called with o.mu held.
func (o *oauthState) recordCall(tc TokenCall) {
	o.calls = append(o.calls, tc)
	if o.maxCalls > 0 && len(o.calls) > o.maxCalls {
		o.calls = slices.Delete(o.calls, 0, len(o.calls)-o.maxCalls)
	}
}

// newToken returns an opaque random token. Atlassian's are JWTs, but clients
// must not look inside them, so the simulator gives them nothing to look at.
func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// valid reports whether t may still be used at now; o.mu held.
func (t *accessToken) valid(now time.Time) bool {
	if t.epoch != t.g.epoch || !now.Before(t.expires) {
		return false
	}
	// The pair of a replaced refresh token dies with it after the leeway,
	// possibly well before its own expiry.
	return t.rt == nil || t.rt.replacedAt.IsZero() || now.Before(t.rt.replacedAt.Add(RefreshLeeway))
}

// siteIDsLocked returns the cloudIds an access token reaches; o.mu held.
func (s *Sim) siteIDsLocked(t *accessToken) []string {
	if t.g.allSites {
		var ids []string
		for _, site := range s.sitesLocked() {
			ids = append(ids, site.CloudID)
		}
		return ids
	}
	if t.sites != nil {
		return t.sites
	}
	return t.g.sites
}

// oauthBearer checks an access token presented at an /ex route for cloudID.
// known reports whether the authorization server ever issued it; ok whether
// it is still valid and its grant covers the site.
func (s *Sim) oauthBearer(token, cloudID string) (accountID string, scopes []string, known, ok bool) {
	now := s.now()
	o := s.oauth
	o.mu.RLock()
	defer o.mu.RUnlock()
	t := o.access[token]
	if t == nil {
		return "", nil, false, false
	}
	if !t.valid(now) || (cloudID != "" && !slices.Contains(s.siteIDsLocked(t), cloudID)) {
		return "", nil, true, false
	}
	return t.accountID, slices.Clone(t.scopes), true, true
}

// accessibleResources serves GET https://api.atlassian.com/oauth/token/accessible-resources:
// the sites the bearer's grant covers, in no meaningful order (shuffled on
// every call, so a client that takes the first entry is caught).
func (s *Sim) accessibleResources(c *call) {
	if c.r.Method != http.MethodGet {
		c.json(http.StatusMethodNotAllowed, map[string]any{"code": http.StatusMethodNotAllowed, "message": "Method Not Allowed"})
		return
	}
	kind, _, token := splitAuth(c.r.Header.Get("Authorization"))
	now := s.now()
	o := s.oauth
	o.mu.RLock()
	t := o.access[token]
	if kind != "bearer" || t == nil || !t.valid(now) {
		o.mu.RUnlock()
		c.json(http.StatusUnauthorized, map[string]any{"code": http.StatusUnauthorized, "message": "Unauthorized"})
		return
	}
	ids := s.siteIDsLocked(t)
	var sites []Site
	for _, site := range s.sitesLocked() {
		if slices.Contains(ids, site.CloudID) {
			sites = append(sites, site)
		}
	}
	account := t.accountID
	// offline_access is about the grant, not a site, and Atlassian's
	// listing shows only product scopes.
	scopes := slices.DeleteFunc(slices.Clone(t.scopes), func(sc string) bool { return sc == ScopeOfflineAccess })
	o.mu.RUnlock()

	mrand.Shuffle(len(sites), func(i, j int) { sites[i], sites[j] = sites[j], sites[i] })
	out := make([]map[string]any, 0, len(sites))
	for _, site := range sites {
		out = append(out, map[string]any{
			"id": site.CloudID, "name": site.Name, "url": site.URL,
			"scopes": scopes, "avatarUrl": site.AvatarURL,
		})
	}
	c.principal = account
	c.json(http.StatusOK, out)
}

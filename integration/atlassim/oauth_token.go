package atlassim

import (
	"crypto/subtle"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// tokenResult is what the token endpoint answers, decided under the lock and
// written after it.
type tokenResult struct {
	status  int
	body    map[string]any
	outcome string
	account string
}

func tokenError(status int, code, desc string) tokenResult {
	return tokenResult{status: status, body: map[string]any{"error": code, "error_description": desc}, outcome: code}
}

var (
	// Atlassian answers a failed client authentication this way (401), not
	// with RFC 6749's invalid_client.
	errClientAuth = tokenError(http.StatusUnauthorized, "access_denied", "Unauthorized")
	// One answer for every unusable refresh token, whatever the reason.
	errRefresh = tokenError(http.StatusForbidden, "invalid_grant", "Unknown or invalid refresh token.")
	errCode    = tokenError(http.StatusForbidden, "invalid_grant", "Invalid authorization code")
)

// oauthToken serves POST /oauth/token for the grant types authorization_code,
// refresh_token and client_credentials. The body is JSON, as Atlassian
// documents, or application/x-www-form-urlencoded. The client authenticates
// only with client_id and client_secret in the body.
func (s *Sim) oauthToken(c *call) {
	now := s.now()
	p, parsed := tokenParams(c)
	o := s.oauth
	o.mu.Lock()
	res := s.tokenLocked(c, p, parsed, now)
	tc := TokenCall{Time: now, GrantType: p["grant_type"], ClientID: p["client_id"], Status: res.status, Outcome: res.outcome}
	if res.status == http.StatusOK {
		tc.AccountID = res.account
	}
	o.recordCall(tc)
	o.mu.Unlock()

	if res.status == http.StatusOK {
		c.principal = res.account
	}
	c.Header().Set("Cache-Control", "no-store")
	c.Header().Set("Pragma", "no-cache")
	c.json(res.status, res.body)
}

// tokenParams reads the body's parameters; ok is false when it cannot be
// parsed or a JSON value is not a string.
func tokenParams(c *call) (p map[string]string, ok bool) {
	p = map[string]string{}
	ct, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" {
		v, err := url.ParseQuery(string(c.body))
		if err != nil {
			return p, false
		}
		for k := range v {
			p[k] = v.Get(k)
		}
		return p, true
	}
	var m map[string]any
	if err := json.Unmarshal(c.body, &m); err != nil {
		return p, false
	}
	ok = true
	for k, v := range m {
		if str, isStr := v.(string); isStr {
			p[k] = str
		} else {
			ok = false
		}
	}
	return p, ok
}

// tokenLocked decides a token request; s.oauth.mu held.
func (s *Sim) tokenLocked(c *call, p map[string]string, parsed bool, now time.Time) tokenResult {
	o := s.oauth
	if o.failN > 0 {
		o.failN--
		res := tokenError(o.failStatus, "server_error", "Simulated failure of the token endpoint")
		res.outcome = "injected_failure"
		return res
	}
	if c.r.Header.Get("Authorization") != "" {
		// HTTP Basic client authentication is how Bitbucket's endpoint
		// works, not Atlassian's: a client that sends it (say, an OAuth
		// library auto-detecting the style) must be caught here, so it is
		// refused even when the body carries the credentials as well.
		res := errClientAuth
		res.outcome = "invalid_client"
		return res
	}
	if !parsed {
		return tokenError(http.StatusBadRequest, "invalid_request", "The request body could not be parsed")
	}
	gt := p["grant_type"]
	if gt == "" {
		return tokenError(http.StatusBadRequest, "invalid_request", "grant_type is required")
	}

	clientID, secret := p["client_id"], p["client_secret"]
	app, isApp := o.apps[clientID]
	sa, isSA := o.serviceAccounts[clientID]
	want := app.ClientSecret
	if isSA {
		want = sa.ClientSecret
	}
	if clientID == "" || secret == "" || (!isApp && !isSA) || subtle.ConstantTimeCompare([]byte(secret), []byte(want)) != 1 {
		res := errClientAuth
		res.outcome = "invalid_client"
		return res
	}

	switch gt {
	case "authorization_code", "refresh_token":
		if !isApp {
			return tokenError(http.StatusBadRequest, "unauthorized_client", "This client may not use grant type "+gt)
		}
		if gt == "authorization_code" {
			return o.exchangeCode(p, now)
		}
		return o.refreshGrant(p, now)
	case "client_credentials":
		if !isSA {
			return tokenError(http.StatusBadRequest, "unauthorized_client", "This client may not use grant type client_credentials")
		}
		return o.clientCredentials(sa, p, now)
	}
	return tokenError(http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant type: "+gt)
}

// exchangeCode redeems a single-use authorization code, bound to the client
// and the redirect_uri it was issued for. A reused code is simply refused;
// whether Atlassian also revokes what the first exchange issued is not
// documented, and a gateway never reuses a code.
func (o *oauthState) exchangeCode(p map[string]string, now time.Time) tokenResult {
	ac := o.codes[p["code"]]
	if ac == nil || ac.used || !now.Before(ac.issued.Add(AuthCodeLifetime)) ||
		ac.clientID != p["client_id"] || ac.redirectURI != p["redirect_uri"] {
		return errCode
	}
	g := o.grants[grantKey{ac.clientID, ac.accountID}]
	if g == nil || g.revoked { // consent withdrawn between consent and exchange
		return errCode
	}
	ac.used = true
	var rt *refreshToken
	rtValue := ""
	if slices.Contains(ac.scopes, ScopeOfflineAccess) {
		rtValue, rt = o.newRefresh(g, ac.clientID, ac.accountID, ac.scopes, ac.issued, now)
	}
	return o.tokenResponse(g, ac.accountID, ac.scopes, rt, rtValue, now, "issued")
}

// refreshGrant implements rotating refresh tokens:
//
//   - A current token is replaced: the response carries a new refresh token
//     and a new access token; the old refresh token and the access tokens
//     issued with it keep working for RefreshLeeway, then die.
//   - A replaced token reused within the leeway (two replicas racing, a
//     response lost in transit) gets a fresh pair and revokes nothing.
//     Atlassian does not document what it returns then; a fresh pair is the
//     conservative choice — the client must cope with either.
//   - A replaced token reused after the leeway revokes the whole grant:
//     every refresh and access token of it, the newest included.
//   - Every Nth refresh (Config.OmitRefreshToken) omits refresh_token; the
//     presented token then stays current and its inactivity clock restarts.
//
// Unknown, revoked, foreign, inactive (RefreshInactivity) and too old
// (RefreshAbsolute from the consent) tokens all get the same invalid_grant.
func (o *oauthState) refreshGrant(p map[string]string, now time.Time) tokenResult {
	rt := o.refresh[p["refresh_token"]]
	if rt == nil || rt.clientID != p["client_id"] || rt.epoch != rt.g.epoch {
		return errRefresh
	}
	reused := !rt.replacedAt.IsZero()
	if reused && !now.Before(rt.replacedAt.Add(RefreshLeeway)) {
		rt.g.revoke()
		res := errRefresh
		res.outcome = "grant_revoked"
		return res
	}
	if !now.Before(rt.consentAt.Add(RefreshAbsolute)) || !now.Before(rt.activeAt.Add(RefreshInactivity)) {
		return errRefresh
	}
	if reused {
		value, next := o.newRefresh(rt.g, rt.clientID, rt.accountID, rt.scopes, rt.consentAt, now)
		return o.tokenResponse(rt.g, rt.accountID, rt.scopes, next, value, now, "issued_reuse_in_leeway")
	}
	o.refreshes++
	if o.omitEvery > 0 && o.refreshes%o.omitEvery == 0 {
		rt.activeAt = now
		return o.tokenResponse(rt.g, rt.accountID, rt.scopes, rt, "", now, "issued_no_refresh_token")
	}
	rt.replacedAt = now
	value, next := o.newRefresh(rt.g, rt.clientID, rt.accountID, rt.scopes, rt.consentAt, now)
	return o.tokenResponse(rt.g, rt.accountID, rt.scopes, next, value, now, "issued")
}

// clientCredentials issues a service account's access token (no refresh
// token). A scope parameter may narrow the scopes; it cannot widen them.
// After RevokeGrant the next request gets a new token: a service account's
// standing grant is its credentials; to lock it out, re-register it with
// another secret.
func (o *oauthState) clientCredentials(sa ServiceAccount, p map[string]string, now time.Time) tokenResult {
	scopes := sa.Scopes
	if req := uniqueFields(p["scope"]); len(req) > 0 {
		for _, sc := range req {
			if !slices.Contains(sa.Scopes, sc) {
				return tokenError(http.StatusBadRequest, "invalid_scope", "Scope not granted to this service account: "+sc)
			}
		}
		scopes = req
	}
	key := grantKey{sa.ClientID, sa.AccountID}
	g := o.grants[key]
	if g == nil {
		g = &grant{}
		o.grants[key] = g
	}
	g.revoked, g.allSites = false, sa.Sites == nil
	res := o.tokenResponse(g, sa.AccountID, scopes, nil, "", now, "issued")
	o.access[res.body["access_token"].(string)].sites = slices.Clone(sa.Sites)
	return res
}

func (o *oauthState) newRefresh(g *grant, clientID, account string, scopes []string, consentAt, now time.Time) (string, *refreshToken) {
	value := newToken()
	rt := &refreshToken{
		g: g, epoch: g.epoch, clientID: clientID, accountID: account, scopes: scopes,
		consentAt: consentAt, activeAt: now,
	}
	o.refresh[value] = rt
	return value, rt
}

// tokenResponse issues an access token paired with rt (nil: none) and builds
// the success body; refreshValue "" omits refresh_token.
func (o *oauthState) tokenResponse(g *grant, account string, scopes []string, rt *refreshToken, refreshValue string, now time.Time, outcome string) tokenResult {
	o.sweep(now)
	at := newToken()
	o.access[at] = &accessToken{g: g, epoch: g.epoch, accountID: account, scopes: scopes, expires: now.Add(AccessTokenLifetime), rt: rt}
	body := map[string]any{
		"access_token": at,
		"expires_in":   int(AccessTokenLifetime / time.Second),
		"token_type":   "Bearer",
		"scope":        strings.Join(scopes, " "),
	}
	if refreshValue != "" {
		body["refresh_token"] = refreshValue
	}
	return tokenResult{status: http.StatusOK, body: body, outcome: outcome, account: account}
}

// sweep drops tokens that can never be accepted again, so long benchmark runs
// do not grow without bound. Replaced refresh tokens are kept until they
// expire anyway: a late reuse of one must still revoke its grant.
func (o *oauthState) sweep(now time.Time) {
	if o.issued++; o.issued%1024 != 0 {
		return
	}
	for k, t := range o.access {
		if t.epoch != t.g.epoch || !now.Before(t.expires) {
			delete(o.access, k)
		}
	}
	for k, rt := range o.refresh {
		if rt.epoch != rt.g.epoch || !now.Before(rt.consentAt.Add(RefreshAbsolute)) ||
			(!now.Before(rt.activeAt.Add(RefreshInactivity)) && rt.replacedAt.IsZero()) {
			delete(o.refresh, k)
		}
	}
}

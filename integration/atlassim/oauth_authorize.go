package atlassim

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// routeAuth serves https://auth.atlassian.com: the authorization endpoint,
// the consent page's form target, and the token endpoint.
func (s *Sim) routeAuth(c *call) {
	var want string
	var serve func(*call)
	switch c.r.URL.Path {
	case "/authorize":
		want, serve = http.MethodGet, s.authorize
	case "/authorize/decision":
		want, serve = http.MethodPost, s.authorizeDecision
	case "/oauth/token":
		want, serve = http.MethodPost, s.oauthToken
	default:
		c.json(http.StatusNotFound, map[string]any{"error": "not_found", "error_description": "Not Found"})
		return
	}
	if c.r.Method != want {
		c.Header().Set("Allow", want)
		c.json(http.StatusMethodNotAllowed, map[string]any{"error": "invalid_request", "error_description": "Method " + c.r.Method + " not allowed"})
		return
	}
	serve(c)
}

// authorize serves GET /authorize. A bad client_id or redirect_uri gets an
// error page (redirecting to an unverified URI would make this an open
// redirector); any other problem is reported to the redirect_uri, as OAuth
// 2.0 prescribes. PKCE parameters are ignored: Atlassian does not support
// PKCE for these apps.
func (s *Sim) authorize(c *call) {
	q := c.r.URL.Query()
	o := s.oauth
	o.mu.RLock()
	app, ok := o.apps[q.Get("client_id")]
	auto := o.autoConsent || app.AutoConsent
	o.mu.RUnlock()
	if !ok {
		c.authError(http.StatusBadRequest, "The app's client_id is not recognised.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !slices.Contains(app.RedirectURIs, redirectURI) {
		c.authError(http.StatusBadRequest, "The redirect_uri does not match any callback URL registered for this app.")
		return
	}
	if _, err := url.Parse(redirectURI); err != nil {
		c.authError(http.StatusBadRequest, "The registered redirect_uri is not a valid URL.")
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) {
		c.redirect(redirectURI, url.Values{"error": {code}, "error_description": {desc}}, state)
	}
	scopes := uniqueFields(q.Get("scope"))
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "response_type must be code")
		return
	case q.Get("audience") != "api.atlassian.com":
		fail("invalid_request", "audience must be api.atlassian.com")
		return
	case len(scopes) == 0:
		fail("invalid_scope", "scope is required")
		return
	}
	if app.Scopes != nil {
		for _, sc := range scopes {
			if sc != ScopeOfflineAccess && !slices.Contains(app.Scopes, sc) {
				fail("invalid_scope", "the app is not configured for scope "+sc)
				return
			}
		}
	}
	req := &authRequest{app: app, redirectURI: redirectURI, state: state, scopes: scopes, created: s.now()}
	if auto {
		s.consent(c, req, nil)
		return
	}
	s.consentPage(c, req)
}

// authorizeDecision serves the consent form's POST: Accept issues a code for
// the ticked sites, Deny redirects with error=access_denied. The pending
// request is single-use and expires with AuthCodeLifetime.
func (s *Sim) authorizeDecision(c *call) {
	form, err := url.ParseQuery(string(c.body))
	if err != nil {
		c.authError(http.StatusBadRequest, "The consent form could not be read.")
		return
	}
	now := s.now()
	o := s.oauth
	o.mu.Lock()
	req := o.pending[form.Get("request")]
	delete(o.pending, form.Get("request"))
	o.mu.Unlock()
	if req == nil || !now.Before(req.created.Add(AuthCodeLifetime)) {
		c.authError(http.StatusBadRequest, "This authorization request has expired or was already answered. Start again from the app.")
		return
	}
	switch form.Get("decision") {
	case "deny":
		c.redirect(req.redirectURI, url.Values{"error": {"access_denied"}, "error_description": {"User did not authorize the request"}}, req.state)
	case "accept":
		sites := form["site"]
		if len(sites) == 0 {
			c.authError(http.StatusBadRequest, "Choose at least one site for the app to use.")
			return
		}
		s.consent(c, req, sites)
	default:
		c.authError(http.StatusBadRequest, "Unknown decision.")
	}
}

// consent records the consenting account's grant to req.app for sites (nil:
// every site), issues a single-use code and redirects back with it. Sites
// add to an existing grant ("one grant per account per app").
func (s *Sim) consent(c *call, req *authRequest, sites []string) {
	now := s.now()
	code := newToken()
	o := s.oauth
	o.mu.Lock()
	var granted []string
	for _, site := range s.sitesLocked() {
		if sites == nil || slices.Contains(sites, site.CloudID) {
			granted = append(granted, site.CloudID)
		}
	}
	if len(granted) == 0 {
		o.mu.Unlock()
		c.authError(http.StatusBadRequest, "None of the chosen sites exists.")
		return
	}
	account := o.consentAs
	key := grantKey{req.app.ClientID, account}
	g := o.grants[key]
	if g == nil {
		g = &grant{}
		o.grants[key] = g
	}
	g.revoked = false
	for _, id := range granted {
		if !slices.Contains(g.sites, id) {
			g.sites = append(g.sites, id)
		}
	}
	for k, ac := range o.codes { // codes are short-lived: drop the stale ones
		if !now.Before(ac.issued.Add(AuthCodeLifetime)) {
			delete(o.codes, k)
		}
	}
	o.codes[code] = &authCode{
		clientID: req.app.ClientID, redirectURI: req.redirectURI, accountID: account,
		scopes: req.scopes, sites: granted, issued: now,
	}
	o.mu.Unlock()
	c.principal = account
	c.redirect(req.redirectURI, url.Values{"code": {code}}, req.state)
}

// redirect answers 302 to base with params (and state, when the client sent
// one) added to its query.
func (c *call) redirect(base string, params url.Values, state string) {
	u, err := url.Parse(base)
	if err != nil {
		c.authError(http.StatusBadRequest, "The registered redirect_uri is not a valid URL.")
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if state != "" {
		q.Set("state", state)
	}
	u.RawQuery = q.Encode()
	c.Header().Set("Location", u.String())
	c.Header().Set("Cache-Control", "no-store")
	c.WriteHeader(http.StatusFound)
}

// uniqueFields splits a space-separated scope list, dropping duplicates.
func uniqueFields(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

var consentTmpl = template.Must(template.New("consent").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Authorize {{.App}} – Atlassian (simulated)</title>
<style>
body { font-family: sans-serif; background: #f4f5f7; color: #172b4d; }
main { max-width: 32rem; margin: 3rem auto; background: #fff; padding: 2rem; border-radius: 6px; }
button { padding: .5rem 1.25rem; margin-right: .5rem; }
#accept { background: #0052cc; color: #fff; border: none; }
</style>
</head>
<body>
<main id="consent">
<h1><span id="app-name">{{.App}}</span> is requesting access to your Atlassian account</h1>
<p id="account">Signed in as <strong>{{.User}}</strong> (<code>{{.AccountID}}</code>)</p>
<form id="consent-form" method="post" action="/authorize/decision">
<input type="hidden" name="request" value="{{.Request}}">
<fieldset id="sites">
<legend>Use app on</legend>
{{range .Sites}}<label><input type="checkbox" name="site" value="{{.CloudID}}" checked> {{.Name}} <small>{{.URL}}</small></label><br>
{{end}}</fieldset>
<h2>{{.App}} would like to:</h2>
<ul id="scopes">
{{range .Scopes}}<li><code>{{.}}</code></li>
{{end}}</ul>
<button id="deny" type="submit" name="decision" value="deny">Deny</button>
<button id="accept" type="submit" name="decision" value="accept">Accept</button>
</form>
</main>
</body>
</html>
`))

// consentPage stores req under a fresh id and renders the consent page.
func (s *Sim) consentPage(c *call, req *authRequest) {
	id := newToken()
	o := s.oauth
	o.mu.Lock()
	for k, p := range o.pending { // abandoned consent pages
		if !req.created.Before(p.created.Add(AuthCodeLifetime)) {
			delete(o.pending, k)
		}
	}
	o.pending[id] = req
	account := o.consentAs
	sites := s.sitesLocked()
	o.mu.Unlock()
	s.mu.RLock()
	u, ok := s.data.users[account]
	s.mu.RUnlock()
	name := account
	if ok && u.DisplayName != "" {
		name = u.DisplayName
	}
	appName := req.app.Name
	if appName == "" {
		appName = req.app.ClientID
	}
	c.htmlHeaders()
	c.WriteHeader(http.StatusOK)
	_ = consentTmpl.Execute(c, map[string]any{
		"App": appName, "User": name, "AccountID": account, "Request": id,
		"Sites": sites, "Scopes": req.scopes,
	})
}

var authErrorTmpl = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Something went wrong – Atlassian (simulated)</title></head>
<body><main><h1>Something went wrong</h1><p id="error">{{.}}</p></main></body></html>
`))

// authError renders an error page for a request that cannot be sent back to
// the app.
func (c *call) authError(status int, msg string) {
	c.htmlHeaders()
	c.WriteHeader(status)
	_ = authErrorTmpl.Execute(c, msg)
}

func (c *call) htmlHeaders() {
	h := c.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY") // a consent page must not be framed (clickjacking)
}

package console

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/modules/credentials"
)

// cookieName is the cookie that binds an authorization request to the
// browser that started it. Over https it is secureCookieName: the __Host-
// prefix makes browsers accept it only from this host, over https, for the
// whole host, so a sibling subdomain or a plain-http page cannot plant one.
const (
	cookieName       = "atlasgate_oauth_state"
	secureCookieName = "__Host-atlasgate_oauth_state"
)

// serveAuthorize starts the authorization-code flow for the named credential.
//
// CSRF: it accepts POST only, refuses a cross-origin Origin (or Referer), and
// the state it creates is bound to a fresh HttpOnly SameSite=Lax cookie, so a
// page elsewhere can neither start a flow in the operator's name nor finish
// one started elsewhere. The only redirect is to the credential's configured
// authorize URL: nothing in the request chooses where the browser goes.
func (h *Handler) serveAuthorize(w http.ResponseWriter, r *http.Request, name string) error {
	if !sameOrigin(r) {
		h.auditFailure(r, name, "cross-origin request")
		return h.errorPage(w, http.StatusForbidden, "Request refused",
			"The Authorize request came from another site. Open the console and press Authorize there.")
	}
	a, err := h.authorizable(w, name)
	if a == nil {
		return err
	}
	browser, err := randomToken()
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	sweepStates(r.Context(), h.storage)
	// The state is bound to the caller exactly as the credential keys the
	// grant (`<authenticator>:<user>`), not to the bare user name: a same-named
	// identity of another authenticator cannot complete it.
	who := credentials.Caller(r.Context())
	owner := who
	if owner == "" {
		owner = "ip:" + remoteIP(r)
	}
	secure := r.TLS != nil || callbackIsHTTPS(a)
	state, err := newState(r.Context(), h.storage, name, browser, who, owner, secure)
	if err != nil {
		h.logger.Error("starting an authorization", zap.String("credential", name), zap.Error(err))
		return h.errorPage(w, http.StatusServiceUnavailable, "Storage unavailable",
			"The gateway could not store the authorization request. Try again; if it persists, check the gateway's storage.")
	}
	http.SetCookie(w, h.cookie(secure, browser, int(StateLifetime.Seconds())))
	h.auditLog(r, "authorization started", name, "started")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, a.AuthCodeURL(state), http.StatusSeeOther)
	return nil
}

// authorizable returns the named OAuth credential, or nil after answering
// with an error page.
func (h *Handler) authorizable(w http.ResponseWriter, name string) (authorizer, error) {
	c, ok := h.creds.Credential(name)
	if !ok {
		return nil, h.errorPage(w, http.StatusNotFound, "Unknown credential",
			"No credential named \""+name+"\" is configured.")
	}
	a, ok := c.(authorizer)
	if !ok {
		return nil, h.errorPage(w, http.StatusBadRequest, "Nothing to authorize",
			"Credential \""+name+"\" is a "+credentialType(c)+" credential, which needs no authorization.")
	}
	return a, nil
}

// serveConfirm shows what Authorize will do and a button that posts to
// serveAuthorize. A GET changes nothing, so a link — in an error answer, a
// chat message, a page elsewhere — can bring a person here but cannot start a
// flow in their name; the post from this page passes the same-origin check.
func (h *Handler) serveConfirm(w http.ResponseWriter, r *http.Request, name string) error {
	a, err := h.authorizable(w, name)
	if a == nil {
		return err
	}
	st := a.Status(r.Context())
	return h.page(w, http.StatusOK, "confirm", confirmData{
		Name: name, Site: st.Site, State: st.State, PerUser: st.PerUser, Prefix: h.PathPrefix,
	})
}

// cookie returns the browser-binding cookie; maxAge < 0 deletes it. Over
// https (the request's, or the callback_url's behind a TLS-terminating proxy)
// it is the __Host- cookie, which must be Secure with Path=/.
func (h *Handler) cookie(secure bool, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{
		Name: cookieName, Value: value, Path: h.PathPrefix, MaxAge: maxAge,
		HttpOnly: true,
		// Lax, not Strict: the callback is a top-level navigation coming
		// from the authorization server's site, which Strict would strip.
		SameSite: http.SameSiteLaxMode,
	}
	if secure {
		c.Name, c.Path, c.Secure = secureCookieName, "/", true
	}
	return c
}

// callbackIsHTTPS reports whether the credential's registered callback is
// https: then the browser reaches the console over https even when a proxy
// in front terminates TLS.
func callbackIsHTTPS(a authorizer) bool {
	u, err := url.Parse(a.AuthCodeURL(""))
	if err != nil {
		return false
	}
	cb, err := url.Parse(u.Query().Get("redirect_uri"))
	return err == nil && cb.Scheme == "https"
}

// sameOrigin reports whether a POST comes from the console's own pages.
//
// Browsers send Sec-Fetch-Site; "same-origin" is the only acceptable value.
// Origin is compared to the request's host when it names one: the console's
// `Referrer-Policy: no-referrer` makes browsers send `Origin: null` on its
// own form posts, which Sec-Fetch-Site then vouches for. Without fetch
// metadata (older browsers, non-browser clients) Origin, else Referer, must
// name the host; neither header means a non-browser client, which carries no
// ambient cookies or credentials to abuse.
func sameOrigin(r *http.Request) bool {
	fetchSite := r.Header.Get("Sec-Fetch-Site")
	if fetchSite != "" && fetchSite != "same-origin" {
		return false
	}
	src := r.Header.Get("Origin")
	if src == "null" && fetchSite == "same-origin" {
		return true
	}
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return true
	}
	u, err := url.Parse(src)
	if err != nil || u.Host == "" {
		return false // includes "Origin: null" without fetch metadata
	}
	// The scheme is not compared: behind a TLS-terminating proxy the
	// request arrives over http while the page was https.
	return u.Host == r.Host
}

// serveCallback completes an authorization: the authorization server sends
// the browser back with `code` and `state` (or `error`).
func (h *Handler) serveCallback(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	state := q.Get("state")
	// Whatever happens, the browser-binding cookie has done its job.
	http.SetCookie(w, h.cookie(false, "", -1))
	http.SetCookie(w, h.cookie(true, "", -1))
	if state == "" {
		h.auditFailure(r, "", "missing state")
		return h.errorPage(w, http.StatusBadRequest, "Authorization failed",
			"The callback carries no state. Start again from the console.")
	}
	rec, err := takeState(r.Context(), h.storage, state)
	switch {
	case errors.Is(err, errStateUnknown), errors.Is(err, errStateExpired):
		h.auditFailure(r, "", err.Error())
		return h.errorPage(w, http.StatusBadRequest, "Authorization failed",
			capitalize(err.Error())+". Start again from the console.")
	case err != nil:
		h.logger.Error("completing an authorization", zap.Error(err))
		return h.errorPage(w, http.StatusServiceUnavailable, "Storage unavailable",
			"The gateway could not read the authorization request. Start again from the console.")
	}
	name := rec.Credential
	// Only the cookie the request was bound to counts: a state started over
	// https is not completed with a plain cookie someone else could plant.
	wantCookie := cookieName
	if rec.Secure {
		wantCookie = secureCookieName
	}
	cookie, _ := r.Cookie(wantCookie)
	if cookie == nil || !rec.sameBrowser(cookie.Value) {
		h.auditFailure(r, name, "browser mismatch")
		return h.errorPage(w, http.StatusBadRequest, "Authorization failed",
			"This authorization was started in another browser (or another Authorize was pressed since). Start again from the console, in this browser.")
	}
	if !rec.sameUser(credentials.Caller(r.Context())) {
		h.auditFailure(r, name, "user mismatch")
		return h.errorPage(w, http.StatusBadRequest, "Authorization failed",
			"This authorization was started by another console user. Start again from the console.")
	}
	if e := q.Get("error"); e != "" {
		if e == "access_denied" {
			h.auditFailure(r, name, "consent denied")
			return h.errorPage(w, http.StatusForbidden, "Consent denied",
				"Access was denied on the consent page, so credential \""+name+"\" was not authorized. Press Authorize again to retry.")
		}
		h.auditFailure(r, name, "authorization server error "+e)
		return h.errorPage(w, http.StatusBadRequest, "Authorization failed",
			"The authorization server answered with the error \""+e+"\": "+q.Get("error_description"))
	}
	c, ok := h.creds.Credential(name)
	a, isOAuth := c.(authorizer)
	if !ok || !isOAuth {
		h.auditFailure(r, name, "credential no longer configured")
		return h.errorPage(w, http.StatusNotFound, "Authorization failed",
			"Credential \""+name+"\" is no longer configured as an OAuth credential.")
	}
	code := q.Get("code")
	if code == "" {
		h.auditFailure(r, name, "missing code")
		return h.errorPage(w, http.StatusBadRequest, "Authorization failed", "The callback carries no authorization code. Start again from the console.")
	}
	if err := a.CompleteAuthorization(r.Context(), code); err != nil {
		// CompleteAuthorization's errors name no secret (no code, no token).
		h.auditFailure(r, name, err.Error())
		return h.errorPage(w, http.StatusBadRequest, "Authorization failed",
			"Credential \""+name+"\" could not be authorized: "+err.Error())
	}
	st := a.Status(r.Context())
	h.auditLog(r, "credential authorized", name, "authorized", zap.String("cloud_id", st.CloudID))
	return h.page(w, http.StatusOK, "success", successData{Name: name, Site: st.Site, CloudID: st.CloudID, Console: h.PathPrefix + "/"})
}

// auditLog writes an audit event: who (the authenticated user, when the
// console sits behind atlasgate_auth or basic_auth), which credential, and
// the outcome. Never a code, state or token.
func (h *Handler) auditLog(r *http.Request, msg, credential, outcome string, extra ...zap.Field) {
	fields := append([]zap.Field{
		zap.String("credential", credential),
		zap.String("user", user(r)),
		zap.String("remote_ip", remoteIP(r)),
		zap.String("outcome", outcome),
	}, extra...)
	h.audit.Info(msg, fields...)
}

func (h *Handler) auditFailure(r *http.Request, credential, reason string) {
	h.auditLog(r, "authorization failed", credential, "failed", zap.String("reason", reason))
}

func user(r *http.Request) string {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return ""
	}
	v, _ := repl.GetString("http.auth.user.id")
	return v
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

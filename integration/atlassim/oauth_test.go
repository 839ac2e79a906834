package atlassim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var oauthT0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

const allScopes = "read:jira-user read:jira-work write:jira-work read:confluence-content.all read:page:confluence offline_access"

// oauthEnv is a seeded simulator on a manual clock plus a client for it.
type oauthEnv struct {
	t   *testing.T
	s   *Sim
	c   *http.Client
	clk *ManualClock
}

func startOAuth(t *testing.T, cfg Config) *oauthEnv {
	t.Helper()
	clk := NewManualClock(oauthT0)
	cfg.Clock = clk.Now
	s, c := start(t, cfg)
	return &oauthEnv{t, s, c, clk}
}

func (e *oauthEnv) authorizeURL(mod func(url.Values)) string {
	q := url.Values{
		"audience": {"api.atlassian.com"}, "client_id": {DemoOAuthClientID}, "scope": {allScopes},
		"redirect_uri": {DemoOAuthRedirectURI}, "state": {"st4te"}, "response_type": {"code"}, "prompt": {"consent"},
	}
	if mod != nil {
		mod(q)
	}
	return e.s.URL(HostAuth) + "/authorize?" + q.Encode()
}

// callback follows /authorize (auto-consent) and returns the redirect's query.
func (e *oauthEnv) callback(mod func(url.Values)) url.Values {
	e.t.Helper()
	r := do(e.t, e.c, "GET", e.authorizeURL(mod), "", "")
	if r.status != http.StatusFound {
		e.t.Fatalf("authorize = %d %s", r.status, r.body)
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	return loc.Query()
}

func (e *oauthEnv) code(scope string) string {
	e.t.Helper()
	q := e.callback(func(v url.Values) { v.Set("scope", scope) })
	if q.Get("code") == "" || q.Get("state") != "st4te" {
		e.t.Fatalf("callback query = %v", q)
	}
	return q.Get("code")
}

type tokenResp struct {
	status int
	body   map[string]any
	raw    string
}

func (r tokenResp) str(k string) string { s, _ := r.body[k].(string); return s }

// token posts a JSON body to the token endpoint.
func (e *oauthEnv) token(params map[string]string, mod ...func(*http.Request)) tokenResp {
	e.t.Helper()
	b, _ := json.Marshal(params)
	mod = append([]func(*http.Request){func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }}, mod...)
	r := do(e.t, e.c, "POST", e.s.URL(HostAuth)+"/oauth/token", "", string(b), mod...)
	out := tokenResp{status: r.status, raw: r.body}
	if err := json.Unmarshal([]byte(r.body), &out.body); err != nil {
		e.t.Fatalf("token response %d not JSON: %s", r.status, r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		e.t.Errorf("token response Cache-Control = %q", r.header.Get("Cache-Control"))
	}
	return out
}

func (e *oauthEnv) exchange(code string) tokenResp {
	e.t.Helper()
	return e.token(map[string]string{
		"grant_type": "authorization_code", "client_id": DemoOAuthClientID, "client_secret": DemoOAuthClientSecret,
		"code": code, "redirect_uri": DemoOAuthRedirectURI,
	})
}

func (e *oauthEnv) refresh(rt string) tokenResp {
	e.t.Helper()
	return e.token(map[string]string{
		"grant_type": "refresh_token", "client_id": DemoOAuthClientID, "client_secret": DemoOAuthClientSecret, "refresh_token": rt,
	})
}

// pair runs the whole code flow with offline_access and returns the tokens.
func (e *oauthEnv) pair() (access, refresh string) {
	e.t.Helper()
	r := e.exchange(e.code(allScopes))
	if r.status != 200 || r.str("refresh_token") == "" {
		e.t.Fatalf("exchange = %d %s", r.status, r.raw)
	}
	return r.str("access_token"), r.str("refresh_token")
}

// myself calls Jira's /myself through /ex with a bearer token.
func (e *oauthEnv) myself(access string) int {
	e.t.Helper()
	return do(e.t, e.c, "GET", e.s.URL(HostAPI)+"/ex/jira/"+DemoCloudID+"/rest/api/3/myself", bearer(access), "").status
}

func wantInvalidGrant(t *testing.T, r tokenResp) {
	t.Helper()
	if r.status != 403 || r.str("error") != "invalid_grant" || r.str("error_description") != "Unknown or invalid refresh token." {
		t.Fatalf("want 403 invalid_grant, got %d %s", r.status, r.raw)
	}
}

func TestOAuthCodeFlow(t *testing.T) {
	tests := []struct {
		name        string
		scope       string
		form        bool
		wantRefresh bool
	}{
		{"offline access json", allScopes, false, true},
		{"offline access form", allScopes, true, true},
		{"no offline access", "read:jira-user read:jira-work", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startOAuth(t, Config{AutoConsent: true})
			code := e.code(tt.scope)
			var r tokenResp
			if tt.form {
				body := url.Values{"grant_type": {"authorization_code"}, "client_id": {DemoOAuthClientID},
					"client_secret": {DemoOAuthClientSecret}, "code": {code}, "redirect_uri": {DemoOAuthRedirectURI}}.Encode()
				resp := do(t, e.c, "POST", e.s.URL(HostAuth)+"/oauth/token", "", body,
					func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") })
				r = tokenResp{status: resp.status, raw: resp.body}
				_ = json.Unmarshal([]byte(resp.body), &r.body)
			} else {
				r = e.exchange(code)
			}
			if r.status != 200 || r.str("token_type") != "Bearer" || r.body["expires_in"] != float64(3600) ||
				r.str("access_token") == "" || r.str("scope") != tt.scope {
				t.Fatalf("exchange = %d %s", r.status, r.raw)
			}
			if _, has := r.body["refresh_token"]; has != tt.wantRefresh {
				t.Errorf("refresh_token present = %v, want %v", has, tt.wantRefresh)
			}
			if st := e.myself(r.str("access_token")); st != 200 {
				t.Errorf("/ex with the new token = %d", st)
			}
			calls := e.s.TokenCalls()
			if len(calls) != 1 || calls[0].GrantType != "authorization_code" || calls[0].Outcome != "issued" ||
				calls[0].AccountID != DemoAccountID || calls[0].ClientID != DemoOAuthClientID || !calls[0].Time.Equal(oauthT0) {
				t.Errorf("TokenCalls = %+v", calls)
			}
			rec := e.s.RequestsTo(HostAuth)
			if last := rec[len(rec)-1]; last.Path != "/oauth/token" || last.Principal != DemoAccountID || last.Status != 200 {
				t.Errorf("recorded = %+v", last)
			}
			// An access token lives an hour.
			e.clk.Advance(AccessTokenLifetime)
			if st := e.myself(r.str("access_token")); st != 401 {
				t.Errorf("/ex after an hour = %d", st)
			}
		})
	}
}

func TestOAuthCodeErrors(t *testing.T) {
	app := map[string]string{"grant_type": "authorization_code", "client_id": DemoOAuthClientID, "client_secret": DemoOAuthClientSecret, "redirect_uri": DemoOAuthRedirectURI}
	with := func(kv ...string) map[string]string {
		m := maps(app)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		prepare func(e *oauthEnv, code string) (map[string]string, []func(*http.Request))
		status  int
		errCode string
	}{
		{"code reused", func(e *oauthEnv, code string) (map[string]string, []func(*http.Request)) {
			if r := e.exchange(code); r.status != 200 {
				t.Fatalf("first exchange = %d", r.status)
			}
			return with("code", code), nil
		}, 403, "invalid_grant"},
		{"wrong redirect_uri", func(e *oauthEnv, code string) (map[string]string, []func(*http.Request)) {
			e.s.AddRedirectURI(DemoOAuthClientID, "http://127.0.0.1:9999/cb")
			return with("code", code, "redirect_uri", "http://127.0.0.1:9999/cb"), nil
		}, 403, "invalid_grant"},
		{"code expired", func(e *oauthEnv, code string) (map[string]string, []func(*http.Request)) {
			e.clk.Advance(AuthCodeLifetime)
			return with("code", code), nil
		}, 403, "invalid_grant"},
		{"code of another client", func(e *oauthEnv, code string) (map[string]string, []func(*http.Request)) {
			e.s.RegisterOAuthApp(OAuthApp{ClientID: "other", ClientSecret: "other-secret", RedirectURIs: []string{DemoOAuthRedirectURI}})
			return with("code", code, "client_id", "other", "client_secret", "other-secret"), nil
		}, 403, "invalid_grant"},
		{"unknown code", func(*oauthEnv, string) (map[string]string, []func(*http.Request)) {
			return with("code", "nope"), nil
		}, 403, "invalid_grant"},
		{"wrong client secret", func(e *oauthEnv, code string) (map[string]string, []func(*http.Request)) {
			return with("code", code, "client_secret", "wrong"), nil
		}, 401, "access_denied"},
		{"no client secret", func(e *oauthEnv, code string) (map[string]string, []func(*http.Request)) {
			m := with("code", code)
			delete(m, "client_secret")
			return m, nil
		}, 401, "access_denied"},
		{"basic client auth", func(e *oauthEnv, code string) (map[string]string, []func(*http.Request)) {
			m := with("code", code)
			delete(m, "client_id")
			delete(m, "client_secret")
			return m, []func(*http.Request){func(r *http.Request) { r.SetBasicAuth(DemoOAuthClientID, DemoOAuthClientSecret) }}
		}, 401, "access_denied"},
		{"basic client auth with body credentials too", func(e *oauthEnv, code string) (map[string]string, []func(*http.Request)) {
			return with("code", code), []func(*http.Request){func(r *http.Request) { r.SetBasicAuth(DemoOAuthClientID, DemoOAuthClientSecret) }}
		}, 401, "access_denied"},
		{"service account using a code", func(e *oauthEnv, code string) (map[string]string, []func(*http.Request)) {
			return with("code", code, "client_id", DemoServiceAccountClientID, "client_secret", DemoServiceAccountClientSecret), nil
		}, 400, "unauthorized_client"},
		{"unsupported grant type", func(e *oauthEnv, code string) (map[string]string, []func(*http.Request)) {
			return with("grant_type", "password"), nil
		}, 400, "unsupported_grant_type"},
		{"missing grant type", func(e *oauthEnv, code string) (map[string]string, []func(*http.Request)) {
			return with("grant_type", ""), nil
		}, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startOAuth(t, Config{AutoConsent: true})
			params, mod := tt.prepare(e, e.code(allScopes))
			r := e.token(params, mod...)
			if r.status != tt.status || r.str("error") != tt.errCode {
				t.Fatalf("= %d %s, want %d %s", r.status, r.raw, tt.status, tt.errCode)
			}
			if _, has := r.body["access_token"]; has {
				t.Error("error response carries a token")
			}
		})
	}
	t.Run("basic auth recorded as invalid_client", func(t *testing.T) {
		e := startOAuth(t, Config{AutoConsent: true})
		e.token(with("code", e.code(allScopes)), func(r *http.Request) { r.SetBasicAuth(DemoOAuthClientID, DemoOAuthClientSecret) })
		calls := e.s.TokenCalls()
		if len(calls) != 1 || calls[0].Outcome != "invalid_client" || calls[0].Status != 401 || calls[0].AccountID != "" {
			t.Errorf("TokenCalls = %+v", calls)
		}
		if rec := e.s.RequestsTo(HostAuth); rec[len(rec)-1].AuthKind != "basic" {
			t.Errorf("AuthKind = %q", rec[len(rec)-1].AuthKind)
		}
	})
	t.Run("bad bodies", func(t *testing.T) {
		e := startOAuth(t, Config{})
		for _, body := range []string{"not json", `{"grant_type":1}`, `[]`} {
			r := do(t, e.c, "POST", e.s.URL(HostAuth)+"/oauth/token", "", body)
			if r.status != 400 || !strings.Contains(r.body, `"error":"invalid_request"`) {
				t.Errorf("%q = %d %s", body, r.status, r.body)
			}
		}
		if r := do(t, e.c, "GET", e.s.URL(HostAuth)+"/oauth/token", "", ""); r.status != 405 {
			t.Errorf("GET token = %d", r.status)
		}
	})
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestOAuthAuthorizeValidation(t *testing.T) {
	tests := []struct {
		name      string
		mod       func(url.Values)
		status    int
		pageError string // for 400 error pages
		redirErr  string // for 302 error redirects
	}{
		{"unknown client", func(v url.Values) { v.Set("client_id", "nope") }, 400, "client_id is not recognised", ""},
		{"unregistered redirect", func(v url.Values) { v.Set("redirect_uri", "http://localhost:8080/atlasgate/oauth/callback/") }, 400, "redirect_uri does not match", ""},
		{"redirect other port", func(v url.Values) { v.Set("redirect_uri", "http://localhost:8081/atlasgate/oauth/callback") }, 400, "redirect_uri does not match", ""},
		{"token response type", func(v url.Values) { v.Set("response_type", "token") }, 302, "", "unsupported_response_type"},
		{"wrong audience", func(v url.Values) { v.Set("audience", "auth.atlassian.com") }, 302, "", "invalid_request"},
		{"no audience", func(v url.Values) { v.Del("audience") }, 302, "", "invalid_request"},
		{"no scope", func(v url.Values) { v.Del("scope") }, 302, "", "invalid_scope"},
		{"scope the app lacks", func(v url.Values) { v.Set("client_id", "narrow") }, 302, "", "invalid_scope"},
		{"pkce ignored", func(v url.Values) { v.Set("code_challenge", "abc"); v.Set("code_challenge_method", "S256") }, 302, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startOAuth(t, Config{AutoConsent: true})
			e.s.RegisterOAuthApp(OAuthApp{ClientID: "narrow", ClientSecret: "x", RedirectURIs: []string{DemoOAuthRedirectURI}, Scopes: []string{"read:jira-user"}})
			r := do(t, e.c, "GET", e.authorizeURL(tt.mod), "", "")
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d; %s", r.status, tt.status, r.body)
			}
			if tt.status == 400 {
				if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(r.body, tt.pageError) {
					t.Errorf("error page = %q %s", r.header.Get("Content-Type"), r.body)
				}
				return
			}
			loc, _ := url.Parse(r.header.Get("Location"))
			q := loc.Query()
			if !strings.HasPrefix(loc.String(), DemoOAuthRedirectURI+"?") || q.Get("state") != "st4te" || q.Get("error") != tt.redirErr {
				t.Errorf("Location = %s", loc)
			}
			if (q.Get("code") != "") != (tt.redirErr == "") {
				t.Errorf("code with error: %s", loc)
			}
		})
	}
	t.Run("narrow app with allowed scopes", func(t *testing.T) {
		e := startOAuth(t, Config{})
		e.s.RegisterOAuthApp(OAuthApp{ClientID: "narrow", ClientSecret: "x", RedirectURIs: []string{DemoOAuthRedirectURI}, Scopes: []string{"read:jira-user"}, AutoConsent: true})
		q := e.callback(func(v url.Values) { v.Set("client_id", "narrow"); v.Set("scope", "read:jira-user offline_access") })
		if q.Get("code") == "" {
			t.Errorf("per-app auto-consent: %v", q)
		}
	})
}

func TestOAuthConsentPage(t *testing.T) {
	e := startOAuth(t, Config{})
	e.s.AddSite(Site{CloudID: "11111111-2222-4333-8444-555555555555", Name: "beta", URL: "https://beta.atlassian.net"})
	page := func() (string, string) {
		r := do(t, e.c, "GET", e.authorizeURL(nil), "", "")
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("consent page = %d %q", r.status, r.header.Get("Content-Type"))
		}
		m := regexp.MustCompile(`name="request" value="([^"]+)"`).FindStringSubmatch(r.body)
		if m == nil {
			t.Fatalf("no request id in %s", r.body)
		}
		return r.body, m[1]
	}
	body, id := page()
	for _, want := range []string{`id="accept"`, `id="deny"`, `action="/authorize/decision"`, `method="post"`, DemoOAuthAppName,
		DemoDisplayName, "read:jira-work", "offline_access", e.s.URL(HostSite), "beta", `value="` + DemoCloudID + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	decide := func(form url.Values) response {
		return do(t, e.c, "POST", e.s.URL(HostAuth)+"/authorize/decision", "", form.Encode(),
			func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") })
	}

	// Deny.
	r := decide(url.Values{"request": {id}, "decision": {"deny"}, "site": {DemoCloudID}})
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != 302 || loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "st4te" || loc.Query().Get("code") != "" {
		t.Fatalf("deny = %d %s", r.status, loc)
	}
	// A pending request is single-use.
	if r := decide(url.Values{"request": {id}, "decision": {"accept"}, "site": {DemoCloudID}}); r.status != 400 {
		t.Errorf("answered request reused = %d", r.status)
	}
	// Accept with no site ticked is refused; the request is spent.
	_, id = page()
	if r := decide(url.Values{"request": {id}, "decision": {"accept"}}); r.status != 400 || !strings.Contains(r.body, "site") {
		t.Errorf("accept without a site = %d %s", r.status, r.body)
	}
	// An abandoned page expires.
	_, id = page()
	e.clk.Advance(AuthCodeLifetime)
	if r := decide(url.Values{"request": {id}, "decision": {"accept"}, "site": {DemoCloudID}}); r.status != 400 {
		t.Errorf("expired request = %d", r.status)
	}

	// Accept, as another user, only the simulated site.
	e.s.AddUser(User{AccountID: "bob-1", DisplayName: "Bob Example"})
	e.s.ConsentAs("bob-1")
	body, id = page()
	if !strings.Contains(body, "Bob Example") {
		t.Error("consent page does not name the consenting user")
	}
	r = decide(url.Values{"request": {id}, "decision": {"accept"}, "site": {DemoCloudID}})
	loc, _ = url.Parse(r.header.Get("Location"))
	if r.status != 302 || loc.Query().Get("code") == "" || loc.Query().Get("state") != "st4te" {
		t.Fatalf("accept = %d %s", r.status, loc)
	}
	tok := e.exchange(loc.Query().Get("code"))
	if tok.status != 200 {
		t.Fatalf("exchange = %d %s", tok.status, tok.raw)
	}
	me := do(t, e.c, "GET", e.s.URL(HostAPI)+"/ex/jira/"+DemoCloudID+"/rest/api/3/myself", bearer(tok.str("access_token")), "")
	if me.status != 200 || !strings.Contains(me.body, `"accountId":"bob-1"`) {
		t.Errorf("myself as bob = %d %s", me.status, me.body)
	}
	if got := resources(t, e, tok.str("access_token")); len(got) != 1 || got[0]["id"] != DemoCloudID {
		t.Errorf("only the chosen site is granted: %v", got)
	}
	if r := decide(url.Values{"request": {"forged"}, "decision": {"accept"}}); r.status != 400 {
		t.Errorf("forged request = %d", r.status)
	}
}

func TestOAuthRefreshRotation(t *testing.T) {
	e := startOAuth(t, Config{AutoConsent: true})
	a1, r1 := e.pair()
	// Refresh early, so that the old access token's own hour outlasts the
	// leeway and only the rotation can explain its death.
	e.clk.Advance(20 * time.Minute)

	n := e.refresh(r1)
	a2, r2 := n.str("access_token"), n.str("refresh_token")
	if n.status != 200 || a2 == "" || r2 == "" || r2 == r1 || a2 == a1 || n.str("scope") != allScopes {
		t.Fatalf("refresh = %d %s", n.status, n.raw)
	}
	// Within the leeway the old pair still works.
	e.clk.Advance(RefreshLeeway - time.Second)
	if e.myself(a1) != 200 || e.myself(a2) != 200 {
		t.Fatal("old or new access token refused within the leeway")
	}
	// After it the old access token is dead although its own hour is not up.
	e.clk.Advance(time.Second)
	if st := e.myself(a1); st != 401 {
		t.Errorf("old access token after the leeway = %d", st)
	}
	if st := e.myself(a2); st != 200 {
		t.Errorf("new access token = %d", st)
	}
	if e.s.GrantRevoked(DemoOAuthClientID, DemoAccountID) {
		t.Fatal("grant revoked by an orderly rotation")
	}
	// The new refresh token rotates on.
	n = e.refresh(r2)
	if n.status != 200 {
		t.Fatalf("second refresh = %d %s", n.status, n.raw)
	}
	a3, r3 := n.str("access_token"), n.str("refresh_token")
	calls := e.s.TokenCalls()
	if len(calls) != 3 || calls[1].GrantType != "refresh_token" || calls[1].Outcome != "issued" {
		t.Errorf("TokenCalls = %+v", calls)
	}

	// Reusing r1 long after its replacement revokes the whole grant.
	wantInvalidGrant(t, e.refresh(r1))
	if !e.s.GrantRevoked(DemoOAuthClientID, DemoAccountID) {
		t.Error("late reuse did not revoke the grant")
	}
	if got := e.s.TokenCalls(); got[len(got)-1].Outcome != "grant_revoked" || got[len(got)-1].Status != 403 {
		t.Errorf("last call = %+v", got[len(got)-1])
	}
	if st := e.myself(a3); st != 401 {
		t.Errorf("newest access token after family revocation = %d", st)
	}
	wantInvalidGrant(t, e.refresh(r3))
	wantInvalidGrant(t, e.refresh(r2))

	// A new consent re-establishes the grant; the old tokens stay dead.
	a4, r4 := e.pair()
	if e.s.GrantRevoked(DemoOAuthClientID, DemoAccountID) || e.myself(a4) != 200 || e.myself(a3) != 401 {
		t.Error("re-consent did not restore access, or resurrected old tokens")
	}
	if r := e.refresh(r4); r.status != 200 {
		t.Errorf("refresh after re-consent = %d", r.status)
	}
	wantInvalidGrant(t, e.refresh(r3))
}

// TestOAuthReuseWithinLeeway: Atlassian does not document what a replaced
// refresh token returns inside the leeway. The simulator issues a fresh pair
// and revokes nothing, so that two replicas racing on the same refresh token
// both succeed; the first rotation's result stays valid too.
func TestOAuthReuseWithinLeeway(t *testing.T) {
	e := startOAuth(t, Config{AutoConsent: true})
	_, r1 := e.pair()
	first := e.refresh(r1)
	e.clk.Advance(5 * time.Minute)
	second := e.refresh(r1)
	if second.status != 200 || second.str("refresh_token") == "" || second.str("refresh_token") == first.str("refresh_token") {
		t.Fatalf("reuse within leeway = %d %s", second.status, second.raw)
	}
	if e.s.GrantRevoked(DemoOAuthClientID, DemoAccountID) {
		t.Fatal("reuse within the leeway revoked the grant")
	}
	if got := e.s.TokenCalls(); got[len(got)-1].Outcome != "issued_reuse_in_leeway" {
		t.Errorf("outcome = %q", got[len(got)-1].Outcome)
	}
	// The leeway counts from the first replacement, not the reuse.
	e.clk.Advance(5 * time.Minute)
	for _, r := range []tokenResp{first, second} {
		if e.myself(r.str("access_token")) != 200 {
			t.Error("a pair issued from the same refresh token was revoked")
		}
		if n := e.refresh(r.str("refresh_token")); n.status != 200 {
			t.Errorf("refresh of a branch = %d", n.status)
		}
	}
	wantInvalidGrant(t, e.refresh(r1))
	if !e.s.GrantRevoked(DemoOAuthClientID, DemoAccountID) {
		t.Error("reuse after the leeway did not revoke")
	}
}

func TestOAuthRefreshExpiry(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name  string
		steps []time.Duration // wait, then refresh (with the newest token)
		ok    []bool
	}{
		{"used within 90 days", []time.Duration{89 * day, 89 * day, 89 * day}, []bool{true, true, true}},
		{"90 days inactive", []time.Duration{30 * day, 90 * day}, []bool{true, false}},
		{"just under 90 days after the last refresh", []time.Duration{60 * day, 90*day - time.Minute}, []bool{true, true}},
		{"365 days absolute despite refreshes", []time.Duration{80 * day, 80 * day, 80 * day, 80 * day, 44 * day, 1 * day},
			[]bool{true, true, true, true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startOAuth(t, Config{AutoConsent: true})
			_, rt := e.pair()
			for i, wait := range tt.steps {
				e.clk.Advance(wait)
				r := e.refresh(rt)
				if !tt.ok[i] {
					wantInvalidGrant(t, r)
					if e.s.GrantRevoked(DemoOAuthClientID, DemoAccountID) {
						t.Error("expiry revoked the grant")
					}
					return
				}
				if r.status != 200 {
					t.Fatalf("step %d (day %.0f) = %d %s", i, e.clk.Now().Sub(oauthT0).Hours()/24, r.status, r.raw)
				}
				rt = r.str("refresh_token")
			}
		})
	}
}

func TestOAuthOmitRefreshToken(t *testing.T) {
	e := startOAuth(t, Config{AutoConsent: true, OmitRefreshToken: 2})
	_, r1 := e.pair()
	n1 := e.refresh(r1) // 1st refresh: rotates
	r2 := n1.str("refresh_token")
	if n1.status != 200 || r2 == "" {
		t.Fatalf("first refresh = %d %s", n1.status, n1.raw)
	}
	n2 := e.refresh(r2) // 2nd: omits refresh_token
	if _, has := n2.body["refresh_token"]; n2.status != 200 || has || n2.str("access_token") == "" {
		t.Fatalf("second refresh = %d %s", n2.status, n2.raw)
	}
	if got := e.s.TokenCalls(); got[len(got)-1].Outcome != "issued_no_refresh_token" {
		t.Errorf("outcome = %q", got[len(got)-1].Outcome)
	}
	// The kept token stays current long after the leeway, and its
	// inactivity clock restarted.
	e.clk.Advance(89 * 24 * time.Hour)
	if e.myself(n1.str("access_token")) != 401 {
		t.Error("access token outlived its hour")
	}
	n3 := e.refresh(r2)
	if n3.status != 200 || n3.str("refresh_token") == "" {
		t.Fatalf("refresh with the kept token = %d %s", n3.status, n3.raw)
	}
	if e.s.GrantRevoked(DemoOAuthClientID, DemoAccountID) {
		t.Error("keeping the refresh token revoked the grant")
	}
	e.s.SetOmitRefreshToken(0)
	for range 3 {
		n := e.refresh(n3.str("refresh_token"))
		if n.str("refresh_token") == "" {
			t.Fatal("omitted after SetOmitRefreshToken(0)")
		}
		n3 = n
	}
}

func TestOAuthClientCredentials(t *testing.T) {
	e := startOAuth(t, Config{})
	cc := func(id, secret, scope string) tokenResp {
		p := map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": secret}
		if scope != "" {
			p["scope"] = scope
		}
		return e.token(p)
	}
	r := cc(DemoServiceAccountClientID, DemoServiceAccountClientSecret, "")
	if _, has := r.body["refresh_token"]; r.status != 200 || has || r.body["expires_in"] != float64(3600) || r.str("token_type") != "Bearer" {
		t.Fatalf("client_credentials = %d %s", r.status, r.raw)
	}
	tok := r.str("access_token")
	me := do(t, e.c, "GET", e.s.URL(HostAPI)+"/ex/jira/"+DemoCloudID+"/rest/api/3/myself", bearer(tok), "")
	if me.status != 200 || !strings.Contains(me.body, DemoServiceAccountID) {
		t.Fatalf("service account myself = %d %s", me.status, me.body)
	}
	if rec := e.s.RequestsTo(HostAPI); rec[len(rec)-1].Principal != DemoServiceAccountID || rec[len(rec)-1].AuthKind != "bearer" {
		t.Errorf("recorded = %+v", rec[len(rec)-1])
	}
	if got := resources(t, e, tok); len(got) != 1 || got[0]["url"] != e.s.URL(HostSite) {
		t.Errorf("service account resources = %v", got)
	}
	e.clk.Advance(59 * time.Minute)
	if e.myself(tok) != 200 {
		t.Error("token died before 60 minutes")
	}
	e.clk.Advance(time.Minute)
	if e.myself(tok) != 401 {
		t.Error("token outlived 60 minutes")
	}

	// Narrowed scopes, and scopes it was never given.
	r = cc(DemoServiceAccountClientID, DemoServiceAccountClientSecret, "read:jira-user")
	if r.status != 200 || r.str("scope") != "read:jira-user" {
		t.Fatalf("narrowed = %d %s", r.status, r.raw)
	}
	if st := do(t, e.c, "GET", e.s.URL(HostAPI)+"/ex/jira/"+DemoCloudID+"/rest/api/3/issue/DEMO-1", bearer(r.str("access_token")), "").status; st != 401 {
		t.Errorf("narrowed token reads issues: %d", st)
	}
	if r := cc(DemoServiceAccountClientID, DemoServiceAccountClientSecret, "manage:jira-configuration"); r.status != 400 || r.str("error") != "invalid_scope" {
		t.Errorf("widened = %d %s", r.status, r.raw)
	}
	for _, tt := range []struct {
		name, id, secret string
		status           int
		errCode          string
	}{
		{"wrong secret", DemoServiceAccountClientID, "nope", 401, "access_denied"},
		{"unknown client", "nobody", "nope", 401, "access_denied"},
		{"3LO app", DemoOAuthClientID, DemoOAuthClientSecret, 400, "unauthorized_client"},
	} {
		if r := cc(tt.id, tt.secret, ""); r.status != tt.status || r.str("error") != tt.errCode {
			t.Errorf("%s = %d %s", tt.name, r.status, r.raw)
		}
	}

	// A service account confined to another site cannot reach this one.
	e.s.AddSite(Site{CloudID: "other-cloud", Name: "other", URL: "https://other.atlassian.net"})
	e.s.RegisterServiceAccount(ServiceAccount{ClientID: "sa2", ClientSecret: "s2", AccountID: "sa2-account", Scopes: DemoScopes, Sites: []string{"other-cloud"}})
	r = cc("sa2", "s2", "")
	if e.myself(r.str("access_token")) != 401 {
		t.Error("service account reached a site outside its list")
	}
	if got := resources(t, e, r.str("access_token")); len(got) != 1 || got[0]["id"] != "other-cloud" {
		t.Errorf("sa2 resources = %v", got)
	}
	// RevokeGrant kills outstanding tokens at once.
	r = cc(DemoServiceAccountClientID, DemoServiceAccountClientSecret, "")
	if !e.s.RevokeGrant(DemoServiceAccountClientID, DemoServiceAccountID) || e.myself(r.str("access_token")) != 401 {
		t.Error("RevokeGrant left the service account token alive")
	}
}

func resources(t *testing.T, e *oauthEnv, access string) []map[string]any {
	t.Helper()
	r := do(t, e.c, "GET", e.s.URL(HostAPI)+"/oauth/token/accessible-resources", bearer(access), "")
	if r.status != 200 {
		t.Fatalf("accessible-resources = %d %s", r.status, r.body)
	}
	var out []map[string]any
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOAuthAccessibleResources(t *testing.T) {
	e := startOAuth(t, Config{AutoConsent: true})
	extra := []Site{
		{CloudID: "aaaaaaaa-0000-4000-8000-000000000001", Name: "alpha", URL: "https://alpha.atlassian.net"},
		{CloudID: "bbbbbbbb-0000-4000-8000-000000000002", Name: "beta", URL: "https://beta.atlassian.net", AvatarURL: "https://example.com/beta.png"},
	}
	for _, site := range extra {
		e.s.AddSite(site)
	}
	access, _ := e.pair()
	orders := map[string]bool{}
	for range 30 {
		got := resources(t, e, access)
		if len(got) != 3 {
			t.Fatalf("resources = %v", got)
		}
		var ids []string
		for _, r := range got {
			ids = append(ids, r["id"].(string))
		}
		orders[strings.Join(ids, ",")] = true
	}
	if len(orders) < 2 {
		t.Errorf("30 listings all in one order %v: order must carry no meaning", orders)
	}
	byURL := map[string]map[string]any{}
	for _, r := range resources(t, e, access) {
		byURL[r["url"].(string)] = r
		for _, k := range []string{"id", "name", "url", "scopes", "avatarUrl"} {
			if _, ok := r[k]; !ok {
				t.Errorf("resource lacks %q: %v", k, r)
			}
		}
		scopes := fmt.Sprint(r["scopes"])
		if !strings.Contains(scopes, "read:jira-work") || strings.Contains(scopes, "offline_access") {
			t.Errorf("scopes = %v", r["scopes"])
		}
	}
	if r := byURL[e.s.URL(HostSite)]; r == nil || r["id"] != DemoCloudID || r["name"] != DemoSiteName {
		t.Errorf("simulated site entry = %v", r)
	}
	if r := byURL["https://beta.atlassian.net"]; r == nil || r["id"] != extra[1].CloudID || r["avatarUrl"] != "https://example.com/beta.png" {
		t.Errorf("beta entry = %v", r)
	}
	// Only the simulated site is served at /ex: a wrong pick fails visibly.
	if r := do(t, e.c, "GET", e.s.URL(HostAPI)+"/ex/jira/"+extra[0].CloudID+"/rest/api/3/myself", bearer(access), ""); r.status != 404 {
		t.Errorf("/ex with an added site's cloudId = %d", r.status)
	}
	if len(e.s.Sites()) != 3 || e.s.Sites()[0].CloudID != DemoCloudID {
		t.Errorf("Sites() = %v", e.s.Sites())
	}
	for _, auth := range []string{"", bearer("unknown"), basic(DemoEmail, DemoScopedToken)} {
		r := do(t, e.c, "GET", e.s.URL(HostAPI)+"/oauth/token/accessible-resources", auth, "")
		if r.status != 401 || r.body != `{"code":401,"message":"Unauthorized"}`+"\n" {
			t.Errorf("auth %q = %d %s", auth, r.status, r.body)
		}
	}
}

func TestOAuthBearerAtEx(t *testing.T) {
	e := startOAuth(t, Config{AutoConsent: true})
	full, _ := e.pair()
	narrow := e.exchange(e.code("read:jira-user offline_access")).str("access_token")
	e.s.ConsentAs("carol-1")
	carol := e.exchange(e.code("read:jira-user")).str("access_token")
	e.s.RevokeGrant(DemoOAuthClientID, "carol-1")
	ex := func(product, path string) string {
		return e.s.URL(HostAPI) + "/ex/" + product + "/" + DemoCloudID + path
	}
	const unauthorized = `{"code":401,"message":"Unauthorized"}`
	tests := []struct {
		name, method, url, token, body string
		status                         int
		contains                       string
	}{
		{"myself", "GET", ex("jira", "/rest/api/3/myself"), full, "", 200, DemoAccountID},
		{"issue read", "GET", ex("jira", "/rest/api/3/issue/DEMO-1"), full, "", 200, `"key":"DEMO-1"`},
		{"issue write", "PUT", ex("jira", "/rest/api/3/issue/DEMO-1"), full, `{"fields":{"summary":"via 3LO"}}`, 204, ""},
		{"confluence v1", "GET", ex("confluence", "/wiki/rest/api/content"), full, "", 200, "Gateway design"},
		{"confluence v2", "GET", ex("confluence", "/wiki/api/v2/pages"), full, "", 200, "Runbook"},
		{"narrow myself", "GET", ex("jira", "/rest/api/3/myself"), narrow, "", 200, DemoAccountID},
		{"narrow issue", "GET", ex("jira", "/rest/api/3/issue/DEMO-1"), narrow, "", 401, "scope does not match"},
		{"narrow confluence", "GET", ex("confluence", "/wiki/api/v2/pages"), narrow, "", 401, "scope does not match"},
		{"revoked grant", "GET", ex("jira", "/rest/api/3/myself"), carol, "", 401, unauthorized},
		{"unknown token", "GET", ex("jira", "/rest/api/3/myself"), "forged", "", 401, unauthorized},
		{"at the site", "GET", e.s.URL(HostSite) + "/rest/api/3/myself", full, "", 401, "Client must be authenticated"},
		{"at the site wiki", "GET", e.s.URL(HostSite) + "/wiki/api/v2/pages", full, "", 401, `"statusCode":401`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, e.c, tt.method, tt.url, bearer(tt.token), tt.body)
			if r.status != tt.status || !strings.Contains(r.body, tt.contains) {
				t.Fatalf("= %d %s, want %d containing %q", r.status, r.body, tt.status, tt.contains)
			}
		})
	}
	// The SetBearerAuth hook still serves tokens the authorization server
	// never issued, and cannot resurrect ones it did.
	e.s.SetBearerAuth(func(tok string) (string, []string, bool) { return "hooked", DemoScopes, true })
	if r := do(t, e.c, "GET", ex("jira", "/rest/api/3/myself"), bearer("hook-token"), ""); r.status != 200 || !strings.Contains(r.body, "hooked") {
		t.Errorf("hook token = %d %s", r.status, r.body)
	}
	if st := e.myself(carol); st != 401 {
		t.Errorf("revoked token via hook = %d", st)
	}
}

func TestOAuthFailTokenEndpoint(t *testing.T) {
	e := startOAuth(t, Config{AutoConsent: true})
	_, rt := e.pair()
	e.s.ResetTokenCalls()
	e.s.FailTokenEndpoint(2, http.StatusServiceUnavailable)
	for range 2 {
		if r := e.refresh(rt); r.status != 503 || r.str("error") != "server_error" {
			t.Fatalf("injected failure = %d %s", r.status, r.raw)
		}
	}
	// A failed call consumed nothing: the same token still rotates.
	if r := e.refresh(rt); r.status != 200 {
		t.Fatalf("after failures = %d %s", r.status, r.raw)
	}
	calls := e.s.TokenCalls()
	if len(calls) != 3 || calls[0].Outcome != "injected_failure" || calls[0].GrantType != "refresh_token" || calls[2].Outcome != "issued" {
		t.Errorf("TokenCalls = %+v", calls)
	}
	e.s.FailTokenEndpoint(1, 0)
	if r := e.refresh(rt); r.status != 500 {
		t.Errorf("default status = %d", r.status)
	}
	if e.s.RevokeGrant("nobody", "nobody") {
		t.Error("RevokeGrant of a missing grant reported true")
	}
}

// TestOAuthConcurrent hammers the simulator at an access token's expiry:
// hundreds of /ex calls and a burst of refreshes with the same refresh token
// (replicas racing). Run under -race.
func TestOAuthConcurrent(t *testing.T) {
	e := startOAuth(t, Config{AutoConsent: true})
	access, rt := e.pair()
	e.s.ResetTokenCalls()
	e.clk.Advance(AccessTokenLifetime - time.Second)
	var wg sync.WaitGroup
	statuses := make([]int, 500)
	refreshes := make([]tokenResp, 20)
	for i := range statuses {
		wg.Go(func() { statuses[i] = e.myself(access) })
	}
	for i := range refreshes {
		wg.Go(func() { refreshes[i] = e.refresh(rt) })
	}
	wg.Wait()
	for i, st := range statuses {
		if st != 200 {
			t.Fatalf("call %d = %d", i, st)
		}
	}
	seen := map[string]bool{}
	for _, r := range refreshes {
		if r.status != 200 || seen[r.str("refresh_token")] {
			t.Fatalf("refresh = %d %s", r.status, r.raw)
		}
		seen[r.str("refresh_token")] = true
	}
	var outcomes []string
	for _, c := range e.s.TokenCalls() {
		outcomes = append(outcomes, c.Outcome)
	}
	slices.Sort(outcomes)
	if len(outcomes) != 20 || outcomes[0] != "issued" || outcomes[1] != "issued_reuse_in_leeway" {
		t.Errorf("outcomes = %v", outcomes)
	}
	if e.s.GrantRevoked(DemoOAuthClientID, DemoAccountID) {
		t.Error("racing refreshes revoked the grant")
	}
	e.clk.Advance(time.Second)
	if e.myself(access) != 401 {
		t.Error("access token outlived its hour")
	}
}

// TestOAuthLogHasNoSecrets checks that the request log (Config.Logf) never
// shows a client secret, code or token, whatever flows through.
func TestOAuthLogHasNoSecrets(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	e := startOAuth(t, Config{AutoConsent: true, Logf: func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(f, a...))
	}})
	code := e.code(allScopes)
	r := e.exchange(code)
	n := e.refresh(r.str("refresh_token"))
	resources(t, e, n.str("access_token"))
	e.token(map[string]string{"grant_type": "client_credentials", "client_id": DemoServiceAccountClientID, "client_secret": DemoServiceAccountClientSecret})
	mu.Lock()
	defer mu.Unlock()
	if len(lines) < 5 {
		t.Fatalf("log lines = %v", lines)
	}
	for _, l := range lines {
		for _, secret := range []string{DemoOAuthClientSecret, DemoServiceAccountClientSecret, code,
			r.str("access_token"), r.str("refresh_token"), n.str("access_token"), n.str("refresh_token")} {
			if strings.Contains(l, secret) {
				t.Errorf("log line leaks a secret: %s", l)
			}
		}
	}
}

func TestOAuthAuthHost(t *testing.T) {
	e := startOAuth(t, Config{})
	if r := do(t, e.c, "GET", e.s.URL(HostAuth)+"/nope", "", ""); r.status != 404 {
		t.Errorf("unknown path = %d", r.status)
	}
	if r := do(t, e.c, "POST", e.authorizeURL(nil), "", ""); r.status != 405 {
		t.Errorf("POST /authorize = %d", r.status)
	}
	r := do(t, e.c, "GET", e.authorizeURL(nil), "", "", func(r *http.Request) { r.Host = "auth.atlassian.com" })
	if r.status != http.StatusMisdirectedRequest {
		t.Errorf("wrong Host = %d", r.status)
	}
	if !strings.HasPrefix(e.s.URL(HostAuth), "https://127.0.0.1:") {
		t.Errorf("URL(auth) = %q", e.s.URL(HostAuth))
	}
	e.s.AddRateLimit(RateLimit{Host: HostAuth, PathPrefix: "/oauth/token", Count: 1, RetryAfter: 3})
	if r := do(t, e.c, "POST", e.s.URL(HostAuth)+"/oauth/token", "", "{}"); r.status != 429 || r.header.Get("Retry-After") != "3" {
		t.Errorf("rate-limited token endpoint = %d", r.status)
	}
	if e.s.AddRedirectURI("nobody", "http://x") {
		t.Error("AddRedirectURI for a missing app reported true")
	}
}

func TestClock(t *testing.T) {
	clk := NewManualClock(oauthT0)
	if got := clk.Advance(time.Hour); !got.Equal(oauthT0.Add(time.Hour)) || !clk.Now().Equal(got) {
		t.Errorf("Advance = %v", got)
	}
	clk.Set(oauthT0)
	s, c := start(t, Config{Clock: clk.Now})
	s.AddAPIToken(APIToken{Email: DemoEmail, Token: "ATATT3xDay", ExpiresAt: oauthT0.Add(24 * time.Hour)})
	url := s.URL(HostSite) + "/rest/api/3/myself"
	if r := do(t, c, "GET", url, basic(DemoEmail, "ATATT3xDay"), ""); r.status != 200 {
		t.Fatalf("before = %d", r.status)
	}
	s.Advance(24 * time.Hour) // on top of the configured clock
	if !s.Now().Equal(oauthT0.Add(24 * time.Hour)) {
		t.Errorf("Now = %v", s.Now())
	}
	if r := do(t, c, "GET", url, basic(DemoEmail, "ATATT3xDay"), ""); r.status != 401 {
		t.Errorf("after Sim.Advance = %d", r.status)
	}
	// The wall clock moves too.
	s2, _ := start(t, Config{})
	s2.Advance(48 * time.Hour)
	if d := time.Until(s2.Now()); d < 47*time.Hour {
		t.Errorf("Advance on the wall clock: %v ahead", d)
	}
}

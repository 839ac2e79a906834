package console

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/authn"
	"github.com/atlasgate/atlasgate/modules/credentials"
)

// fakeOAuth stands in for *credentials.OAuth.
type fakeOAuth struct {
	name      string
	completed []string
	fail      error
	reason    string
}

func (f *fakeOAuth) Target(context.Context, string) (*url.URL, error) { return nil, nil }
func (f *fakeOAuth) Origins() []*url.URL                              { return nil }
func (f *fakeOAuth) Home() *url.URL                                   { u, _ := url.Parse("https://acme.atlassian.net"); return u }
func (f *fakeOAuth) Inject(*http.Request) error                       { return nil }
func (f *fakeOAuth) RootCAs() *x509.CertPool                          { return nil }
func (f *fakeOAuth) AuthCodeURL(state string) string {
	return "https://auth.example.com/authorize?client_id=x&state=" + url.QueryEscape(state)
}
func (f *fakeOAuth) CompleteAuthorization(_ context.Context, code string) error {
	if f.fail != nil {
		return f.fail
	}
	f.completed = append(f.completed, code)
	return nil
}
func (f *fakeOAuth) Status(context.Context) credentials.OAuthStatus {
	st := credentials.OAuthStatus{Name: f.name, Type: "oauth", Site: "https://acme.atlassian.net", State: "unauthorized", Reason: f.reason}
	if len(f.completed) > 0 {
		st.State, st.CloudID = "ready", "cloud-1"
	}
	return st
}

type fakeStatic struct{ fakeOAuth }

func (fakeStatic) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "atlasgate.credentials.api_token"}
}

// fakeStatic must not look like an OAuth credential.
func (fakeStatic) AuthCodeURL() {}

type fakeSource map[string]atlasgate.Credential

func (s fakeSource) CredentialNames() []string {
	var out []string
	for _, n := range []string{"jira", "static", "xss"} {
		if _, ok := s[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

func (s fakeSource) Credential(name string) (atlasgate.Credential, bool) {
	c, ok := s[name]
	return c, ok
}

func newHandler(t *testing.T) (*Handler, *fakeOAuth) {
	t.Helper()
	jira := &fakeOAuth{name: "jira"}
	h := &Handler{
		PathPrefix: DefaultPathPrefix,
		creds:      fakeSource{"jira": jira, "static": &fakeStatic{}},
		storage:    &certmagic.FileStorage{Path: t.TempDir()},
		logger:     zap.NewNop(),
		audit:      zap.NewNop(),
	}
	return h, jira
}

type result struct {
	status int
	header http.Header
	body   string
	next   bool
}

func serve(t *testing.T, h *Handler, r *http.Request) result {
	t.Helper()
	w := httptest.NewRecorder()
	var called bool
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { called = true; return nil })
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return result{w.Code, w.Header(), w.Body.String(), called}
}

// authorize presses Authorize for name and returns the state and cookie.
func authorize(t *testing.T, h *Handler, name string) (state string, cookie *http.Cookie) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://gw.example/atlasgate/oauth/authorize/"+name, nil)
	r.Header.Set("Origin", "http://gw.example")
	res := serve(t, h, r)
	if res.status != http.StatusSeeOther {
		t.Fatalf("authorize: %d %s", res.status, res.body)
	}
	loc, _ := url.Parse(res.header.Get("Location"))
	if loc.Host != "auth.example.com" || len(loc.Query().Get("state")) != tagLen+1+43 {
		t.Fatalf("redirect to %s", loc)
	}
	cookies := (&http.Response{Header: res.header}).Cookies()
	if len(cookies) != 1 || cookies[0].Name != cookieName || !cookies[0].HttpOnly ||
		cookies[0].SameSite != http.SameSiteLaxMode || cookies[0].Path != DefaultPathPrefix || cookies[0].Secure {
		t.Fatalf("cookie: %+v", cookies)
	}
	return loc.Query().Get("state"), cookies[0]
}

func callback(t *testing.T, h *Handler, query string, cookie *http.Cookie) result {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://gw.example/atlasgate/oauth/callback?"+query, nil)
	if cookie != nil {
		r.AddCookie(cookie)
	}
	return serve(t, h, r)
}

func TestAuthorizeAndCallback(t *testing.T) {
	h, jira := newHandler(t)
	state, cookie := authorize(t, h, "jira")
	res := callback(t, h, "code=the-code&state="+state, cookie)
	if res.status != 200 || !strings.Contains(res.body, `id="cloud-id">cloud-1<`) || len(jira.completed) != 1 || jira.completed[0] != "the-code" {
		t.Fatalf("callback: %d %v %s", res.status, jira.completed, res.body)
	}
	if !strings.Contains(res.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("the cookie is not cleared: %q", res.header.Get("Set-Cookie"))
	}
	// Single use.
	res = callback(t, h, "code=the-code&state="+state, cookie)
	if res.status != 400 || !strings.Contains(res.body, "unknown or was already used") || len(jira.completed) != 1 {
		t.Fatalf("replay: %d %s", res.status, res.body)
	}
}

func TestCallbackFailures(t *testing.T) {
	defer gclock.Set(nil)
	tests := []struct {
		name   string
		query  func(state string) string
		cookie func(c *http.Cookie) *http.Cookie
		fail   error
		before func()
		status int
		want   string
	}{
		{name: "no cookie", cookie: func(*http.Cookie) *http.Cookie { return nil }, status: 400, want: "another browser"},
		{name: "another browser's cookie", cookie: func(*http.Cookie) *http.Cookie { return &http.Cookie{Name: cookieName, Value: "other"} }, status: 400, want: "another browser"},
		{name: "forged state", query: func(string) string { return "code=c&state=forged" }, status: 400, want: "unknown or was already used"},
		{name: "missing state", query: func(string) string { return "code=c" }, status: 400, want: "no state"},
		{name: "consent denied", query: func(s string) string { return "error=access_denied&state=" + s }, status: 403, want: "Consent denied"},
		{name: "other error, escaped", query: func(s string) string {
			return "error=%3Cscript%3E&error_description=%3Cimg+src%3Dx%3E&state=" + s
		}, status: 400, want: "&lt;script&gt;"},
		{name: "missing code", query: func(s string) string { return "state=" + s }, status: 400, want: "no authorization code"},
		{name: "exchange failure", fail: errors.New("the grant does not cover https://acme.atlassian.net"), status: 400, want: "does not cover"},
		{name: "expired", before: func() { gclock.Set(func() time.Time { return time.Now().Add(StateLifetime + time.Second) }) }, status: 400, want: "has expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gclock.Set(nil)
			h, jira := newHandler(t)
			jira.fail = tt.fail
			state, cookie := authorize(t, h, "jira")
			q := "code=c&state=" + state
			if tt.query != nil {
				q = tt.query(state)
			}
			if tt.cookie != nil {
				cookie = tt.cookie(cookie)
			}
			if tt.before != nil {
				tt.before()
			}
			res := callback(t, h, q, cookie)
			if res.status != tt.status || !strings.Contains(res.body, tt.want) {
				t.Fatalf("got %d, want %d with %q:\n%s", res.status, tt.status, tt.want, res.body)
			}
			if strings.Contains(res.body, "<script>") || strings.Contains(res.body, "<img") {
				t.Fatal("unescaped input in the page")
			}
			if tt.fail == nil && len(jira.completed) != 0 {
				t.Fatal("the authorization completed")
			}
		})
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	tests := []struct {
		name, method, path string
		header             map[string]string
		status             int
	}{
		{"PUT", http.MethodPut, "/atlasgate/oauth/authorize/jira", nil, 405},
		{"GET of an unknown credential", http.MethodGet, "/atlasgate/oauth/authorize/nope", nil, 404},
		{"GET of a static credential", http.MethodGet, "/atlasgate/oauth/authorize/static", nil, 400},
		{"cross-origin", http.MethodPost, "/atlasgate/oauth/authorize/jira", map[string]string{"Origin": "https://evil.example"}, 403},
		{"null origin", http.MethodPost, "/atlasgate/oauth/authorize/jira", map[string]string{"Origin": "null"}, 403},
		{"cross-origin referer", http.MethodPost, "/atlasgate/oauth/authorize/jira", map[string]string{"Referer": "https://evil.example/x"}, 403},
		{"cross-site fetch", http.MethodPost, "/atlasgate/oauth/authorize/jira", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"unknown credential", http.MethodPost, "/atlasgate/oauth/authorize/nope", nil, 404},
		{"not an OAuth credential", http.MethodPost, "/atlasgate/oauth/authorize/static", nil, 400},
		{"POST callback", http.MethodPost, "/atlasgate/oauth/callback", nil, 405},
		{"unknown page", http.MethodGet, "/atlasgate/oauth/nothing", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHandler(t)
			r := httptest.NewRequest(tt.method, "http://gw.example"+tt.path, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			res := serve(t, h, r)
			if res.status != tt.status || res.header.Get("Location") != "" || res.header.Get("Set-Cookie") != "" {
				t.Fatalf("got %d (Location %q), want %d", res.status, res.header.Get("Location"), tt.status)
			}
		})
	}
}

// A link to the authorize address shows a confirmation page whose button
// posts to the same address; the GET itself starts nothing.
func TestAuthorizeLinkConfirms(t *testing.T) {
	h, _ := newHandler(t)
	r := httptest.NewRequest(http.MethodGet, "http://gw.example/atlasgate/oauth/authorize/jira", nil)
	r.Header.Set("Sec-Fetch-Site", "cross-site") // a link from anywhere may open it
	res := serve(t, h, r)
	if res.status != 200 || res.header.Get("Location") != "" || res.header.Get("Set-Cookie") != "" {
		t.Fatalf("GET: %d Location %q Set-Cookie %q", res.status, res.header.Get("Location"), res.header.Get("Set-Cookie"))
	}
	for _, want := range []string{`<form method="post" action="/atlasgate/oauth/authorize/jira">`, `id="authorize"`, `id="credential">jira<`, `id="state">unauthorized<`} {
		if !strings.Contains(res.body, want) {
			t.Errorf("confirmation page lacks %s:\n%s", want, res.body)
		}
	}
	if csp := res.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("the confirmation page can be framed (clickjacking): %q", csp)
	}
	if keys, _ := h.storage.List(context.Background(), "atlasgate/oauth_states", true); len(keys) != 0 {
		t.Errorf("GET stored %d authorization states", len(keys))
	}
}

func TestIndex(t *testing.T) {
	h, jira := newHandler(t)
	jira.reason = `<script>alert(1)</script>`
	for _, path := range []string{"/atlasgate/oauth", "/atlasgate/oauth/"} {
		res := serve(t, h, httptest.NewRequest(http.MethodGet, "http://gw.example"+path, nil))
		if res.status != 200 {
			t.Fatalf("%s: %d", path, res.status)
		}
		for _, want := range []string{`id="authorize-jira"`, `action="/atlasgate/oauth/authorize/jira"`, `id="state-jira">unauthorized<`, "api_token", "&lt;script&gt;"} {
			if !strings.Contains(res.body, want) {
				t.Errorf("%s: page lacks %s", path, want)
			}
		}
		if strings.Contains(res.body, "<script>") || strings.Contains(res.body, "authorize-static") {
			t.Errorf("%s: unescaped reason or an Authorize button for a static credential", path)
		}
		want := map[string]string{
			"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https://auth.example.com; frame-ancestors 'none'; base-uri 'none'",
			"X-Frame-Options":         "DENY",
			"Cache-Control":           "no-store",
			"Referrer-Policy":         "no-referrer",
		}
		for k, v := range want {
			if res.header.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", path, k, res.header.Get(k), v)
			}
		}
	}
	if res := serve(t, h, httptest.NewRequest(http.MethodGet, "http://gw.example/atlasgate/oauthx", nil)); !res.next {
		t.Error("a path outside the prefix did not go to the next handler")
	}
}

func TestCaddyfile(t *testing.T) {
	tests := []struct{ in, prefix, err string }{
		{"atlasgate_console", "", ""},
		{"atlasgate_console /console", "/console", ""},
		{"atlasgate_console {\n path_prefix /x/y\n}", "/x/y", ""},
		{"atlasgate_console a b", "", "wrong argument count"},
		{"atlasgate_console {\n bogus\n}", "", "unrecognized option"},
	}
	for _, tt := range tests {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || h.PathPrefix != tt.prefix {
			t.Errorf("%q: %v, prefix %q", tt.in, err, h.PathPrefix)
		}
	}
}

func TestPrintTable(t *testing.T) {
	var buf bytes.Buffer
	exp := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	printTable(&buf, []CredentialStatus{
		{Name: "jira", Type: "oauth", OAuth: &credentials.OAuthStatus{State: "ready", AccessExpiry: exp, Warnings: []string{"soon"}}},
		{Name: "dc", Type: "bearer"},
		{Name: "old", Type: "oauth", OAuth: &credentials.OAuthStatus{State: "needs_reauthorization", Reason: "invalid_grant: revoked"}},
		{Name: "mine", Type: "oauth", OAuth: &credentials.OAuthStatus{State: "unauthorized", PerUser: true, Users: 3}},
	})
	out := buf.String()
	for _, want := range []string{"NAME", "jira  oauth", "ready", "2026-01-05T10:00:00Z", "soon", "dc    bearer  -", "needs_reauthorization (invalid_grant: revoked)", "per user: 3 authorized"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestSweepDropsAbandonedStates(t *testing.T) {
	defer gclock.Set(nil)
	h, _ := newHandler(t)
	old, _ := authorize(t, h, "jira")
	gclock.Set(func() time.Time { return time.Now().Add(StateLifetime + time.Minute) })
	fresh, _ := authorize(t, h, "jira")
	ctx := context.Background()
	oldKey, _ := stateKey(old)
	freshKey, _ := stateKey(fresh)
	if h.storage.Exists(ctx, oldKey) || !h.storage.Exists(ctx, freshKey) {
		t.Fatalf("after the sweep: old kept %v, fresh kept %v", h.storage.Exists(ctx, oldKey), h.storage.Exists(ctx, freshKey))
	}
}

func withUser(r *http.Request, user string) *http.Request {
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", user)
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
}

func TestUserBindingAndAudit(t *testing.T) {
	h, jira := newHandler(t)
	core, logs := observer.New(zap.InfoLevel)
	h.audit = zap.New(core)
	r := httptest.NewRequest(http.MethodPost, "http://gw.example/atlasgate/oauth/authorize/jira", nil)
	res := serve(t, h, withUser(r, "alice"))
	loc, _ := url.Parse(res.header.Get("Location"))
	cookie := (&http.Response{Header: res.header}).Cookies()[0]
	state := loc.Query().Get("state")

	r = httptest.NewRequest(http.MethodGet, "http://gw.example/atlasgate/oauth/callback?code=c&state="+state, nil)
	r.AddCookie(cookie)
	if res := serve(t, h, withUser(r, "bob")); res.status != 400 || !strings.Contains(res.body, "another console user") || len(jira.completed) != 0 {
		t.Fatalf("callback as another user: %d %s", res.status, res.body)
	}
	failed := logs.FilterMessage("authorization failed").All()
	if len(failed) != 1 || failed[0].ContextMap()["user"] != "bob" || failed[0].ContextMap()["credential"] != "jira" || failed[0].ContextMap()["outcome"] != "failed" {
		t.Fatalf("audit: %+v", logs.All())
	}

	state, cookie = authorizeAs(t, h, "alice")
	r = httptest.NewRequest(http.MethodGet, "http://gw.example/atlasgate/oauth/callback?code=c&state="+state, nil)
	r.AddCookie(cookie)
	if res := serve(t, h, withUser(r, "alice")); res.status != 200 {
		t.Fatalf("callback as the same user: %d %s", res.status, res.body)
	}
	ok := logs.FilterMessage("credential authorized").All()
	if len(ok) != 1 || ok[0].ContextMap()["user"] != "alice" || ok[0].ContextMap()["outcome"] != "authorized" {
		t.Fatalf("audit: %+v", logs.All())
	}
	for _, e := range logs.All() {
		for _, v := range e.ContextMap() {
			if s, _ := v.(string); strings.Contains(s, state) || s == "c" {
				t.Errorf("the audit log holds the state or the code: %+v", e)
			}
		}
	}
}

func authorizeAs(t *testing.T, h *Handler, user string) (string, *http.Cookie) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://gw.example/atlasgate/oauth/authorize/jira", nil)
	res := serve(t, h, withUser(r, user))
	loc, _ := url.Parse(res.header.Get("Location"))
	return loc.Query().Get("state"), (&http.Response{Header: res.header}).Cookies()[0]
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		headers map[string]string
		want    bool
	}{
		{nil, true}, // a non-browser client
		{map[string]string{"Origin": "http://gw.example"}, true},
		{map[string]string{"Origin": "https://gw.example"}, true}, // TLS terminated in front
		{map[string]string{"Referer": "http://gw.example/atlasgate/oauth/"}, true},
		// the console's own form under Referrer-Policy: no-referrer
		{map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}, true},
		{map[string]string{"Origin": "null"}, false},
		{map[string]string{"Origin": "http://gw.example", "Sec-Fetch-Site": "same-site"}, false},
		{map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "same-origin"}, false},
		{map[string]string{"Referer": "http://gw.example.evil.example/"}, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "http://gw.example/atlasgate/oauth/authorize/jira", nil)
		for k, v := range tt.headers {
			r.Header.Set(k, v)
		}
		if got := sameOrigin(r); got != tt.want {
			t.Errorf("%v: %v, want %v", tt.headers, got, tt.want)
		}
	}
}

// withIdentity is a request as atlasgate_auth leaves it: the identity in the
// request's variables.
func withIdentity(r *http.Request, authenticator, user string) *http.Request {
	vars := map[string]any{authn.IdentityVar: &authn.Identity{Authenticator: authenticator, User: user}}
	return r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
}

// Login CSRF across authenticators: bob of a partner IdP starts an
// authorization and plants its state and cookie in the browser of bob of the
// corporate IdP. The grant would be stored under corp:bob; the callback is
// refused because the state belongs to partner:bob.
func TestStateBoundToAuthenticatorAndUser(t *testing.T) {
	h, jira := newHandler(t)
	r := httptest.NewRequest(http.MethodPost, "http://gw.example/atlasgate/oauth/authorize/jira", nil)
	res := serve(t, h, withIdentity(r, "partner", "bob"))
	loc, _ := url.Parse(res.header.Get("Location"))
	cookie := (&http.Response{Header: res.header}).Cookies()[0]

	r = httptest.NewRequest(http.MethodGet, "http://gw.example/atlasgate/oauth/callback?code=attacker&state="+url.QueryEscape(loc.Query().Get("state")), nil)
	r.AddCookie(cookie)
	if res := serve(t, h, withIdentity(r, "corp", "bob")); res.status != 400 || len(jira.completed) != 0 {
		t.Fatalf("a same-named identity of another authenticator completed the authorization: %d %s", res.status, res.body)
	}
	// Caddy's basic_auth bob is yet another caller.
	res = serve(t, h, withIdentity(httptest.NewRequest(http.MethodPost, "http://gw.example/atlasgate/oauth/authorize/jira", nil), "corp", "bob"))
	loc, _ = url.Parse(res.header.Get("Location"))
	r = httptest.NewRequest(http.MethodGet, "http://gw.example/atlasgate/oauth/callback?code=c&state="+url.QueryEscape(loc.Query().Get("state")), nil)
	r.AddCookie((&http.Response{Header: res.header}).Cookies()[0])
	if res := serve(t, h, withUser(r, "bob")); res.status != 400 || len(jira.completed) != 0 {
		t.Fatalf("basic_auth bob completed corp:bob's authorization: %d %s", res.status, res.body)
	}
}

// Over https the binding cookie is a __Host- cookie, and a state started
// over https is completed only with it.
func TestSecureCookie(t *testing.T) {
	h, jira := newHandler(t)
	r := httptest.NewRequest(http.MethodPost, "https://gw.example/atlasgate/oauth/authorize/jira", nil)
	res := serve(t, h, r)
	loc, _ := url.Parse(res.header.Get("Location"))
	cookies := (&http.Response{Header: res.header}).Cookies()
	if len(cookies) != 1 || cookies[0].Name != "__Host-atlasgate_oauth_state" || !cookies[0].Secure || cookies[0].Path != "/" || cookies[0].Domain != "" {
		t.Fatalf("cookie over https: %+v", cookies)
	}
	state := url.QueryEscape(loc.Query().Get("state"))
	planted := &http.Cookie{Name: cookieName, Value: cookies[0].Value}
	r = httptest.NewRequest(http.MethodGet, "https://gw.example/atlasgate/oauth/callback?code=c&state="+state, nil)
	r.AddCookie(planted)
	if res := serve(t, h, r); res.status != 400 || len(jira.completed) != 0 {
		t.Fatalf("completed with the plain cookie: %d", res.status)
	}

	res = serve(t, h, httptest.NewRequest(http.MethodPost, "https://gw.example/atlasgate/oauth/authorize/jira", nil))
	loc, _ = url.Parse(res.header.Get("Location"))
	r = httptest.NewRequest(http.MethodGet, "https://gw.example/atlasgate/oauth/callback?code=c&state="+url.QueryEscape(loc.Query().Get("state")), nil)
	r.AddCookie((&http.Response{Header: res.header}).Cookies()[0])
	if res := serve(t, h, r); res.status != 200 || len(jira.completed) != 1 {
		t.Fatalf("completed with the __Host- cookie: %d %s", res.status, res.body)
	}
}

// countingStorage counts reads, to show how much one Authorize looks at.
type countingStorage struct {
	certmagic.Storage
	loads atomic.Int64
}

func (s *countingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	s.loads.Add(1)
	return s.Storage.Load(ctx, key)
}

// Authorize used to read every pending request of every caller, and one
// caller could pile them up. Now a caller has at most MaxPendingStates, the
// oldest goes first, and an Authorize reads only its own caller's.
func TestPendingStatesCappedPerCaller(t *testing.T) {
	h, jira := newHandler(t)
	cs := &countingStorage{Storage: h.storage}
	h.storage = cs
	var states []string
	var cookies []*http.Cookie
	for i := 0; i < 40; i++ {
		res := serve(t, h, withIdentity(httptest.NewRequest(http.MethodPost, "http://gw.example/atlasgate/oauth/authorize/jira", nil), "corp", "mallory"))
		loc, _ := url.Parse(res.header.Get("Location"))
		states = append(states, loc.Query().Get("state"))
		cookies = append(cookies, (&http.Response{Header: res.header}).Cookies()[0])
	}
	for i := 0; i < 40; i++ {
		serve(t, h, withIdentity(httptest.NewRequest(http.MethodPost, "http://gw.example/atlasgate/oauth/authorize/jira", nil), "corp", fmt.Sprintf("user-%d", i)))
	}
	keys, _ := cs.List(context.Background(), statePrefix, true)
	files := 0
	for _, k := range keys {
		if _, err := cs.Stat(context.Background(), k); err == nil && strings.Count(k, "/") == strings.Count(statePrefix, "/")+2 {
			files++
		}
	}
	if files != MaxPendingStates+40 {
		t.Errorf("%d pending requests stored, want %d (mallory's capped, one per other caller)", files, MaxPendingStates+40)
	}
	before := cs.loads.Load()
	serve(t, h, withIdentity(httptest.NewRequest(http.MethodPost, "http://gw.example/atlasgate/oauth/authorize/jira", nil), "corp", "alice"))
	if n := cs.loads.Load() - before; n > MaxPendingStates {
		t.Errorf("one Authorize read %d pending requests with %d pending in the storage", n, files)
	}

	// mallory's oldest request is gone, the newest still completes.
	callbackAs := func(i int) result {
		r := httptest.NewRequest(http.MethodGet, "http://gw.example/atlasgate/oauth/callback?code=c&state="+url.QueryEscape(states[i]), nil)
		r.AddCookie(cookies[i])
		return serve(t, h, withIdentity(r, "corp", "mallory"))
	}
	if res := callbackAs(0); res.status != 400 || !strings.Contains(res.body, "unknown") {
		t.Errorf("the oldest request: %d %s", res.status, res.body)
	}
	if res := callbackAs(39); res.status != 200 || len(jira.completed) != 1 {
		t.Errorf("the newest request: %d %s", res.status, res.body)
	}
}

package opaque

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Responses shaped like the real providers'.
const (
	graphMe = `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users/$entity","businessPhones":["+1 425 555 0109"],
		"displayName":"Adele Vance","givenName":"Adele","jobTitle":"Retail Manager","mail":"AdeleV@contoso.com","mobilePhone":null,
		"officeLocation":"18/2111","preferredLanguage":"en-US","surname":"Vance","userPrincipalName":"AdeleV@contoso.com",
		"id":"87d349ed-44d7-43e1-9a83-5f2406dee5bd"}`
	githubUser = `{"login":"octocat","id":583231,"node_id":"MDQ6VXNlcjU4MzIzMQ==","avatar_url":"https://avatars.githubusercontent.com/u/583231?v=4",
		"html_url":"https://github.com/octocat","type":"User","site_admin":false,"name":"The Octocat","company":"@github",
		"email":null,"two_factor_authentication":true,"plan":{"name":"pro","space":976562499,"private_repos":9999}}`
	gitlabUser = `{"id":1,"username":"john_smith","email":"john@example.com","name":"John Smith","state":"active","locked":false,
		"avatar_url":"http://localhost:3000/uploads/user/avatar/1/index.jpg","web_url":"http://localhost:3000/john_smith",
		"is_admin":false,"bot":false,"two_factor_enabled":true}`
	googleUserinfo = `{"sub":"110169484474386276334","name":"Alice Example","given_name":"Alice","family_name":"Example",
		"picture":"https://lh3.googleusercontent.com/a/photo.jpg","email":"alice@example.com","email_verified":true,"hd":"example.com"}`
	slackUserinfo = `{"ok":true,"sub":"U0R7JM","https://slack.com/user_id":"U0R7JM","https://slack.com/team_id":"T0R7GR",
		"email":"krane@slack-corp.com","email_verified":true,"date_email_verified":1622128723,"name":"krane",
		"picture":"https://secure.gravatar.com/avatar/bc.jpg","given_name":"Bront","family_name":"Labradoodle","locale":"en-US",
		"https://slack.com/team_name":"kraneflannel","https://slack.com/team_domain":"kraneflannel"}`
	slackInvalid   = `{"ok":false,"error":"invalid_auth"}`
	facebookMe     = `{"id":"10158372418296145","name":"Jane Doe","email":"jane@example.com"}`
	facebookError  = `{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190,"fbtrace_id":"AbCdEf"}}`
	oidcUserinfo   = `{"sub":"id1","preferred_username":"test-user@127.0.0.1","email":"test-user@zitadel.ch","email_verified":true}`
	customResponse = `{"data":{"user":{"login":"dana","teams":[{"name":"dev"},{"name":"release"}]}},"meta":{"v":2}}`
	validToken     = "valid-token"
)

// userinfoIDP answers 200 with body for validToken and invalidStatus/invalidBody
// otherwise; it records the last request's headers.
type userinfoIDP struct {
	*idp
	mu     sync.Mutex
	header http.Header
	path   string
}

func newUserinfoIDP(t *testing.T, body string, invalidStatus int, invalidBody string, extra http.Header) *userinfoIDP {
	u := &userinfoIDP{}
	u.idp = newIDP(t, func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.header, u.path = r.Header.Clone(), r.URL.RequestURI()
		u.mu.Unlock()
		for k, v := range extra {
			w.Header()[k] = v
		}
		if r.Method != http.MethodGet || r.Header.Get("Authorization") != "Bearer "+validToken {
			jsonReply(invalidStatus, invalidBody)(w, r)
			return
		}
		jsonReply(http.StatusOK, body)(w, r)
	})
	return u
}

func TestUserinfoPresets(t *testing.T) {
	for _, tc := range []struct {
		provider      string
		body          string
		invalidStatus int
		invalidBody   string
		respHeader    http.Header
		mod           func(*Userinfo, string)
		wantUser      string
		wantSubject   string
		wantHeader    [2]string
		wantPath      string
		wantScopes    string
	}{
		{provider: "graph", body: graphMe, invalidStatus: 401, invalidBody: `{"error":{"code":"InvalidAuthenticationToken"}}`,
			wantUser: "AdeleV@contoso.com", wantSubject: "87d349ed-44d7-43e1-9a83-5f2406dee5bd"},
		{provider: "github", body: githubUser, invalidStatus: 401, invalidBody: `{"message":"Bad credentials"}`,
			respHeader: http.Header{"X-Oauth-Scopes": {"repo, read:org"}},
			wantUser:   "octocat", wantSubject: "583231", wantHeader: [2]string{"Accept", "application/vnd.github+json"}, wantScopes: "repo read:org"},
		{provider: "gitlab", body: gitlabUser, invalidStatus: 401, invalidBody: `{"message":"401 Unauthorized"}`,
			mod:      func(u *Userinfo, base string) { u.URL = ""; u.Instance = base + "/" },
			wantUser: "john_smith", wantSubject: "1", wantPath: "/api/v4/user"},
		{provider: "google", body: googleUserinfo, invalidStatus: 401, invalidBody: `{"error":"invalid_request"}`,
			wantUser: "alice@example.com", wantSubject: "110169484474386276334"},
		{provider: "slack", body: slackUserinfo, invalidStatus: 200, invalidBody: slackInvalid,
			wantUser: "krane@slack-corp.com", wantSubject: "U0R7JM"},
		{provider: "slack", body: slackUserinfo, invalidStatus: 200, invalidBody: slackInvalid,
			mod:      func(u *Userinfo, _ string) { u.UsernameAttribute = "https://slack.com/user_id" },
			wantUser: "U0R7JM", wantSubject: "U0R7JM"},
		{provider: "facebook", body: facebookMe, invalidStatus: 400, invalidBody: facebookError,
			wantUser: "10158372418296145", wantSubject: "10158372418296145"},
		{provider: "oidc", body: oidcUserinfo, invalidStatus: 401, invalidBody: ``,
			wantUser: "id1", wantSubject: "id1"},
		{provider: "oidc", body: oidcUserinfo, invalidStatus: 403, invalidBody: `{}`,
			mod:      func(u *Userinfo, _ string) { u.UsernameAttribute = "preferred_username" },
			wantUser: "test-user@127.0.0.1", wantSubject: "id1"},
		{provider: "custom", body: customResponse, invalidStatus: 401, invalidBody: `{}`,
			mod: func(u *Userinfo, _ string) {
				u.UsernameAttribute = "data.user.login"
				u.GroupsAttribute = "data.user.teams.name"
				u.Headers = map[string]string{"X-Api-Version": "2"}
			},
			wantUser: "dana", wantHeader: [2]string{"X-Api-Version", "2"}},
	} {
		t.Run(tc.provider+" "+tc.wantUser, func(t *testing.T) {
			p := newUserinfoIDP(t, tc.body, tc.invalidStatus, tc.invalidBody, tc.respHeader)
			u := &Userinfo{Provider: tc.provider, URL: p.URL + "/me"}
			if tc.mod != nil {
				tc.mod(u, p.URL)
			}
			mustProvision(t, u)
			id, err := u.Authenticate(bearer(validToken))
			if err != nil {
				t.Fatal(err)
			}
			if id.Kind != "userinfo" || id.User != tc.wantUser || id.Subject != tc.wantSubject {
				t.Errorf("identity = %+v, want user %q subject %q", id, tc.wantUser, tc.wantSubject)
			}
			if len(id.Claims) == 0 {
				t.Error("claims are empty: the operator cannot choose an attribute")
			}
			if got := strings.Join(id.Scopes, " "); got != tc.wantScopes {
				t.Errorf("scopes = %q, want %q", got, tc.wantScopes)
			}
			if tc.provider == "custom" && strings.Join(id.Groups, ",") != "dev,release" {
				t.Errorf("groups = %v", id.Groups)
			}
			p.mu.Lock()
			if h := tc.wantHeader; h[0] != "" && p.header.Get(h[0]) != h[1] {
				t.Errorf("request header %s = %q, want %q", h[0], p.header.Get(h[0]), h[1])
			}
			if tc.wantPath != "" && p.path != tc.wantPath {
				t.Errorf("path = %q, want %q", p.path, tc.wantPath)
			}
			p.mu.Unlock()

			_, err = u.Authenticate(bearer("revoked-token"))
			if ae := wantStatus(t, err, http.StatusUnauthorized); ae.Code != "invalid_token" {
				t.Errorf("error = %+v", ae)
			}
		})
	}
}

func TestUserinfoPresetURLs(t *testing.T) {
	for provider, want := range map[string]string{
		"graph":    "https://graph.microsoft.com/v1.0/me",
		"github":   "https://api.github.com/user",
		"gitlab":   "https://gitlab.com/api/v4/user",
		"google":   "https://openidconnect.googleapis.com/v1/userinfo",
		"slack":    "https://slack.com/api/openid.connect.userInfo",
		"facebook": "https://graph.facebook.com/me?fields=id,name,email",
	} {
		u := &Userinfo{Provider: provider}
		mustProvision(t, u)
		if u.endpoint.String() != want {
			t.Errorf("%s: endpoint %s, want %s", provider, u.endpoint, want)
		}
	}
	u := &Userinfo{Provider: "gitlab", Instance: "https://gitlab.example.com/"}
	mustProvision(t, u)
	if u.endpoint.String() != "https://gitlab.example.com/api/v4/user" {
		t.Errorf("gitlab instance endpoint %s", u.endpoint)
	}
}

func TestUserinfoRefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		provider string
		status   int
		body     string
		mod      func(*Userinfo)
		want     int
		wantDesc string
	}{
		{"401", "oidc", 401, `{}`, nil, 401, "the token was refused by its issuer"},
		{"403", "oidc", 403, `{}`, nil, 401, "the token was refused by its issuer"},
		{"400 is not a token problem for most", "oidc", 400, `{}`, nil, 503, ""},
		{"429", "github", 429, `{"message":"rate limited"}`, nil, 503, ""},
		{"500", "graph", 500, `{}`, nil, 503, ""},
		{"503", "google", 503, `{}`, nil, 503, ""},
		{"not json", "oidc", 200, `<html>login</html>`, nil, 503, ""},
		{"signed userinfo (JWT) is not supported", "oidc", 200, `eyJhbGciOiJSUzI1NiJ9.e30.c2ln`, nil, 503, ""},
		{"slack not ok", "slack", 200, slackInvalid, nil, 401, "the token was refused by its issuer"},
		{"slack no ok member", "slack", 200, `{"email":"x@example.com"}`, nil, 401, "the token was refused by its issuer"},
		{"slack fatal error", "slack", 200, `{"ok":false,"error":"fatal_error"}`, nil, 503, ""},
		{"facebook 400", "facebook", 400, facebookError, nil, 401, "the token was refused by its issuer"},
		{"google unverified email", "google", 200, `{"sub":"1","email":"a@example.com","email_verified":false}`, nil, 401,
			"the token's email address is not verified"},
		{"google unverified email, sub as username", "google", 200, `{"sub":"1","email":"a@example.com","email_verified":false}`,
			func(u *Userinfo) { u.UsernameAttribute = "sub" }, 200, ""},
		{"missing username", "github", 200, `{"id":1}`, nil, 401, "token lacks the username attribute"},
		{"username is an object", "custom", 200, `{"user":{"login":"x"}}`, func(u *Userinfo) { u.UsernameAttribute = "user" }, 401,
			"token lacks the username attribute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newIDP(t, jsonReply(tc.status, tc.body))
			u := &Userinfo{Provider: tc.provider, URL: p.URL, UsernameAttribute: map[bool]string{true: "login"}[tc.provider == "custom"]}
			if tc.mod != nil {
				tc.mod(u)
			}
			mustProvision(t, u)
			_, err := u.Authenticate(bearer(validToken))
			if tc.want == 200 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			ae := wantStatus(t, err, tc.want)
			if tc.wantDesc != "" && ae.Description != tc.wantDesc {
				t.Errorf("description = %q, want %q", ae.Description, tc.wantDesc)
			}
		})
	}
}

func TestUserinfoTimeoutAndNetwork(t *testing.T) {
	block := make(chan struct{})
	p := newIDP(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(block) })
	u := &Userinfo{Provider: "oidc", URL: p.URL, Timeout: caddy.Duration(50 * time.Millisecond)}
	mustProvision(t, u)
	_, err := u.Authenticate(bearer(validToken))
	wantStatus(t, err, http.StatusServiceUnavailable)

	down := newIDP(t, jsonReply(200, oidcUserinfo))
	down.Close()
	u = &Userinfo{Provider: "oidc", URL: down.URL}
	mustProvision(t, u)
	_, err = u.Authenticate(bearer(validToken))
	wantStatus(t, err, http.StatusServiceUnavailable)
}

func TestUserinfoCache(t *testing.T) {
	clk := fakeClock(t)
	p := newUserinfoIDP(t, oidcUserinfo, 401, `{}`, nil)
	u := &Userinfo{Provider: "oidc", URL: p.URL}
	mustProvision(t, u) // cache_ttl 60s, negative 10s
	call := func(tok string, wantCalls int64, wantErr int) {
		t.Helper()
		_, err := u.Authenticate(bearer(tok))
		if wantErr != 0 {
			wantStatus(t, err, wantErr)
		} else if err != nil {
			t.Fatal(err)
		}
		if got := p.calls.Load(); got != wantCalls {
			t.Fatalf("%s: %d calls, want %d", tok, got, wantCalls)
		}
	}
	call(validToken, 1, 0)
	call(validToken, 1, 0)
	clk.advance(59 * time.Second)
	call(validToken, 1, 0)
	clk.advance(2 * time.Second)
	call(validToken, 2, 0)

	call("bad", 3, 401)
	call("bad", 3, 401)
	clk.advance(11 * time.Second)
	call("bad", 4, 401)
}

func TestUserinfoSingleFlight(t *testing.T) {
	release := make(chan struct{})
	p := newIDP(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		jsonReply(http.StatusOK, githubUser)(w, r)
	})
	u := &Userinfo{Provider: "github", URL: p.URL}
	mustProvision(t, u)
	var started, done sync.WaitGroup
	const n = 100
	started.Add(n)
	done.Add(n)
	var failed sync.Map
	for i := range n {
		go func() {
			defer done.Done()
			started.Done()
			if id, err := u.Authenticate(bearer(validToken)); err != nil || id.User != "octocat" {
				failed.Store(i, err)
			}
		}()
	}
	started.Wait()
	close(release)
	done.Wait()
	failed.Range(func(k, v any) bool { t.Errorf("request %v: %v", k, v); return true })
	if got := p.calls.Load(); got != 1 {
		t.Errorf("%d concurrent identical lookups made %d calls, want 1", n, got)
	}
}

func TestUserinfoProvisionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    Userinfo
		want string
	}{
		{"no provider", Userinfo{}, "provider: required"},
		{"unknown provider", Userinfo{Provider: "myspace"}, `unknown provider "myspace"`},
		{"oidc without url", Userinfo{Provider: "oidc"}, "url: required for the oidc provider"},
		{"custom without url", Userinfo{Provider: "custom", UsernameAttribute: "login"}, "url: required"},
		{"custom without username", Userinfo{Provider: "custom", URL: "https://api.example.com/me"}, "username_attribute: required"},
		{"http url", Userinfo{Provider: "github", URL: "http://api.github.com/user"}, "must be an https:// URL"},
		{"instance for github", Userinfo{Provider: "github", Instance: "https://x.example.com"}, "instance: only applies"},
		{"authorization header", Userinfo{Provider: "github", Headers: map[string]string{"authorization": "x"}}, "Authorization"},
		{"unset header placeholder", Userinfo{Provider: "github", Headers: map[string]string{"X-Key": "{env.OPAQUE_TEST_UNSET_VAR}"}},
			"OPAQUE_TEST_UNSET_VAR is not set"},
		{"negative timeout", Userinfo{Provider: "github", Timeout: -1}, "must not be negative"},
	} {
		u := tc.u
		err := provision(t, &u)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want %q", tc.name, err, tc.want)
		}
	}
}

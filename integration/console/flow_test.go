package console

import (
	"fmt"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/modules/console"
)

// authorizeOverHTTP runs the whole flow without a browser: Authorize, the
// consent page's Accept, the callback.
func authorizeOverHTTP(t *testing.T) {
	t.Helper()
	loc, cookie := startAuthorize(t, "jira")
	cb := consent(t, loc, "accept")
	res := do(t, consoleRequest(http.MethodGet, cb, cookie))
	if res.status != 200 || !strings.Contains(res.body, sim.CloudID()) {
		t.Fatalf("callback: %d %s", res.status, res.body)
	}
}

func TestAuthorizeOverHTTP(t *testing.T) {
	loc, cookie := startAuthorize(t, "jira")
	// The only redirect: the configured authorize URL, with our callback.
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != sim.URL(atlassim.HostAuth)+"/authorize" ||
		loc.Query().Get("redirect_uri") != gw.callbackURL() || loc.Query().Get("client_id") != atlassim.DemoOAuthClientID {
		t.Fatalf("redirected to %s", loc)
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != prefix || cookie.Secure {
		t.Errorf("cookie attributes: %+v", cookie)
	}
	cb := consent(t, loc, "accept")
	res := do(t, consoleRequest(http.MethodGet, cb, cookie))
	if res.status != 200 || !strings.Contains(res.body, `id="credential">jira<`) || !strings.Contains(res.body, sim.CloudID()) {
		t.Fatalf("callback: %d %s", res.status, res.body)
	}
	// Replaying the callback fails: the state is single-use.
	res = do(t, consoleRequest(http.MethodGet, cb, cookie))
	if res.status != 400 || !strings.Contains(res.body, "already used") {
		t.Fatalf("replayed callback: %d %s", res.status, res.body)
	}
	// The gateway now calls Atlassian with the 3LO token.
	sim.ResetRequests()
	resp, err := http.Get(gw.base() + "/rest/api/3/myself")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	rec := sim.RequestsTo(atlassim.HostAPI)
	if resp.StatusCode != 200 || len(rec) != 1 || rec[0].Principal != atlassim.DemoAccountID || rec[0].AuthKind != "bearer" ||
		rec[0].Path != "/ex/jira/"+sim.CloudID()+"/rest/api/3/myself" {
		t.Fatalf("through the gateway: %d, reached Atlassian as %+v", resp.StatusCode, rec)
	}
}

func TestCallbackRefusals(t *testing.T) {
	tests := []struct {
		name     string
		decision string
		before   func()
		cookie   func(*http.Cookie) *http.Cookie
		query    func(cb string) string
		status   int
		want     string
	}{
		{name: "consent denied", decision: "deny", status: 403, want: "Consent denied"},
		{name: "no cookie", cookie: func(*http.Cookie) *http.Cookie { return nil }, status: 400, want: "another browser"},
		{name: "another browser's cookie", cookie: func(c *http.Cookie) *http.Cookie {
			_, other := startAuthorize(t, "jira")
			return other
		}, status: 400, want: "another browser"},
		{name: "expired state", before: func() {
			gclock.Set(func() time.Time { return time.Now().Add(console.StateLifetime + time.Minute) })
		}, status: 400, want: "expired"},
		{name: "forged state", query: func(cb string) string {
			u, _ := url.Parse(cb)
			q := u.Query()
			q.Set("state", "forged-state")
			return prefix + "/callback?" + q.Encode()
		}, status: 400, want: "unknown or was already used"},
		{name: "XSS in the query", query: func(cb string) string {
			u, _ := url.Parse(cb)
			return prefix + "/callback?error=%3Cscript%3Ealert(1)%3C/script%3E&error_description=%22%3E%3Cimg%20src=x%3E&state=" + url.QueryEscape(u.Query().Get("state"))
		}, status: 400, want: "&lt;script&gt;alert(1)&lt;/script&gt;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer gclock.Set(nil)
			gen := credential(t).Status(t.Context()).Generation
			loc, cookie := startAuthorize(t, "jira")
			decision := tt.decision
			if decision == "" {
				decision = "accept"
			}
			cb := consent(t, loc, decision)
			if tt.cookie != nil {
				cookie = tt.cookie(cookie)
			}
			if tt.query != nil {
				cb = tt.query(cb)
			}
			if tt.before != nil {
				tt.before()
			}
			res := do(t, consoleRequest(http.MethodGet, cb, cookie))
			if res.status != tt.status || !strings.Contains(res.body, tt.want) {
				t.Fatalf("got %d, want %d with %q:\n%s", res.status, tt.status, tt.want, res.body)
			}
			if strings.Contains(res.body, "<script>") || strings.Contains(res.body, "<img") || res.header.Get("Location") != "" {
				t.Fatal("unescaped input or a redirect in the answer")
			}
			if res.header.Get("Content-Security-Policy") == "" || res.header.Get("X-Frame-Options") != "DENY" {
				t.Errorf("security headers: %v", res.header)
			}
			if g := credential(t).Status(t.Context()).Generation; g != gen {
				t.Errorf("the credential changed (generation %d → %d)", gen, g)
			}
		})
	}
}

func TestConsoleRefusals(t *testing.T) {
	tests := []struct {
		name, method, path string
		header             map[string]string
		noAuth             bool
		status             int
	}{
		{name: "no console login", method: "GET", path: prefix + "/", noAuth: true, status: 401},
		{name: "PUT on authorize", method: "PUT", path: prefix + "/authorize/jira", status: 405},
		{name: "GET on authorize of an unknown credential", method: "GET", path: prefix + "/authorize/%3Cscript%3Ealert(1)%3C%2Fscript%3E", status: 404},
		{name: "cross-origin POST", method: "POST", path: prefix + "/authorize/jira", header: map[string]string{"Origin": "https://evil.example"}, status: 403},
		{name: "cross-origin Referer", method: "POST", path: prefix + "/authorize/jira", header: map[string]string{"Referer": "https://evil.example/page"}, status: 403},
		{name: "unknown credential", method: "POST", path: prefix + "/authorize/nope", status: 404},
		{name: "static credential", method: "POST", path: prefix + "/authorize/jira-dc", status: 400},
		{name: "open-redirect path", method: "GET", path: prefix + "//evil.example/x", status: 404},
		{name: "XSS path", method: "POST", path: prefix + "/authorize/%3Cscript%3Ealert(1)%3C%2Fscript%3E", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := consoleRequest(tt.method, tt.path, nil)
			if tt.noAuth {
				req.Header.Del("Authorization")
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			res := do(t, req)
			if res.status != tt.status || res.header.Get("Location") != "" || strings.Contains(res.body, "<script>") {
				t.Fatalf("got %d (Location %q), want %d:\n%s", res.status, res.header.Get("Location"), tt.status, res.body)
			}
		})
	}
	// Redirect-looking parameters change nothing: the console goes to the
	// configured authorize URL with the configured callback, and nowhere else.
	req := consoleRequest(http.MethodPost, prefix+"/authorize/jira?redirect_uri=https://evil.example&next=//evil.example&return_to=https://evil.example", nil)
	res := do(t, req)
	loc, _ := url.Parse(res.header.Get("Location"))
	if res.status != 303 || loc.Host != strings.TrimPrefix(sim.URL(atlassim.HostAuth), "https://") || loc.Query().Get("redirect_uri") != gw.callbackURL() {
		t.Fatalf("authorize with redirect parameters: %d %s", res.status, loc)
	}
}

func TestIndexPage(t *testing.T) {
	authorizeOverHTTP(t)
	res := do(t, consoleRequest(http.MethodGet, prefix+"/", nil))
	for _, want := range []string{`id="authorize-jira"`, `id="state-jira">ready<`, "jira-dc", "bearer", sim.CloudID()} {
		if !strings.Contains(res.body, want) {
			t.Errorf("console page lacks %s", want)
		}
	}
	if strings.Contains(res.body, "authorize-jira-dc") {
		t.Error("an Authorize button for a bearer credential")
	}
	csp := res.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, fmt.Sprintf("form-action 'self' %s", sim.URL(atlassim.HostAuth))) {
		t.Errorf("CSP %q", csp)
	}
	mgr, _ := credential(t).Manager(t.Context())
	if tok := mgr.Cached(); tok != nil && strings.Contains(res.body, tok.AccessToken) {
		t.Error("the console shows the access token")
	}
}

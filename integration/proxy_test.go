package integration

import (
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
)

// The injected credential arrives at the right host, with the right Host and
// SNI, and nothing the client sent as a credential does.
func TestInjectsAPITokenAndDropsClientCredentials(t *testing.T) {
	g := startGateway(t)
	sim.ResetRequests()
	resp, body := g.do(t, request{site: "jira", path: "/rest/api/3/myself?expand=groups&os_username=mallory&os_password=x&access_token=stolen",
		header: http.Header{
			"Cookie":              {"cloud.session.token=client-session; JSESSIONID=abc"},
			"Proxy-Authorization": {"Basic bWFsbG9yeTpwdw=="},
		}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := decode(t, body)["accountId"]; got != atlassim.DemoAccountID {
		t.Errorf("accountId = %v, want the injected account %s", got, atlassim.DemoAccountID)
	}
	rec := lastTo(t, atlassim.HostSite)
	if got, want := rec.Header.Get("Authorization"), basic(atlassim.DemoEmail, atlassim.DemoAPIToken); got != want {
		t.Errorf("Authorization at Atlassian = %q, want the injected API token", got)
	}
	if len(rec.Header.Values("Authorization")) != 1 {
		t.Errorf("Atlassian got %d Authorization headers", len(rec.Header.Values("Authorization")))
	}
	for _, h := range []string{"Cookie", "Proxy-Authorization"} {
		if v := rec.Header.Get(h); v != "" {
			t.Errorf("client's %s reached Atlassian: %q", h, v)
		}
	}
	q, _ := url.ParseQuery(rec.RawQuery)
	if q.Get("expand") != "groups" {
		t.Errorf("query lost its ordinary parameter: %q", rec.RawQuery)
	}
	for _, p := range []string{"os_username", "os_password", "access_token"} {
		if q.Has(p) {
			t.Errorf("credential query parameter %s reached Atlassian: %q", p, rec.RawQuery)
		}
	}
	if rec.HostHeader != hostOf(sim.URL(atlassim.HostSite)) {
		t.Errorf("Host at Atlassian = %q, want %q", rec.HostHeader, hostOf(sim.URL(atlassim.HostSite)))
	}
	if rec.SNI != "localhost" {
		t.Errorf("SNI = %q, want the site's host name", rec.SNI)
	}
	if v := resp.Header.Get("Set-Cookie"); v != "" {
		t.Errorf("Atlassian's session cookie reached the client: %q", v)
	}
}

// Caddy's proxy deletes the headers a client names in Connection; none of
// these tricks may remove or replace the injected credential.
func TestConnectionHeaderTricksCannotStripCredential(t *testing.T) {
	g := startGateway(t)
	want := basic(atlassim.DemoEmail, atlassim.DemoAPIToken)
	tricks := []http.Header{
		{"Connection": {"Authorization"}},
		{"Connection": {"close, authorization"}},
		{"Connection": {"keep-alive", "Authorization, Proxy-Authorization"}},
		{"Connection": {"Authorization, Host, X-Forwarded-For"}},
		{"Connection": {"Upgrade, Authorization"}, "Upgrade": {"websocket"}},
		{"Connection": {"Te, Authorization"}, "Te": {"trailers"}},
		{"Connection": {"Authorization"}, "X-Forwarded-Authorization": {"Basic eDp5"}},
	}
	for i, h := range tricks {
		sim.ResetRequests()
		resp, body := g.do(t, request{site: "jira", path: "/rest/api/3/myself", header: h})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("trick %d %v: status %d: %s", i, h, resp.StatusCode, body)
			continue
		}
		if got := lastTo(t, atlassim.HostSite).Header.Get("Authorization"); got != want {
			t.Errorf("trick %d %v: Authorization at Atlassian = %q", i, h, got)
		}
	}
}

// Scoped tokens go through the API gateway with the discovered cloudId, Jira
// and Confluence each under its own /ex/ prefix; discovery happens once.
func TestScopedTokenRoutesThroughAPIGateway(t *testing.T) {
	g := startGateway(t)
	sim.ResetRequests()
	cases := []struct{ path, want string }{
		{"/rest/api/3/myself", "/ex/jira/" + sim.CloudID() + "/rest/api/3/myself"},
		{"/rest/api/3/issue/DEMO-1", "/ex/jira/" + sim.CloudID() + "/rest/api/3/issue/DEMO-1"},
		{"/wiki/api/v2/pages", "/ex/confluence/" + sim.CloudID() + "/wiki/api/v2/pages"},
		{"/wiki/rest/api/content", "/ex/confluence/" + sim.CloudID() + "/wiki/rest/api/content"},
	}
	for _, c := range cases {
		resp, body := g.do(t, request{site: "jira-scoped", path: c.path})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d: %s", c.path, resp.StatusCode, body)
			continue
		}
		rec := lastTo(t, atlassim.HostAPI)
		if rec.Path != c.want {
			t.Errorf("%s reached Atlassian as %s, want %s", c.path, rec.Path, c.want)
		}
		if rec.Header.Get("Authorization") != basic(atlassim.DemoEmail, atlassim.DemoScopedToken) {
			t.Errorf("%s: scoped token not injected", c.path)
		}
		if rec.HostHeader != hostOf(sim.URL(atlassim.HostAPI)) {
			t.Errorf("%s: Host = %q", c.path, rec.HostHeader)
		}
	}
	discoveries := 0
	for _, r := range sim.RequestsTo(atlassim.HostSite) {
		if r.Path == "/_edge/tenant_info" {
			discoveries++
			if r.Header.Get("Authorization") != "" {
				t.Error("cloudId discovery sent a credential to tenant_info")
			}
		} else {
			t.Errorf("a scoped request went to the site: %s", r.Path)
		}
	}
	if discoveries > 1 {
		t.Errorf("cloudId discovered %d times, want at most once (cached)", discoveries)
	}
}

func TestCloudIDDiscoveryFailureIs503NamingCredential(t *testing.T) {
	g := startGateway(t)
	resp, body := g.do(t, request{site: "unreachable", path: "/rest/api/3/myself"})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", resp.StatusCode, body)
	}
	m := decode(t, body)
	if m["error"] != "credential_unavailable" || m["credential"] != "unreachable" {
		t.Errorf("body = %s", body)
	}
	if !strings.Contains(m["message"].(string), "cloudId") || m["remedy"] == nil {
		t.Errorf("503 should say what failed and what to do: %s", body)
	}
	if strings.Contains(string(body), atlassim.DemoScopedToken) {
		t.Error("503 body holds the secret")
	}
}

func TestProductsAndMethods(t *testing.T) {
	g := startGateway(t)
	cases := []struct {
		site, method, path, body string
		status                   int
		host                     string
		auth                     string
		contains                 string
	}{
		{"jira", "GET", "/rest/api/3/issue/DEMO-1", "", 200, atlassim.HostSite, basic(atlassim.DemoEmail, atlassim.DemoAPIToken), `"key":"DEMO-1"`},
		{"jira", "PUT", "/rest/api/3/issue/DEMO-2", `{"fields":{"summary":"Renamed through atlasgate"}}`, 204, atlassim.HostSite, basic(atlassim.DemoEmail, atlassim.DemoAPIToken), ""},
		{"jira", "GET", "/rest/api/3/issue/DEMO-2", "", 200, atlassim.HostSite, basic(atlassim.DemoEmail, atlassim.DemoAPIToken), "Renamed through atlasgate"},
		{"jira", "POST", "/rest/api/3/issue", `{"fields":{"project":{"key":"DEMO"},"summary":"Created via gateway","issuetype":{"name":"Task"}}}`, 201, atlassim.HostSite, basic(atlassim.DemoEmail, atlassim.DemoAPIToken), `"key":"DEMO-`},
		{"jira", "GET", "/rest/api/3/search/jql?jql=project%20%3D%20DEMO", "", 200, atlassim.HostSite, basic(atlassim.DemoEmail, atlassim.DemoAPIToken), "DEMO-1"},
		{"jira", "GET", "/wiki/rest/api/content", "", 200, atlassim.HostSite, basic(atlassim.DemoEmail, atlassim.DemoAPIToken), "results"},
		{"jira", "GET", "/wiki/api/v2/pages", "", 200, atlassim.HostSite, basic(atlassim.DemoEmail, atlassim.DemoAPIToken), "results"},
		{"jira-scoped", "PUT", "/rest/api/3/issue/DEMO-1", `{"fields":{"summary":"Scoped write"}}`, 204, atlassim.HostAPI, basic(atlassim.DemoEmail, atlassim.DemoScopedToken), ""},
		{"bitbucket", "GET", "/2.0/user", "", 200, atlassim.HostBitbucket, basic(atlassim.DemoEmail, atlassim.DemoBitbucketAPIToken), "account_id"},
		{"bitbucket-access", "GET", "/2.0/repositories/acme", "", 200, atlassim.HostBitbucket, "Bearer " + atlassim.DemoBitbucketAccessToken, "widgets"},
		{"jira-dc", "GET", "/rest/api/2/myself", "", 200, atlassim.HostJiraDC, "Bearer " + atlassim.DemoPAT, `"name":"` + atlassim.DemoUsername + `"`},
		{"confluence-dc", "GET", "/rest/api/content", "", 200, atlassim.HostConfluenceDC, "Bearer " + atlassim.DemoPAT, "results"},
		{"bitbucket-dc", "GET", "/rest/api/1.0/dashboard/pull-requests", "", 200, atlassim.HostBitbucketDC, "Bearer " + atlassim.DemoPAT, "isLastPage"},
	}
	for _, c := range cases {
		t.Run(c.site+" "+c.method+" "+c.path, func(t *testing.T) {
			sim.ResetRequests()
			resp, body := g.do(t, request{site: c.site, method: c.method, path: c.path, body: c.body})
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if c.contains != "" && !strings.Contains(string(body), c.contains) {
				t.Errorf("response lacks %q: %s", c.contains, body)
			}
			rec := lastTo(t, c.host)
			if rec.Header.Get("Authorization") != c.auth {
				t.Errorf("wrong credential at %s: %q", c.host, rec.Header.Get("Authorization"))
			}
			if rec.Method != c.method || string(rec.Body) != c.body {
				t.Errorf("Atlassian got %s with body %q, want %s with %q", rec.Method, rec.Body, c.method, c.body)
			}
			if rec.Principal == "" {
				t.Error("the simulator did not authenticate the injected credential")
			}
			if resp.Header.Get("Set-Cookie") != "" {
				t.Errorf("Set-Cookie reached the client: %q", resp.Header.Get("Set-Cookie"))
			}
		})
	}
}

// A redirect on the upstream site maps back to the gateway; a redirect to the
// media host passes untouched, and following it sends no credential there.
func TestRedirects(t *testing.T) {
	g := startGateway(t)
	for _, site := range []string{"jira", "jira-scoped"} {
		resp, body := g.do(t, request{site: site, path: "/wiki/x/" + atlassim.DemoTinyLink})
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("%s tiny link: status %d: %s", site, resp.StatusCode, body)
		}
		want := "/wiki/spaces/DEMO/pages/65537"
		if got := resp.Header.Get("Location"); got != want {
			t.Errorf("%s: Location = %q, want %q", site, got, want)
		}
	}
	// Mounted under a path prefix, the redirect keeps the prefix.
	resp, body := g.do(t, request{site: "mounted", path: "/atlassian/wiki/x/" + atlassim.DemoTinyLink})
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/atlassian/wiki/spaces/DEMO/pages/65537" {
		t.Errorf("mounted tiny link: %d Location=%q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}

	sim.ResetRequests()
	resp, body = g.do(t, request{site: "jira", path: "/rest/api/3/attachment/content/10001"})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("attachment: status %d: %s", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, sim.URL(atlassim.HostMedia)+"/file/") {
		t.Fatalf("media Location was rewritten or lost: %q", loc)
	}
	if n := len(sim.RequestsTo(atlassim.HostMedia)); n != 0 {
		t.Fatalf("the gateway followed the redirect to the media host (%d requests)", n)
	}
	mresp, err := simClient().Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	mresp.Body.Close()
	if mresp.StatusCode != http.StatusOK {
		t.Errorf("media download: status %d", mresp.StatusCode)
	}
	for _, r := range sim.RequestsTo(atlassim.HostMedia) {
		if r.Header.Get("Authorization") != "" {
			t.Error("a credential reached the media host")
		}
	}
}

// Atlassian's rate-limit answers reach the client unchanged.
func TestRateLimitPassesThrough(t *testing.T) {
	g := startGateway(t)
	sim.AddRateLimit(atlassim.RateLimit{Host: atlassim.HostSite, PathPrefix: "/rest/api/3/search", Count: 1, RetryAfter: 7, Headers: true, Reason: "jira-burst-based"})
	resp, body := g.do(t, request{site: "jira", path: "/rest/api/3/search/jql?jql=x"})
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429: %s", resp.StatusCode, body)
	}
	rec := lastTo(t, atlassim.HostSite)
	_ = rec
	for _, h := range []string{"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-NearLimit", "RateLimit-Reason"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("%s did not reach the client", h)
		}
	}
	if resp.Header.Get("Retry-After") != "7" || resp.Header.Get("RateLimit-Reason") != "jira-burst-based" {
		t.Errorf("rate-limit headers changed: Retry-After=%q Reason=%q", resp.Header.Get("Retry-After"), resp.Header.Get("RateLimit-Reason"))
	}
	if len(body) == 0 {
		t.Error("429 body was dropped")
	}
	// Until Retry-After has passed the gateway holds the credential back: it
	// answers 429 itself and Atlassian is not hammered.
	sim.ResetRequests()
	resp, body = g.do(t, request{site: "jira", path: "/rest/api/3/myself"})
	if resp.StatusCode != http.StatusTooManyRequests || decode(t, body)["error"] != "upstream_rate_limited" {
		t.Fatalf("during the hold: status %d: %s", resp.StatusCode, body)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra > "7" {
		t.Errorf("hold Retry-After = %q, want at most 7", ra)
	}
	if n := len(sim.RequestsTo(atlassim.HostSite)); n != 0 {
		t.Errorf("%d requests reached Atlassian during the hold", n)
	}
	// Other credentials are not held back.
	if resp, body := g.do(t, request{site: "jira-dc", path: "/rest/api/2/myself"}); resp.StatusCode != 200 {
		t.Errorf("another credential during the hold: status %d: %s", resp.StatusCode, body)
	}
	// After Retry-After the rule is spent and traffic flows again.
	later := time.Now().Add(8 * time.Second)
	defer gclock.Set(func() time.Time { return later })()
	if resp, body := g.do(t, request{site: "jira", path: "/rest/api/3/search/jql?jql=x"}); resp.StatusCode != 200 {
		t.Errorf("after the hold: status %d: %s", resp.StatusCode, body)
	}
}

// Atlassian's own 401 for a rejected credential reaches the client as is.
func TestAtlassianAuthFailurePassesThrough(t *testing.T) {
	g := newGateway(t)
	g.params["ExtraCredentials"] = "\t\tcredential revoked api_token {\n\t\t\tsite " + sim.URL(atlassim.HostSite) +
		"\n\t\t\temail " + atlassim.DemoEmail + "\n\t\t\ttoken {env.IT_REVOKED}\n\t\t\ttrusted_ca_file " + caFile + "\n\t\t}\n"
	g.params["Sites"] = append(credentialSites, "revoked")
	t.Setenv("IT_REVOKED", "ATATT3xFfGF0-not-a-valid-token")
	if err := g.load(); err != nil {
		t.Fatal(err)
	}
	resp, body := g.do(t, request{site: "revoked", path: "/rest/api/3/myself"})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	mustContain(t, body, "errorMessages")
}

func TestCredentialSelection(t *testing.T) {
	g := startGateway(t)
	// Without any selection the request is denied: deny by default.
	resp, body := g.do(t, request{site: "dynamic", path: "/rest/api/3/myself"})
	if resp.StatusCode != http.StatusForbidden || decode(t, body)["error"] != "no_credential" {
		t.Errorf("no credential: status %d: %s", resp.StatusCode, body)
	}
	resp, body = g.do(t, request{site: "dynamic", path: "/rest/api/3/myself", header: http.Header{"X-Test-Credential": {"nope"}}})
	if resp.StatusCode != http.StatusServiceUnavailable || decode(t, body)["credential"] != "nope" {
		t.Errorf("unknown credential: status %d: %s", resp.StatusCode, body)
	}
	sim.ResetRequests()
	resp, body = g.do(t, request{site: "dynamic", path: "/rest/api/2/myself", header: http.Header{"X-Test-Credential": {"jira-dc"}}})
	if resp.StatusCode != 200 || lastTo(t, atlassim.HostJiraDC).Header.Get("Authorization") != "Bearer "+atlassim.DemoPAT {
		t.Errorf("placeholder-selected credential: status %d: %s", resp.StatusCode, body)
	}
	// Inbound authentication still guards the gateway.
	resp, _ = g.do(t, request{site: "jira", path: "/rest/api/3/myself", noAuth: true})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated client: status %d", resp.StatusCode)
	}
}

// An unreachable upstream is a 502 that says what failed, in JSON.
func TestUnreachableUpstreamIsJSON502(t *testing.T) {
	g := startGateway(t)
	resp, body := g.do(t, request{site: "dead", path: "/rest/api/2/myself"})
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	m := decode(t, body)
	if m["error"] != "upstream_unreachable" || m["credential"] != "dead" || m["remedy"] == nil {
		t.Errorf("body = %s", body)
	}
	if strings.Contains(string(body), atlassim.DemoPAT) || strings.Contains(string(body), "connection refused") {
		t.Errorf("502 body leaks internals: %s", body)
	}
}

// Workload addresses and gateway host names do not travel to Atlassian.
func TestForwardingHeadersNotSentUpstream(t *testing.T) {
	g := startGateway(t)
	sim.ResetRequests()
	resp, body := g.do(t, request{site: "jira", path: "/rest/api/3/myself", header: http.Header{
		"X-Forwarded-For": {"10.1.2.3"}, "Forwarded": {"for=10.1.2.3"}, "X-Forwarded-Host": {"internal.corp"},
	}})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	rec := lastTo(t, atlassim.HostSite)
	for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "Via"} {
		if v := rec.Header.Get(h); v != "" {
			t.Errorf("%s reached Atlassian: %q", h, v)
		}
	}
}

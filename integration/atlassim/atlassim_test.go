package atlassim

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// start runs a seeded simulator and returns a client that trusts its CA and
// does not follow redirects (tests inspect them).
func start(t *testing.T, cfg Config) (*Sim, *http.Client) {
	t.Helper()
	cfg.Seed = true
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CACertPEM()) {
		t.Fatal("CA PEM not parseable")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return s, &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func bearer(tok string) string { return "Bearer " + tok }

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, c *http.Client, method, url, auth, body string, mod ...func(*http.Request)) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for _, m := range mod {
		m(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

func TestEndpoints(t *testing.T) {
	s, c := start(t, Config{})
	ex := func(product, path string) string { return "/ex/" + product + "/" + DemoCloudID + path }
	var (
		classic = basic(DemoEmail, DemoAPIToken)
		scoped  = basic(DemoEmail, DemoScopedToken)
		bbToken = basic(DemoEmail, DemoBitbucketAPIToken)
		bbAcc   = bearer(DemoBitbucketAccessToken)
		pat     = bearer(DemoPAT)
	)
	tests := []struct {
		name, host, method, path, auth string
		status                         int
		contains                       []string
	}{
		// Happy paths.
		{"tenant info anonymous", HostSite, "GET", "/_edge/tenant_info", "", 200, []string{`"cloudId":"` + DemoCloudID}},
		{"site myself", HostSite, "GET", "/rest/api/3/myself", classic, 200, []string{DemoAccountID, `"accountType":"atlassian"`, DemoEmail}},
		{"site issue", HostSite, "GET", "/rest/api/3/issue/DEMO-1", classic, 200, []string{`"key":"DEMO-1"`, `"status":{"name":"To Do"}`}},
		{"site search", HostSite, "GET", "/rest/api/3/search/jql?jql=project+%3D+DEMO", classic, 200, []string{"DEMO-1", "DEMO-2", `"isLast":true`}},
		{"site search other project", HostSite, "GET", "/rest/api/3/search/jql?jql=project=NOPE", classic, 200, []string{`"issues":[]`}},
		{"site content v1", HostSite, "GET", "/wiki/rest/api/content", classic, 200, []string{`"results"`, `"size":2`, "Gateway design"}},
		{"site pages v2", HostSite, "GET", "/wiki/api/v2/pages", classic, 200, []string{`"spaceId":"98305"`, "Runbook"}},
		{"site page view", HostSite, "GET", "/wiki/spaces/DEMO/pages/65537", classic, 200, []string{"<h1>Gateway design</h1>"}},
		{"api jira myself scoped", HostAPI, "GET", ex("jira", "/rest/api/3/myself"), scoped, 200, []string{DemoAccountID}},
		{"api jira issue self link", HostAPI, "GET", ex("jira", "/rest/api/3/issue/DEMO-2"), scoped, 200, []string{s.URL(HostAPI) + "/ex/jira/" + DemoCloudID + "/rest/api/3/issue/10001"}},
		{"api confluence v1", HostAPI, "GET", ex("confluence", "/wiki/rest/api/content"), scoped, 200, []string{"Gateway design"}},
		{"api confluence v2", HostAPI, "GET", ex("confluence", "/wiki/api/v2/pages"), scoped, 200, []string{"Runbook"}},
		{"bitbucket user", HostBitbucket, "GET", "/2.0/user", bbToken, 200, []string{`"account_id":"` + DemoAccountID, `"type":"user"`}},
		{"bitbucket repos", HostBitbucket, "GET", "/2.0/repositories/acme", bbToken, 200, []string{"acme/widgets", "acme/gadgets", `"size":2`, `"pagelen":10`}},
		{"bitbucket repos paged", HostBitbucket, "GET", "/2.0/repositories/acme?pagelen=1", bbAcc, 200, []string{"acme/widgets", `"next":`}},
		{"bitbucket user access token", HostBitbucket, "GET", "/2.0/user", bbAcc, 200, []string{"acme access token"}},
		{"jira dc myself pat", HostJiraDC, "GET", "/rest/api/2/myself", pat, 200, []string{`"name":"alice"`, DemoEmail}},
		{"jira dc myself password", HostJiraDC, "GET", "/rest/api/2/myself", basic(DemoUsername, DemoDCPassword), 200, []string{`"name":"alice"`}},
		{"confluence dc content", HostConfluenceDC, "GET", "/rest/api/content", pat, 200, []string{"Gateway design"}},
		{"bitbucket dc prs", HostBitbucketDC, "GET", "/rest/api/1.0/dashboard/pull-requests", pat, 200, []string{`"isLastPage":true`, `"start":0`}},

		// Authentication failures, in each product's shape.
		{"site jira no auth", HostSite, "GET", "/rest/api/3/myself", "", 401, []string{"Client must be authenticated to access this resource."}},
		{"site confluence no auth", HostSite, "GET", "/wiki/rest/api/content", "", 401, []string{`"statusCode":401`}},
		{"site scoped token", HostSite, "GET", "/rest/api/3/myself", scoped, 401, []string{"Client must be authenticated"}},
		{"site bearer", HostSite, "GET", "/rest/api/3/myself", bearer(DemoAPIToken), 401, nil},
		{"site wrong email", HostSite, "GET", "/rest/api/3/myself", basic("bob@example.com", DemoAPIToken), 401, nil},
		{"site bitbucket token", HostSite, "GET", "/rest/api/3/myself", bbToken, 401, nil},
		{"api classic token", HostAPI, "GET", ex("jira", "/rest/api/3/myself"), classic, 401, []string{`{"code":401,"message":"Unauthorized"}`}},
		{"api no auth", HostAPI, "GET", ex("confluence", "/wiki/api/v2/pages"), "", 401, []string{`"message":"Unauthorized"`}},
		{"api bearer without oauth", HostAPI, "GET", ex("jira", "/rest/api/3/myself"), bearer("whatever"), 401, nil},
		{"api unknown cloud", HostAPI, "GET", "/ex/jira/00000000-0000-0000-0000-000000000000/rest/api/3/myself", scoped, 404, nil},
		{"api jira path under confluence", HostAPI, "GET", ex("confluence", "/rest/api/3/myself"), scoped, 404, []string{`"statusCode":404`}},
		{"bitbucket cloud token", HostBitbucket, "GET", "/2.0/user", classic, 401, []string{`"type":"error"`}},
		{"bitbucket bad bearer", HostBitbucket, "GET", "/2.0/user", bearer("nope"), 401, []string{"Access token expired."}},
		{"bitbucket other workspace", HostBitbucket, "GET", "/2.0/repositories/other", bbAcc, 403, []string{`"type":"error"`}},
		{"jira dc pat as password", HostJiraDC, "GET", "/rest/api/2/myself", basic(DemoUsername, DemoPAT), 401, []string{"You are not authenticated"}},
		{"jira dc pat at wrong scheme-less", HostJiraDC, "GET", "/rest/api/2/myself", DemoPAT, 401, nil},
		{"confluence dc none", HostConfluenceDC, "GET", "/rest/api/content", "", 401, []string{`"statusCode":401`}},
		{"bitbucket dc bad", HostBitbucketDC, "GET", "/rest/api/1.0/dashboard/pull-requests", basic(DemoUsername, "wrong"), 401, []string{"IncorrectPasswordAuthenticationException", "Authentication failed."}},

		// Unknown paths and methods.
		{"site unknown", HostSite, "GET", "/rest/api/3/nope", classic, 404, []string{`"errorMessages"`}},
		{"site unknown issue", HostSite, "GET", "/rest/api/3/issue/DEMO-99", classic, 404, []string{"Issue does not exist"}},
		{"site wrong method", HostSite, "DELETE", "/rest/api/3/myself", classic, 405, nil},
		{"bitbucket unknown", HostBitbucket, "GET", "/2.0/nope", bbToken, 404, []string{`"type":"error"`}},
		{"bitbucket dc unknown", HostBitbucketDC, "GET", "/rest/api/1.0/nope", pat, 404, []string{`"errors":[`}},
		{"media unknown", HostMedia, "GET", "/nope", "", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, c, tt.method, s.URL(tt.host)+tt.path, tt.auth, "")
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.status, r.body)
			}
			for _, want := range tt.contains {
				if !strings.Contains(r.body, want) {
					t.Errorf("body lacks %q: %s", want, r.body)
				}
			}
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("401 Content-Type = %q", r.header.Get("Content-Type"))
			}
		})
	}
}

func TestCookiesAreSetOnSuccess(t *testing.T) {
	s, c := start(t, Config{})
	site := do(t, c, "GET", s.URL(HostSite)+"/rest/api/3/myself", basic(DemoEmail, DemoAPIToken), "")
	if !strings.Contains(site.header.Get("Set-Cookie"), "atlassian.xsrf.token=") {
		t.Errorf("site Set-Cookie = %q", site.header.Get("Set-Cookie"))
	}
	dc := do(t, c, "GET", s.URL(HostJiraDC)+"/rest/api/2/myself", bearer(DemoPAT), "")
	if !strings.Contains(dc.header.Get("Set-Cookie"), "JSESSIONID=") {
		t.Errorf("DC Set-Cookie = %q", dc.header.Get("Set-Cookie"))
	}
}

func TestScopes(t *testing.T) {
	s, c := start(t, Config{})
	s.AddAPIToken(APIToken{Email: DemoEmail, Token: "ATATT3xUserOnly", Scopes: []string{"read:jira-user"}})
	auth := basic(DemoEmail, "ATATT3xUserOnly")
	base := s.URL(HostAPI) + "/ex/jira/" + DemoCloudID
	if r := do(t, c, "GET", base+"/rest/api/3/myself", auth, ""); r.status != 200 {
		t.Fatalf("myself = %d %s", r.status, r.body)
	}
	for _, tt := range []struct{ method, url, body string }{
		{"GET", base + "/rest/api/3/issue/DEMO-1", ""},
		{"PUT", base + "/rest/api/3/issue/DEMO-1", `{"fields":{"summary":"x"}}`},
		{"GET", s.URL(HostAPI) + "/ex/confluence/" + DemoCloudID + "/wiki/api/v2/pages", ""},
	} {
		r := do(t, c, tt.method, tt.url, auth, tt.body)
		if r.status != 401 || !strings.Contains(r.body, `"message":"Unauthorized; scope does not match"`) {
			t.Errorf("%s %s = %d %s, want scope mismatch", tt.method, tt.url, r.status, r.body)
		}
	}
	if got := s.RequestsTo(HostAPI); got[len(got)-1].Principal != "" {
		t.Errorf("principal recorded for a rejected request: %q", got[len(got)-1].Principal)
	}
}

func TestTokenExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, c := start(t, Config{Clock: clock})
	s.AddAPIToken(APIToken{Email: DemoEmail, Token: "ATATT3xShortLived", ExpiresAt: now.Add(time.Hour)})
	url, auth := s.URL(HostSite)+"/rest/api/3/myself", basic(DemoEmail, "ATATT3xShortLived")
	if r := do(t, c, "GET", url, auth, ""); r.status != 200 {
		t.Fatalf("before expiry = %d", r.status)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if r := do(t, c, "GET", url, auth, ""); r.status != 401 {
		t.Fatalf("after expiry = %d", r.status)
	}
}

func TestIssueWrites(t *testing.T) {
	s, c := start(t, Config{})
	site, auth := s.URL(HostSite), basic(DemoEmail, DemoAPIToken)
	if r := do(t, c, "PUT", site+"/rest/api/3/issue/DEMO-1", auth, `{"fields":{"summary":"Edited"}}`); r.status != 204 {
		t.Fatalf("PUT = %d %s", r.status, r.body)
	}
	if r := do(t, c, "GET", site+"/rest/api/3/issue/DEMO-1", auth, ""); !strings.Contains(r.body, `"summary":"Edited"`) {
		t.Errorf("edit not visible: %s", r.body)
	}
	r := do(t, c, "POST", site+"/rest/api/3/issue", auth, `{"fields":{"project":{"key":"DEMO"},"summary":"New","issuetype":{"name":"Task"}}}`)
	if r.status != 201 || !strings.Contains(r.body, `"key":"DEMO-3"`) || !strings.Contains(r.body, site+"/rest/api/3/issue/") {
		t.Fatalf("POST = %d %s", r.status, r.body)
	}
	r = do(t, c, "POST", s.URL(HostAPI)+"/ex/jira/"+DemoCloudID+"/rest/api/3/issue", basic(DemoEmail, DemoScopedToken), `{"fields":{"project":{"key":"DEMO"},"summary":"Via ex"}}`)
	if r.status != 201 || !strings.Contains(r.body, `"key":"DEMO-4"`) || !strings.Contains(r.body, s.URL(HostAPI)+"/ex/jira/") {
		t.Fatalf("POST via ex = %d %s", r.status, r.body)
	}
	if r := do(t, c, "POST", site+"/rest/api/3/issue", auth, `{"fields":{}}`); r.status != 400 || !strings.Contains(r.body, `"summary"`) {
		t.Errorf("invalid POST = %d %s", r.status, r.body)
	}
	if r := do(t, c, "PUT", site+"/rest/api/3/issue/DEMO-1", auth, `not json`); r.status != 400 {
		t.Errorf("bad JSON PUT = %d", r.status)
	}
}

func TestHostMismatch(t *testing.T) {
	s, c := start(t, Config{})
	r := do(t, c, "GET", s.URL(HostSite)+"/rest/api/3/myself", basic(DemoEmail, DemoAPIToken), "",
		func(r *http.Request) { r.Host = "acme.atlassian.net" })
	if r.status != http.StatusMisdirectedRequest || !strings.Contains(r.body, `"code":421`) {
		t.Fatalf("wrong Host = %d %s", r.status, r.body)
	}
	// The site is "localhost:PORT"; the same port by IP is a different Host.
	ipURL := strings.Replace(s.URL(HostSite), "localhost", "127.0.0.1", 1)
	if r := do(t, c, "GET", ipURL+"/_edge/tenant_info", "", ""); r.status != 421 {
		t.Fatalf("IP Host at site = %d", r.status)
	}
}

func TestRateLimit(t *testing.T) {
	s, c := start(t, Config{})
	s.AddRateLimit(RateLimit{Host: HostSite, PathPrefix: "/rest/api/3/myself", Count: 2, RetryAfter: 5, Headers: true})
	s.AddRateLimit(RateLimit{Host: HostJiraDC, Count: 1, Status: 503})
	url, auth := s.URL(HostSite)+"/rest/api/3/myself", basic(DemoEmail, DemoAPIToken)
	if r := do(t, c, "GET", s.URL(HostSite)+"/rest/api/3/issue/DEMO-1", auth, ""); r.status != 200 {
		t.Fatalf("non-matching path = %d", r.status)
	}
	for i := range 2 {
		r := do(t, c, "GET", url, "", "") // checked before authentication
		if r.status != 429 {
			t.Fatalf("#%d status = %d", i, r.status)
		}
		h := r.header
		if h.Get("Retry-After") != "5" || h.Get("X-RateLimit-Remaining") != "0" || h.Get("X-RateLimit-NearLimit") != "true" ||
			h.Get("RateLimit-Reason") != "jira-burst-based" || h.Get("X-RateLimit-Limit") == "" {
			t.Errorf("#%d headers = %v", i, h)
		}
		if _, err := time.Parse(time.RFC3339, h.Get("X-RateLimit-Reset")); err != nil {
			t.Errorf("X-RateLimit-Reset %q: %v", h.Get("X-RateLimit-Reset"), err)
		}
	}
	if r := do(t, c, "GET", url, auth, ""); r.status != 200 {
		t.Fatalf("spent rule still limits: %d", r.status)
	}
	r := do(t, c, "GET", s.URL(HostJiraDC)+"/rest/api/2/myself", bearer(DemoPAT), "")
	if r.status != 503 || r.header.Get("Retry-After") != "" || r.header.Get("X-RateLimit-Limit") != "" {
		t.Fatalf("503 rule = %d %v", r.status, r.header)
	}
}

func TestAttachmentRedirectToMedia(t *testing.T) {
	s, c := start(t, Config{})
	for _, base := range []string{s.URL(HostSite), s.URL(HostAPI) + "/ex/jira/" + DemoCloudID} {
		auth := basic(DemoEmail, DemoAPIToken)
		if strings.Contains(base, "/ex/") {
			auth = basic(DemoEmail, DemoScopedToken)
		}
		r := do(t, c, "GET", base+"/rest/api/3/attachment/content/"+DemoAttachmentID, auth, "")
		loc := r.header.Get("Location")
		if r.status != 303 || !strings.HasPrefix(loc, s.URL(HostMedia)+"/file/") || !strings.Contains(loc, "token=") {
			t.Fatalf("attachment = %d Location %q", r.status, loc)
		}
		s.ResetRequests()
		if r := do(t, c, "GET", loc, "", ""); r.status != 200 || !strings.Contains(r.body, "attachment bytes") {
			t.Fatalf("media = %d %s", r.status, r.body)
		}
		if rec := s.RequestsTo(HostMedia); len(rec) != 1 || rec[0].AuthKind != "" {
			t.Fatalf("media recording = %+v", rec)
		}
		// A credential that leaks to the media host is visible in the record.
		do(t, c, "GET", loc, auth, "")
		if rec := s.RequestsTo(HostMedia); rec[len(rec)-1].AuthKind != "basic" || rec[len(rec)-1].Principal != "" {
			t.Errorf("leaked credential not recorded: %+v", rec[len(rec)-1])
		}
		if r := do(t, c, "GET", strings.Replace(loc, "token=", "token=x", 1), "", ""); r.status != 401 {
			t.Errorf("tampered token = %d", r.status)
		}
	}
	if r := do(t, c, "GET", s.URL(HostSite)+"/rest/api/3/attachment/content/999", basic(DemoEmail, DemoAPIToken), ""); r.status != 404 {
		t.Errorf("unknown attachment = %d", r.status)
	}
}

func TestTinyLinkRedirect(t *testing.T) {
	s, c := start(t, Config{})
	r := do(t, c, "GET", s.URL(HostSite)+"/wiki/x/"+DemoTinyLink, basic(DemoEmail, DemoAPIToken), "")
	if want := s.URL(HostSite) + "/wiki/spaces/DEMO/pages/65537"; r.status != 302 || r.header.Get("Location") != want {
		t.Errorf("site tiny link = %d %q, want 302 %q", r.status, r.header.Get("Location"), want)
	}
	exBase := s.URL(HostAPI) + "/ex/confluence/" + DemoCloudID
	r = do(t, c, "GET", exBase+"/wiki/x/"+DemoTinyLink, basic(DemoEmail, DemoScopedToken), "")
	if want := exBase + "/wiki/spaces/DEMO/pages/65537"; r.status != 302 || r.header.Get("Location") != want {
		t.Errorf("api tiny link = %d %q, want 302 %q", r.status, r.header.Get("Location"), want)
	}
	for id, code := range map[string]string{"65537": "AQAB", "65538": "AgAB", "1": "AQ", "98765432": "eArjBQ"} {
		if got := tinyLink(id); got != code {
			t.Errorf("tinyLink(%s) = %q, want %q", id, got, code)
		}
		if n, ok := parseTinyLink(code); !ok || strconv.FormatUint(n, 10) != id {
			t.Errorf("parseTinyLink(%q) = %d, %v; want %s", code, n, ok, id)
		}
	}
}

func TestRecording(t *testing.T) {
	s, c := start(t, Config{})
	do(t, c, "GET", s.URL(HostSite)+"/rest/api/3/myself", basic(DemoEmail, DemoAPIToken), "", func(r *http.Request) { r.Header.Set("X-Probe", "1") })
	do(t, c, "GET", s.URL(HostBitbucketDC)+"/rest/api/1.0/dashboard/pull-requests", bearer(DemoPAT), "")
	do(t, c, "GET", s.URL(HostBitbucket)+"/2.0/repositories/acme", bearer(DemoBitbucketAccessToken), "")
	do(t, c, "PUT", s.URL(HostSite)+"/rest/api/3/issue/DEMO-2", basic("x", "y"), `{"fields":{}}`)
	do(t, c, "GET", s.URL(HostJiraDC)+"/rest/api/2/myself", DemoPAT, "") // no scheme: must not be echoed
	rec := s.Requests()
	if len(rec) != 5 {
		t.Fatalf("recorded %d requests", len(rec))
	}
	want := []Recorded{
		{Host: HostSite, SNI: "localhost", Principal: DemoAccountID, AuthKind: "basic", Status: 200, Method: "GET", Path: "/rest/api/3/myself"},
		{Host: HostBitbucketDC, Principal: DemoUsername, AuthKind: "bearer", Status: 200, Method: "GET"},
		{Host: HostBitbucket, Principal: "bb-access-token:acme", AuthKind: "bearer", Status: 200, Method: "GET"},
		{Host: HostSite, SNI: "localhost", AuthKind: "basic", Status: 401, Method: "PUT"},
		{Host: HostJiraDC, AuthKind: "other", Status: 401, Method: "GET"},
	}
	for i, w := range want {
		g := rec[i]
		if g.Host != w.Host || g.SNI != w.SNI || g.Principal != w.Principal || g.AuthKind != w.AuthKind || g.Status != w.Status || g.Method != w.Method {
			t.Errorf("#%d = %+v\nwant %+v", i, g, w)
		}
		if g.HostHeader != strings.TrimPrefix(s.URL(g.Host), "https://") {
			t.Errorf("#%d HostHeader = %q", i, g.HostHeader)
		}
	}
	if rec[0].Header.Get("X-Probe") != "1" || rec[0].Path != "/rest/api/3/myself" {
		t.Errorf("header/path not recorded: %+v", rec[0])
	}
	if string(rec[3].Body) != `{"fields":{}}` {
		t.Errorf("body = %q", rec[3].Body)
	}
	if got := s.RequestsTo(HostSite); len(got) != 2 {
		t.Errorf("RequestsTo(site) = %d", len(got))
	}
	s.ResetRequests()
	if len(s.Requests()) != 0 {
		t.Error("ResetRequests kept entries")
	}
}

func TestRecordingLimits(t *testing.T) {
	s, c := start(t, Config{MaxRecorded: 3})
	for _, p := range []string{"/a", "/b", "/c", "/d", "/e"} {
		do(t, c, "GET", s.URL(HostMedia)+p, "", "")
	}
	rec := s.Requests()
	if len(rec) != 3 || rec[0].Path != "/c" || rec[2].Path != "/e" {
		t.Errorf("ring buffer = %+v", rec)
	}
	off := false
	s2, c2 := start(t, Config{Record: &off})
	do(t, c2, "GET", s2.URL(HostSite)+"/_edge/tenant_info", "", "")
	if len(s2.Requests()) != 0 {
		t.Error("recorded with Record=false")
	}
}

func TestOAuthSeams(t *testing.T) {
	s, c := start(t, Config{})
	s.SetBearerAuth(func(tok string) (string, []string, bool) {
		return DemoAccountID, []string{"read:jira-user"}, tok == "good"
	})
	base := s.URL(HostAPI) + "/ex/jira/" + DemoCloudID
	if r := do(t, c, "GET", base+"/rest/api/3/myself", bearer("good"), ""); r.status != 200 || !strings.Contains(r.body, DemoAccountID) {
		t.Fatalf("bearer via hook = %d %s", r.status, r.body)
	}
	if r := do(t, c, "GET", base+"/rest/api/3/issue/DEMO-1", bearer("good"), ""); r.status != 401 || !strings.Contains(r.body, "scope does not match") {
		t.Errorf("bearer scope = %d %s", r.status, r.body)
	}
	if r := do(t, c, "GET", base+"/rest/api/3/myself", bearer("bad"), ""); r.status != 401 {
		t.Errorf("bad bearer = %d", r.status)
	}
	s.Handle(HostAPI, "GET /oauth/token/accessible-resources", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetPrincipal(r, DemoAccountID, "bearer")
		w.Write([]byte(`[{"id":"` + DemoCloudID + `"}]`))
	}))
	if r := do(t, c, "GET", s.URL(HostAPI)+"/oauth/token/accessible-resources", bearer("good"), ""); r.status != 200 || !strings.Contains(r.body, DemoCloudID) {
		t.Fatalf("extra handler = %d %s", r.status, r.body)
	}
	rec := s.RequestsTo(HostAPI)
	if last := rec[len(rec)-1]; last.Principal != DemoAccountID || last.Status != 200 {
		t.Errorf("extra handler recording = %+v", last)
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(Config{Addrs: map[string]string{"nope": "127.0.0.1:0"}}); err == nil {
		t.Error("unknown host name accepted")
	}
	s, _ := start(t, Config{})
	taken := strings.TrimPrefix(s.URL(HostMedia), "https://")
	if _, err := Start(Config{Addrs: map[string]string{HostMedia: taken}}); err == nil {
		t.Error("address in use accepted")
	}
	path := t.TempDir() + "/ca.pem"
	if err := s.WriteCAFile(path); err != nil {
		t.Fatal(err)
	}
}

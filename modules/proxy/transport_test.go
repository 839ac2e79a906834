package proxy

import (
	"net/http/httptest"
	"net/url"
	"testing"
)

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestMapLocation(t *testing.T) {
	classic := &routeInfo{
		target: mustURL("https://acme.atlassian.net"),
		home:   mustURL("https://acme.atlassian.net"),
	}
	scoped := &routeInfo{
		target: mustURL("https://api.atlassian.com/ex/confluence/abc-123"),
		home:   mustURL("https://acme.atlassian.net"),
		mount:  "/atlassian",
	}
	dc := &routeInfo{
		target: mustURL("https://dc.example.com/jira"),
		home:   mustURL("https://dc.example.com/jira"),
	}
	cases := []struct {
		name string
		info *routeInfo
		req  string
		loc  string
		want string
	}{
		{"absolute on site", classic, "https://acme.atlassian.net/wiki/x/AQAB", "https://acme.atlassian.net/wiki/spaces/DEMO/pages/1?focused=1#c", "/wiki/spaces/DEMO/pages/1?focused=1#c"},
		{"default port spelled out", classic, "https://acme.atlassian.net/a", "https://acme.atlassian.net:443/b", "/b"},
		{"path-relative", classic, "https://acme.atlassian.net/wiki/x/AQAB", "/wiki/spaces/DEMO", "/wiki/spaces/DEMO"},
		{"media host untouched", classic, "https://acme.atlassian.net/rest/api/3/attachment/content/1", "https://api.media.atlassian.com/file/x/binary?token=t", "https://api.media.atlassian.com/file/x/binary?token=t"},
		{"look-alike host untouched", classic, "https://acme.atlassian.net/a", "https://acme.atlassian.net.evil.com/b", "https://acme.atlassian.net.evil.com/b"},
		{"other scheme untouched", classic, "https://acme.atlassian.net/a", "http://acme.atlassian.net/b", "http://acme.atlassian.net/b"},
		{"ex prefix stripped", scoped, "https://api.atlassian.com/ex/confluence/abc-123/wiki/x/AQAB", "https://api.atlassian.com/ex/confluence/abc-123/wiki/spaces/DEMO", "/atlassian/wiki/spaces/DEMO"},
		{"other cloudId untouched", scoped, "https://api.atlassian.com/ex/confluence/abc-123/wiki", "https://api.atlassian.com/ex/confluence/other/wiki", "https://api.atlassian.com/ex/confluence/other/wiki"},
		{"prefix must end at a segment", scoped, "https://api.atlassian.com/ex/confluence/abc-123/wiki", "https://api.atlassian.com/ex/confluence/abc-1234/wiki", "https://api.atlassian.com/ex/confluence/abc-1234/wiki"},
		{"site link under scoped route", scoped, "https://api.atlassian.com/ex/confluence/abc-123/wiki", "https://acme.atlassian.net/wiki/spaces/X", "/atlassian/wiki/spaces/X"},
		{"context path stripped", dc, "https://dc.example.com/jira/browse/X-1", "https://dc.example.com/jira/secure/Dashboard.jspa", "/secure/Dashboard.jspa"},
		{"outside context path untouched", dc, "https://dc.example.com/jira/a", "https://dc.example.com/confluence/b", "https://dc.example.com/confluence/b"},
		{"escaped path kept", classic, "https://acme.atlassian.net/a", "https://acme.atlassian.net/wiki/spaces/A%2FB", "/wiki/spaces/A%2FB"},
		{"garbage untouched", classic, "https://acme.atlassian.net/a", "://bad", "://bad"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := mapLocation(c.loc, mustURL(c.req), c.info); got != c.want {
				t.Errorf("mapLocation(%q) = %q, want %q", c.loc, got, c.want)
			}
		})
	}
}

func TestStripClientCredentials(t *testing.T) {
	r := httptest.NewRequest("GET", "/rest/api/2/search?jql=a%3Db&os_username=x&OS_PASSWORD=y&os_authType=basic&access_token=t&jwt=j&expand=names", nil)
	r.Header.Set("Authorization", "Basic eDp5")
	r.Header.Add("Authorization", "Bearer second")
	r.Header.Set("Proxy-Authorization", "Basic eDp5")
	r.Header.Set("Cookie", "JSESSIONID=1; cloud.session.token=2")
	r.Header.Set("X-Atlassian-Token", "no-check")
	if e := stripClientCredentials(r); e != nil {
		t.Fatal(e)
	}
	for _, h := range []string{"Authorization", "Proxy-Authorization", "Cookie"} {
		if len(r.Header.Values(h)) != 0 {
			t.Errorf("%s kept: %q", h, r.Header.Values(h))
		}
	}
	if r.Header.Get("X-Atlassian-Token") != "no-check" {
		t.Error("a non-credential header was removed")
	}
	q := r.URL.Query()
	for _, p := range []string{"os_username", "OS_PASSWORD", "os_authType", "access_token", "jwt"} {
		if q.Has(p) {
			t.Errorf("query parameter %s kept: %s", p, r.URL.RawQuery)
		}
	}
	if q.Get("jql") != "a=b" || q.Get("expand") != "names" {
		t.Errorf("ordinary parameters changed: %s", r.URL.RawQuery)
	}

	// A query without credentials keeps its exact encoding.
	r = httptest.NewRequest("GET", "/rest/api/3/search/jql?jql=project%20%3D%20DEMO&fields=*all", nil)
	if e := stripClientCredentials(r); e != nil {
		t.Fatal(e)
	}
	if r.URL.RawQuery != "jql=project%20%3D%20DEMO&fields=*all" {
		t.Errorf("query re-encoded: %s", r.URL.RawQuery)
	}
}

func TestOriginKey(t *testing.T) {
	for in, want := range map[string]string{
		"https://Acme.Atlassian.net":      "https://acme.atlassian.net:443",
		"https://acme.atlassian.net:443/": "https://acme.atlassian.net:443",
		"https://127.0.0.1:9441/x":        "https://127.0.0.1:9441",
		"https://[::1]:9441":              "https://[::1]:9441",
		"http://gw":                       "http://gw:80",
	} {
		if got := originKey(mustURL(in)); got != want {
			t.Errorf("originKey(%s) = %s, want %s", in, got, want)
		}
	}
}

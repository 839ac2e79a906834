package credentials

import (
	"context"
	"errors"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

func zeroCtx() caddy.Context {
	ctx, _ := caddy.NewContext(caddy.Context{Context: context.Background()})
	return ctx
}

func TestParseBase(t *testing.T) {
	ok := map[string]string{
		"https://Acme.atlassian.net":         "https://acme.atlassian.net",
		"https://acme.atlassian.net/":        "https://acme.atlassian.net",
		"https://dc.example.com/jira/":       "https://dc.example.com/jira",
		"https://127.0.0.1:9441":             "https://127.0.0.1:9441",
		"https://api.bitbucket.org":          "https://api.bitbucket.org",
		"https://dc.example.com:8443/wiki//": "https://dc.example.com:8443/wiki",
	}
	for in, want := range ok {
		u, err := parseBase("site", in)
		if err != nil || u.String() != want {
			t.Errorf("parseBase(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	bad := map[string]string{
		"http://jira.example.com":            "must be an https:// URL",
		"jira.example.com":                   "must be an https:// URL",
		"https://user:pw@acme.atlassian.net": "without user info",
		"https://acme.atlassian.net/?x=1":    "without user info, query or fragment",
		"https://":                           "must be a base URL",
		"https://acme.atlassian.net:":        "empty port",
		// A copied Confluence URL: every request would go to /wiki/wiki/….
		"https://acme.atlassian.net/wiki":  `has a path, but an Atlassian Cloud site has none: write https://acme.atlassian.net (`,
		"https://ACME.atlassian.net/jira/": `write https://acme.atlassian.net (`,
	}
	for in, want := range bad {
		if _, err := parseBase("site", in); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "site: ") {
			t.Errorf("parseBase(%q) error = %v, want %q", in, err, want)
		}
	}
}

// tenantInfo serves /_edge/tenant_info over TLS and counts the calls.
func tenantInfo(t *testing.T, status *atomic.Int32) (*httptest.Server, *atomic.Int32) {
	calls := new(atomic.Int32)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/_edge/tenant_info" || r.Header.Get("Authorization") != "" {
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		if s := status.Load(); s != 200 {
			w.WriteHeader(int(s))
			return
		}
		w.Write([]byte(`{"cloudId":"11111111-2222-3333-4444-555555555555"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, calls
}

func TestCloudIDDiscovery(t *testing.T) {
	status := new(atomic.Int32)
	status.Store(200)
	srv, calls := tenantInfo(t, status)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Cleanup(gclock.Set(func() time.Time { return clock }))

	e := &cloudIDEntry{site: srv.URL}
	client := srv.Client()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if id, err := e.get(context.Background(), client); err != nil || id != "11111111-2222-3333-4444-555555555555" {
				t.Errorf("get = %q, %v", id, err)
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("50 concurrent lookups made %d discovery calls, want 1", calls.Load())
	}

	// After the TTL it is refreshed; a failing site keeps the known id.
	clock = clock.Add(cloudIDTTL + time.Second)
	status.Store(500)
	if id, err := e.get(context.Background(), client); err != nil || id == "" {
		t.Fatalf("known cloudId lost while the site fails: %q, %v", id, err)
	}
	if calls.Load() != 2 {
		t.Fatalf("calls = %d, want a refresh attempt", calls.Load())
	}
	// The failure is remembered briefly: no call per request.
	e.get(context.Background(), client)
	if calls.Load() != 2 {
		t.Fatalf("calls = %d: a failing site is hammered", calls.Load())
	}
}

func TestCloudIDDiscoveryFailure(t *testing.T) {
	status := new(atomic.Int32)
	status.Store(404)
	srv, calls := tenantInfo(t, status)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Cleanup(gclock.Set(func() time.Time { return clock }))

	c := &APIToken{Scoped: true, apiBase: mustParse(t, "https://api.atlassian.com"), client: srv.Client(), cloudID: &cloudIDEntry{site: srv.URL}}
	_, err := c.Target(context.Background(), "/rest/api/3/myself")
	var ue *atlasgate.UnavailableError
	if !errors.As(err, &ue) || !strings.Contains(ue.Reason, "cloudId") || ue.Remedy == "" {
		t.Fatalf("Target error = %v, want an UnavailableError naming the cloudId and a remedy", err)
	}
	c.Target(context.Background(), "/rest/api/3/myself")
	if calls.Load() != 1 {
		t.Errorf("calls = %d within the negative-cache window, want 1", calls.Load())
	}
	clock = clock.Add(cloudIDNegativeTTL)
	status.Store(200)
	u, err := c.Target(context.Background(), "/wiki/api/v2/pages")
	if err != nil || u.String() != "https://api.atlassian.com/ex/confluence/11111111-2222-3333-4444-555555555555" {
		t.Fatalf("after recovery: %v, %v", u, err)
	}
}

func TestScopedRoutesByProduct(t *testing.T) {
	e := &cloudIDEntry{site: "https://acme.atlassian.net", id: "cid", fetched: time.Now()}
	c := &APIToken{Scoped: true, apiBase: mustParse(t, "https://api.atlassian.com"), cloudID: e}
	for path, want := range map[string]string{
		"/rest/api/3/myself":    "https://api.atlassian.com/ex/jira/cid",
		"/wiki":                 "https://api.atlassian.com/ex/confluence/cid",
		"/wiki/api/v2/pages":    "https://api.atlassian.com/ex/confluence/cid",
		"/wikipedia":            "https://api.atlassian.com/ex/jira/cid",
		"/rest/agile/1.0/board": "https://api.atlassian.com/ex/jira/cid",
	} {
		u, err := c.Target(context.Background(), path)
		if err != nil || u.String() != want {
			t.Errorf("Target(%s) = %v, %v; want %s", path, u, err, want)
		}
	}
	if o := c.Origins(); len(o) != 1 || o[0].Host != "api.atlassian.com" {
		t.Errorf("scoped origins = %v, want only the API gateway", o)
	}
}

func TestInjectSetsExactlyOneHeader(t *testing.T) {
	t.Setenv("CRED_TEST_TOKEN", "tok")
	c := &APIToken{Site: "https://acme.atlassian.net", Email: "a@b.c", Token: "{env.CRED_TEST_TOKEN}"}
	if err := c.Provision(zeroCtx()); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Add("Authorization", "Basic client")
	r.Header.Add("Authorization", "Bearer client2")
	c.Inject(r)
	if got := r.Header.Values("Authorization"); len(got) != 1 || got[0] != "Basic YUBiLmM6dG9r" {
		t.Errorf("Authorization = %q", got)
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := parseBase("test", s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

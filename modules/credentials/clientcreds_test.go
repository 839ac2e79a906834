package credentials

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"golang.org/x/oauth2"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

// tokenServer is an httptest token endpoint on 127.0.0.1 that checks the
// client authentication and counts the calls.
type tokenServer struct {
	*httptest.Server
	calls    atomic.Int32
	status   atomic.Int32 // 0: 200
	lifetime atomic.Int32 // expires_in; 0: 3600
	delay    time.Duration

	mu   sync.Mutex
	last *http.Request // a clone, with the parsed form
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{}
	ts.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ts.calls.Add(1)
		r.ParseForm()
		ts.mu.Lock()
		ts.last = r.Clone(context.Background())
		ts.mu.Unlock()
		time.Sleep(ts.delay)
		w.Header().Set("Content-Type", "application/json")
		if s := ts.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			fmt.Fprintf(w, `{"error":"server_error","error_description":"down","echo":"%s"}`, r.PostForm.Get("client_secret"))
			return
		}
		life := ts.lifetime.Load()
		if life == 0 {
			life = 3600
		}
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"Bearer","expires_in":%d}`, n, life)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) lastRequest() *http.Request {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.last
}

// caFile writes the httptest servers' certificate (shared by all of them) as
// a PEM file.
func caFile(t *testing.T, srv *httptest.Server) string {
	p := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// manualClock is a clock the test moves while the engine's background
// goroutine reads it.
type manualClock struct{ ns atomic.Int64 }

func (c *manualClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *manualClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// ccClock makes the gateway's clock a manual one for the test.
func ccClock(t *testing.T) *manualClock {
	c := new(manualClock)
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	t.Cleanup(gclock.Set(c.Now))
	return c
}

// newCC provisions a direct-routing credential against ts.
func newCC(t *testing.T, ts *tokenServer, mod func(*ClientCredentials)) *ClientCredentials {
	t.Helper()
	t.Setenv("CC_TEST_SECRET", "s3cr3t/+")
	c := &ClientCredentials{
		TokenURL:       ts.URL + "/oauth/token",
		ClientID:       "my-client",
		ClientSecret:   "{env.CC_TEST_SECRET}",
		Site:           "https://dc.example.com/jira",
		TrustedCAFiles: []string{caFile(t, ts.Server)},
	}
	if mod != nil {
		mod(c)
	}
	if err := c.Provision(zeroCtx()); err != nil {
		t.Fatal(err)
	}
	return c
}

func inject(t *testing.T, c *ClientCredentials) (string, error) {
	r := httptest.NewRequest("GET", "/rest/api/2/myself", nil)
	r.Header.Set("Authorization", "Basic client")
	err := c.Inject(r)
	return r.Header.Get("Authorization"), err
}

func TestClientCredentialsClientAuthOnTheWire(t *testing.T) {
	ts := newTokenServer(t)
	for _, tc := range []struct {
		name      string
		auth      string
		basic     bool
		tokenPath string
	}{
		{name: "default is body", auth: "", basic: false},
		{name: "body", auth: "body", basic: false},
		{name: "basic", auth: "basic", basic: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCC(t, ts, func(c *ClientCredentials) {
				c.ClientAuth = tc.auth
				c.Scopes = []string{"read:jira-work", "write:jira-work"}
				c.Audience = "api.atlassian.com"
				c.Params = map[string]string{"resource": "https://dc.example.com"}
			})
			if h, err := inject(t, c); err != nil || !strings.HasPrefix(h, "Bearer at-") {
				t.Fatalf("Inject: %q, %v", h, err)
			}
			r := ts.lastRequest()
			f := r.PostForm
			if f.Get("grant_type") != "client_credentials" || f.Get("scope") != "read:jira-work write:jira-work" ||
				f.Get("audience") != "api.atlassian.com" || f.Get("resource") != "https://dc.example.com" {
				t.Errorf("token request form = %v", f)
			}
			user, pass, hasBasic := r.BasicAuth()
			if tc.basic {
				// RFC 6749 §2.3.1: form-encoded before Basic encoding.
				if !hasBasic || user != "my-client" || pass != "s3cr3t%2F%2B" || f.Has("client_secret") || f.Has("client_id") {
					t.Errorf("basic: Authorization %q/%q, form %v", user, pass, f)
				}
			} else if hasBasic || f.Get("client_id") != "my-client" || f.Get("client_secret") != "s3cr3t/+" {
				t.Errorf("body: Authorization %v, form %v", hasBasic, f)
			}
		})
	}
}

func TestClientCredentialsBitbucketDefaultsToBasic(t *testing.T) {
	c := &ClientCredentials{TokenURL: "https://bitbucket.org/site/oauth2/access_token"}
	c.tokenURL, _ = parseTokenURL(c.TokenURL)
	if s, err := c.authStyle(); err != nil || s != oauth2.AuthStyleInHeader {
		t.Errorf("Bitbucket default client auth = %v, %v; want basic", s, err)
	}
}

func TestClientCredentialsCachingAndEarlyRefresh(t *testing.T) {
	clock := ccClock(t)
	ts := newTokenServer(t)
	c := newCC(t, ts, nil)
	for i := 0; i < 10; i++ {
		if h, _ := inject(t, c); h != "Bearer at-1" {
			t.Fatalf("request %d: %q", i, h)
		}
	}
	clock.Advance(54 * time.Minute) // 6 minutes left: cached
	if h, _ := inject(t, c); h != "Bearer at-1" || ts.calls.Load() != 1 {
		t.Fatalf("54m: %q after %d calls", h, ts.calls.Load())
	}
	clock.Advance(time.Minute + time.Second) // inside refresh_before (5m)
	// The still-valid token is served at once; the renewal runs in the
	// background.
	if h, _ := inject(t, c); h != "Bearer at-1" {
		t.Fatalf("55m: %q, want the valid token without waiting", h)
	}
	eventually(t, "an early renewal", func() bool { h, _ := inject(t, c); return h == "Bearer at-2" })
	if ts.calls.Load() != 2 {
		t.Fatalf("%d token calls, want 2", ts.calls.Load())
	}

	// A lifetime shorter than refresh_before renews at half-life, not on
	// every request.
	ts.lifetime.Store(60)
	clock.Advance(time.Hour)
	inject(t, c)
	n := ts.calls.Load()
	clock.Advance(29 * time.Second)
	inject(t, c)
	if ts.calls.Load() != n {
		t.Fatalf("a 60s token was renewed after 29s")
	}
	clock.Advance(2 * time.Second)
	inject(t, c)
	eventually(t, "a 60s token renewed after 31s", func() bool { return ts.calls.Load() == n+1 })
}

func TestClientCredentialsSingleFlight(t *testing.T) {
	ts := newTokenServer(t)
	ts.delay = 50 * time.Millisecond
	c := newCC(t, ts, nil)
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if h, err := inject(t, c); err != nil || h != "Bearer at-1" {
				t.Errorf("Inject: %q, %v", h, err)
			}
		}()
	}
	wg.Wait()
	if n := ts.calls.Load(); n != 1 {
		t.Fatalf("200 concurrent requests made %d token calls, want 1", n)
	}
}

func TestClientCredentialsTokenEndpointFailure(t *testing.T) {
	for _, tc := range []struct {
		status int
		reason string
	}{
		{503, "the token endpoint failed"},
		{500, "the token endpoint failed"},
		{401, "rejected the client credentials"},
		{400, "refused the token request"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			clock := ccClock(t)
			ts := newTokenServer(t)
			ts.status.Store(int32(tc.status))
			c := newCC(t, ts, nil)
			c.name = "svc"
			_, err := c.Target(context.Background(), "/rest/api/2/myself")
			var ue *atlasgate.UnavailableError
			if !errors.As(err, &ue) || !strings.Contains(ue.Reason, tc.reason) || ue.Remedy == "" || ue.Credential != "svc" {
				t.Fatalf("Target error = %#v, want an UnavailableError: %s", err, tc.reason)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "echo") {
				t.Fatalf("the error carries the response body: %v", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", tc.status)) {
				t.Errorf("the error does not name the status: %v", err)
			}
			// A failure is remembered briefly: no token call per request.
			inject(t, c)
			if ts.calls.Load() != 1 {
				t.Fatalf("calls = %d: the token endpoint is hammered", ts.calls.Load())
			}
			ts.status.Store(0)
			clock.Advance(5 * time.Second) // the first back-off
			if h, err := inject(t, c); err != nil || h != "Bearer at-2" {
				t.Fatalf("after recovery: %q, %v", h, err)
			}
		})
	}
}

func TestClientCredentialsUnreachable(t *testing.T) {
	ts := newTokenServer(t)
	c := newCC(t, ts, nil)
	ts.Close()
	_, err := inject(t, c)
	var ue *atlasgate.UnavailableError
	if !errors.As(err, &ue) || !strings.Contains(ue.Reason, "could not be reached") {
		t.Fatalf("error = %v", err)
	}
}

func TestClientCredentialsEarlyRenewalFailureKeepsToken(t *testing.T) {
	clock := ccClock(t)
	ts := newTokenServer(t)
	c := newCC(t, ts, nil)
	inject(t, c)
	ts.status.Store(503)
	clock.Advance(57 * time.Minute)
	if h, err := inject(t, c); err != nil || h != "Bearer at-1" {
		t.Fatalf("renewal failed with 3 minutes left: %q, %v", h, err)
	}
	clock.Advance(4 * time.Minute) // expired
	if _, err := inject(t, c); err == nil {
		t.Fatal("an expired token was served")
	}
}

func TestClientCredentialsReauthenticate(t *testing.T) {
	clock := ccClock(t)
	ts := newTokenServer(t)
	c := newCC(t, ts, nil)
	inject(t, c)
	clock.Advance(20 * time.Minute)

	// Two requests refused with the same token: one new token.
	for i := 0; i < 2; i++ {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer at-1")
		if err := c.Reauthenticate(r); err != nil || r.Header.Get("Authorization") != "Bearer at-2" {
			t.Fatalf("Reauthenticate %d: %q, %v", i, r.Header.Get("Authorization"), err)
		}
	}
	if ts.calls.Load() != 2 {
		t.Fatalf("calls = %d, want 2", ts.calls.Load())
	}
	// The new tokens refused right away, again and again: a permissions
	// problem; after a few futile refreshes no new token is requested and
	// the upstream's 401 stands.
	for i := 2; ; i++ {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", fmt.Sprintf("Bearer at-%d", i))
		err := c.Reauthenticate(r)
		if err != nil {
			if errors.As(err, new(*atlasgate.UnavailableError)) || i != 5 {
				t.Fatalf("futile refresh %d refused with %v", i-1, err)
			}
			break
		}
		c.ReplayRefused(r)
	}
	clock.Advance(time.Minute)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer at-5")
	if err := c.Reauthenticate(r); err != nil || r.Header.Get("Authorization") != "Bearer at-6" {
		t.Fatalf("a minute later: %q, %v", r.Header.Get("Authorization"), err)
	}
}

func TestClientCredentialsExRouting(t *testing.T) {
	ts := newTokenServer(t)
	status := new(atomic.Int32)
	status.Store(200)
	site, _ := tenantInfo(t, status)
	c := newCC(t, ts, func(c *ClientCredentials) {
		c.Site = site.URL
		c.Routing = "ex"
		c.APIBase = "https://api.example.com"
	})
	t.Cleanup(func() { c.Cleanup() })
	u, err := c.Target(context.Background(), "/wiki/api/v2/pages")
	if err != nil || u.String() != "https://api.example.com/ex/confluence/11111111-2222-3333-4444-555555555555" {
		t.Fatalf("Target = %v, %v", u, err)
	}
	if o := c.Origins(); len(o) != 1 || o[0].Host != "api.example.com" {
		t.Errorf("Origins = %v", o)
	}
	if c.Home().String() != site.URL {
		t.Errorf("Home = %v", c.Home())
	}
}

func TestClientCredentialsProvisionErrors(t *testing.T) {
	t.Setenv("CC_TEST_SECRET", "x")
	base := func() *ClientCredentials {
		return &ClientCredentials{ClientID: "id", ClientSecret: "{env.CC_TEST_SECRET}", Site: "https://acme.atlassian.net"}
	}
	routing := map[string]func(*ClientCredentials){
		"ex": func(c *ClientCredentials) {},
		"direct": func(c *ClientCredentials) {
			c.TokenURL = "https://dc.example.com/rest/oauth2/latest/token"
			c.Site = "https://dc.example.com"
		},
	}
	for want, mod := range routing {
		c := base()
		mod(c)
		if err := c.Provision(zeroCtx()); err != nil || c.Routing != want {
			t.Errorf("default routing = %q, %v; want %s", c.Routing, err, want)
		}
		c.Cleanup()
	}
	for want, mod := range map[string]func(*ClientCredentials){
		"client_secret":                      func(c *ClientCredentials) { c.ClientSecret = "literal" },
		"client_id: required":                func(c *ClientCredentials) { c.ClientID = "" },
		"token_url":                          func(c *ClientCredentials) { c.TokenURL = "http://auth.example.com/token" },
		"site":                               func(c *ClientCredentials) { c.Site = "http://acme.atlassian.net" },
		"routing: tokens from Atlassian":     func(c *ClientCredentials) { c.Site = "https://jira.acme.com" },
		"routing: \"via\"":                   func(c *ClientCredentials) { c.Routing = "via" },
		"client_auth":                        func(c *ClientCredentials) { c.ClientAuth = "jwt" },
		"params: \"scope\"":                  func(c *ClientCredentials) { c.Params = map[string]string{"scope": "x"} },
		"params: \"grant_type\"":             func(c *ClientCredentials) { c.Params = map[string]string{"grant_type": "password"} },
		"api_base: only applies to `routing": func(c *ClientCredentials) { c.Routing = "direct"; c.APIBase = "https://api.atlassian.com" },
	} {
		c := base()
		mod(c)
		err := c.Provision(zeroCtx())
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error = %v", want, err)
		}
		c.Cleanup()
	}
}

func TestClientCredentialsCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`client_credentials {
		token_url https://bitbucket.org/site/oauth2/access_token
		client_id abc
		client_secret {env.BB_SECRET}
		scopes repository pullrequest
		audience aud
		client_auth basic
		param resource https://x
		param foo bar
		site https://api.bitbucket.org
		routing direct
		api_base https://api.example.com
		trusted_ca_file a.pem b.pem
		refresh_before 2m
	}`)
	var c ClientCredentials
	if err := c.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(c)
	want := `{"token_url":"https://bitbucket.org/site/oauth2/access_token","client_id":"abc","client_secret":"{env.BB_SECRET}","scopes":["repository","pullrequest"],"audience":"aud","client_auth":"basic","params":{"foo":"bar","resource":"https://x"},"site":"https://api.bitbucket.org","routing":"direct","api_base":"https://api.example.com","trusted_ca_files":["a.pem","b.pem"],"refresh_before":120000000000}`
	if string(got) != want {
		t.Errorf("JSON:\n got %s\nwant %s", got, want)
	}
	for _, bad := range []string{
		"client_credentials {\n param one\n}",
		"client_credentials {\n unknown x\n}",
		"client_credentials extra",
		"client_credentials {\n refresh_before soon\n}",
	} {
		var c ClientCredentials
		if err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// eventually waits (in real time) for cond, which background work makes true.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

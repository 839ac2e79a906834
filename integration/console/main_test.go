// Package console tests the OAuth console end to end: the real in-process
// Caddy with atlasgate, the Atlassian simulator's authorization server with its
// real consent page (no auto-consent), a headless Chromium that presses the
// buttons, and the admin route and CLI that show credential states.
package console

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/credentials"
)

const (
	consoleUser     = "admin"
	consolePassword = "console-password"
	prefix          = "/atlasgate/oauth"
)

var (
	sim  *atlassim.Sim
	dir  string
	gw   gateway
	hash string
)

type gateway struct{ port, admin int }

func (g gateway) base() string { return fmt.Sprintf("http://127.0.0.1:%d", g.port) }

func (g gateway) callbackURL() string { return g.base() + prefix + "/callback" }

func TestMain(m *testing.M) {
	os.Exit(itest.Main(m, itest.Options{
		// AutoConsent off: the authorization server shows its real consent page.
		Sim:  atlassim.Config{Seed: true},
		Name: "console",
		Env: map[string]string{
			"IT_CONSOLE_OAUTH_SECRET":   atlassim.DemoOAuthClientSecret,
			"IT_CONSOLE_ENCRYPTION_KEY": "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=",
			"IT_CONSOLE_PAT":            atlassim.DemoPAT,
		},
		Setup: func(h *itest.Harness) error {
			sim, dir = h.Sim, h.Dir
			h2, _ := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
			hash = string(h2)
			gw = gateway{port: freePort(), admin: freePort()}
			sim.AddRedirectURI(atlassim.DemoOAuthClientID, gw.callbackURL())
			if err := itest.Load(gw.caddyfile()); err != nil {
				return fmt.Errorf("loading config: %w", err)
			}
			return nil
		},
	}))
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// caddyfile is the gateway: an OAuth credential and a static one, the
// console behind basic_auth, and the proxy for everything else.
func (g gateway) caddyfile() string {
	ca := filepath.Join(dir, "ca.pem")
	return fmt.Sprintf(`{
%s	atlasgate {
		encryption_key {env.IT_CONSOLE_ENCRYPTION_KEY}
		credential jira oauth {
			client_id %s
			client_secret {env.IT_CONSOLE_OAUTH_SECRET}
			scopes read:jira-user read:jira-work offline_access
			site %s
			callback_url %s
			authorize_url %s/authorize
			token_url %s/oauth/token
			api_base %s
			trusted_ca_file %s
		}
		credential jira-dc bearer {
			site %s
			token {env.IT_CONSOLE_PAT}
			trusted_ca_file %s
		}
	}
}

http://127.0.0.1:%d {
	handle %s/* {
		basic_auth {
			%s %s
		}
		atlasgate_console
	}
	handle {
		atlasgate_proxy jira
	}
}
`, itest.GlobalOptions(g.admin, filepath.Join(dir, "storage")), atlassim.DemoOAuthClientID, sim.URL(atlassim.HostSite), g.callbackURL(),
		sim.URL(atlassim.HostAuth), sim.URL(atlassim.HostAuth), sim.URL(atlassim.HostAPI), ca,
		sim.URL(atlassim.HostJiraDC), ca, g.port, prefix, consoleUser, hash)
}

// credential returns the running config's OAuth credential.
func credential(t *testing.T) *credentials.OAuth {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("atlasgate")
	if err != nil {
		t.Fatal(err)
	}
	c, ok := app.(*atlasgate.App).Credential("jira")
	if !ok {
		t.Fatal("no credential jira")
	}
	return c.(*credentials.OAuth)
}

// noRedirects is a client that shows every redirect instead of following it
// and trusts the simulator's CA.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	client := noRedirects
	if req.URL.Scheme == "https" {
		client = simClient()
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

// consoleRequest is a request to the console, with the console's basic auth.
func consoleRequest(method, path string, cookie *http.Cookie) *http.Request {
	req, _ := http.NewRequest(method, gw.base()+path, nil)
	req.SetBasicAuth(consoleUser, consolePassword)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	return req
}

// startAuthorize presses Authorize (as a same-origin form post) and returns
// where the console redirects and the browser-binding cookie.
func startAuthorize(t *testing.T, name string) (*url.URL, *http.Cookie) {
	t.Helper()
	req := consoleRequest(http.MethodPost, prefix+"/authorize/"+name, nil)
	req.Header.Set("Origin", gw.base())
	res := do(t, req)
	if res.status != http.StatusSeeOther {
		t.Fatalf("authorize: %d %s", res.status, res.body)
	}
	loc, err := url.Parse(res.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	cookies := (&http.Response{Header: res.header}).Cookies()
	if len(cookies) != 1 || cookies[0].Name != "atlasgate_oauth_state" {
		t.Fatalf("cookies: %v", cookies)
	}
	return loc, cookies[0]
}

var requestField = regexp.MustCompile(`name="request" value="([^"]+)"`)

// consent opens the simulator's consent page at authURL and answers it
// (accept or deny), returning the callback URL the simulator redirects to.
func consent(t *testing.T, authURL *url.URL, decision string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, authURL.String(), nil)
	page := do(t, req)
	m := requestField.FindStringSubmatch(page.body)
	if page.status != 200 || m == nil {
		t.Fatalf("consent page: %d %s", page.status, page.body)
	}
	form := url.Values{"request": {m[1]}, "decision": {decision}, "site": {sim.CloudID()}}
	req, _ = http.NewRequest(http.MethodPost, sim.URL(atlassim.HostAuth)+"/authorize/decision", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res := do(t, req)
	cb := res.header.Get("Location")
	if res.status != http.StatusFound || !strings.HasPrefix(cb, gw.callbackURL()+"?") {
		t.Fatalf("consent decision: %d %q", res.status, cb)
	}
	return strings.TrimPrefix(cb, gw.base())
}

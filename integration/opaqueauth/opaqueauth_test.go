// Package opaqueauth tests the introspection and userinfo authenticators end
// to end: a real OpenID Provider (zitadel's op) issues opaque access tokens
// with the client credentials grant, and the real Caddy with atlasgate_auth and
// atlasgate_proxy forwards the calls it accepts to the Atlassian simulator.
package opaqueauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
	_ "github.com/atlasgate/atlasgate/modules/authn/opaque"
)

var (
	sim     *atlassim.Sim
	idp     *provider
	gw      gateway
	workDir string
	caFile  string
)

const (
	envAPIToken = "IT_OPAQUE_ATLASSIAN_API_TOKEN"
	envSecret   = "IT_OPAQUE_INTROSPECTION_SECRET"
	// a client secret the OP does not know
	envWrongSecret = "IT_OPAQUE_WRONG_SECRET"
)

func TestMain(m *testing.M) {
	os.Exit(itest.Main(m, itest.Options{
		Sim:    atlassim.Config{Seed: true},
		Name:   "opaque-it",
		CAFile: "atlassim-ca.pem",
		Env: map[string]string{
			envAPIToken:    atlassim.DemoAPIToken,
			envSecret:      gatewayClientSecret,
			envWrongSecret: "not-the-secret",
		},
		Setup: func(h *itest.Harness) (err error) {
			sim, workDir, caFile = h.Sim, h.Dir, h.CAFile
			if idp, err = startProvider("127.0.0.1:0"); err != nil {
				return fmt.Errorf("starting OpenID Provider: %w", err)
			}
			// idp may be replaced by a restart: stop the one running then.
			h.Cleanup(func() { idp.stop() })
			gw = gateway{port: freePort(), adminPort: freePort()}
			if err := itest.Load(gw.caddyfile()); err != nil {
				return fmt.Errorf("loading gateway config: %w", err)
			}
			return nil
		},
	}))
}

// gatewayConfig: one site per authenticator, chosen by Host. The deferred
// response header shows which user the gateway authenticated.
const gatewayConfig = `{
%[1]s
	atlasgate {
		credential jira api_token {
			site %[2]s
			email %[3]s
			token {env.%[4]s}
			trusted_ca_file %[5]s
		}
		authenticator op-basic introspection {
			endpoint %[6]s/oauth/introspect
			client_id %[7]s
			client_secret {env.%[8]s}
		}
		authenticator op-post introspection {
			endpoint %[6]s/oauth/introspect
			client_id %[7]s
			client_secret {env.%[8]s}
			client_auth post
		}
		authenticator op-wrong-secret introspection {
			endpoint %[6]s/oauth/introspect
			client_id %[7]s
			client_secret {env.%[10]s}
		}
		authenticator op-userinfo userinfo oidc %[6]s/userinfo {
			username_attribute preferred_username
		}
	}
}

(site) {
	header {
		defer
		X-Test-User {http.auth.user.id}
		X-Test-Kind {http.auth.user.kind}
	}
	atlasgate_proxy jira
}

http://basic.test:%[9]d {
	atlasgate_auth op-basic
	import site
}

http://post.test:%[9]d {
	atlasgate_auth op-post
	import site
}

http://wrong-secret.test:%[9]d {
	atlasgate_auth op-wrong-secret
	import site
}

http://userinfo.test:%[9]d {
	atlasgate_auth op-userinfo
	import site
}
`

type gateway struct{ port, adminPort int }

func (g gateway) caddyfile() string {
	return fmt.Sprintf(gatewayConfig, itest.GlobalOptions(g.adminPort, filepath.Join(workDir, "storage")),
		sim.URL(atlassim.HostSite), atlassim.DemoEmail, envAPIToken, caFile,
		idp.issuer, gatewayClientID, envSecret, g.port, envWrongSecret)
}

// freePort is itest.FreePort for TestMain, which has no testing.TB.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var sites = []string{"basic", "post", "userinfo"}

type answer struct {
	status int
	header http.Header
	body   string
}

func (g gateway) get(t *testing.T, site, token string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/rest/api/3/myself", g.port), nil)
	req.Host = fmt.Sprintf("%s.test:%d", site, g.port)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET via %s: %v", site, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// token gets an opaque access token from the OP with the client credentials
// grant.
func token(t *testing.T, client string) string {
	t.Helper()
	cc := clientcredentials.Config{
		ClientID: client, ClientSecret: opClients[client].secret,
		TokenURL: idp.issuer + "/oauth/token", Scopes: []string{"openid", "profile", "email"},
	}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("client credentials grant for %s: %v", client, err)
	}
	if strings.Count(tok.AccessToken, ".") == 2 {
		t.Fatalf("the OP issued a JWT, not an opaque access token")
	}
	return tok.AccessToken
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// A valid token reaches Atlassian as the gateway's credential; the client's
// token does not reach Atlassian at all.
func TestValidTokenIsProxiedWithInjectedCredential(t *testing.T) {
	for _, site := range sites {
		t.Run(site, func(t *testing.T) {
			tok := token(t, "app")
			sim.ResetRequests()
			a := gw.get(t, site, tok)
			if a.status != http.StatusOK {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			wantKind := "introspection"
			if site == "userinfo" {
				wantKind = "userinfo"
			}
			if a.header.Get("X-Test-User") != "svc-app" || a.header.Get("X-Test-Kind") != wantKind {
				t.Errorf("authenticated as %q (%q), want svc-app (%s)", a.header.Get("X-Test-User"), a.header.Get("X-Test-Kind"), wantKind)
			}
			var me map[string]any
			if err := json.Unmarshal([]byte(a.body), &me); err != nil || me["accountId"] != atlassim.DemoAccountID {
				t.Errorf("body %s: want the injected account %s", a.body, atlassim.DemoAccountID)
			}
			reqs := sim.RequestsTo(atlassim.HostSite)
			if len(reqs) != 1 {
				t.Fatalf("the simulator got %d requests, want 1", len(reqs))
			}
			rec := reqs[0]
			if got, want := rec.Header.Get("Authorization"), basic(atlassim.DemoEmail, atlassim.DemoAPIToken); got != want {
				t.Errorf("Authorization at Atlassian = %q, want the injected API token", got)
			}
			for name, values := range rec.Header {
				for _, v := range values {
					if strings.Contains(v, tok) {
						t.Errorf("the client's token reached Atlassian in %s", name)
					}
				}
			}
			if strings.Contains(rec.RawQuery, tok) {
				t.Error("the client's token reached Atlassian in the query")
			}
		})
	}
}

func TestRefusedTokensAre401(t *testing.T) {
	revoked := map[string]string{}
	for _, site := range sites {
		revoked[site] = token(t, "app")
		if err := idp.revoke(revoked[site]); err != nil {
			t.Fatalf("revoking: %v", err)
		}
	}
	for _, site := range sites {
		cases := map[string]string{
			"revoked": revoked[site],
			"garbage": "not-a-token-the-op-ever-issued",
			"jwt":     "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2lnbmF0dXJl",
		}
		if site != "userinfo" {
			// Userinfo answers for any token of the OP's; introspection only
			// to a client in the token's audience.
			cases["other audience"] = token(t, "other-app")
		}
		for name, tok := range cases {
			t.Run(site+" "+name, func(t *testing.T) {
				sim.ResetRequests()
				a := gw.get(t, site, tok)
				if a.status != http.StatusUnauthorized {
					t.Fatalf("status %d: %s", a.status, a.body)
				}
				if h := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, `Bearer realm="atlasgate", error="invalid_token"`) {
					t.Errorf("WWW-Authenticate = %q", h)
				}
				var body map[string]string
				if err := json.Unmarshal([]byte(a.body), &body); err != nil || body["error"] != "invalid_token" || body["message"] == "" {
					t.Errorf("body %s", a.body)
				}
				if strings.Contains(a.body, tok) {
					t.Error("the answer echoes the token")
				}
				if n := len(sim.RequestsTo(atlassim.HostSite)); n != 0 {
					t.Errorf("a refused request reached Atlassian (%d requests)", n)
				}
			})
		}
	}
	t.Run("gateway misconfigured", func(t *testing.T) {
		// The OP refuses the gateway's own credentials: not the caller's
		// fault, and no reason to let anyone in.
		a := gw.get(t, "wrong-secret", token(t, "app"))
		if a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, "authentication_unavailable") {
			t.Errorf("status %d: %s", a.status, a.body)
		}
	})
	t.Run("no token", func(t *testing.T) {
		a := gw.get(t, "basic", "")
		if a.status != http.StatusUnauthorized || a.header.Get("WWW-Authenticate") != `Bearer realm="atlasgate"` {
			t.Errorf("status %d, WWW-Authenticate %q", a.status, a.header.Get("WWW-Authenticate"))
		}
	})
}

// The admin API's test-token route shows the userinfo JSON, from which the
// operator picks the username attribute.
func TestTestTokenShowsClaims(t *testing.T) {
	tok := token(t, "app")
	body, _ := json.Marshal(map[string]string{"token": tok, "authenticator": "op-userinfo"})
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/atlasgate/test-token", gw.adminPort), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	for _, want := range []string{`"valid":true`, `"preferred_username":"svc-app"`, `"email":"svc-app@example.com"`, `"sub":"app"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("test-token answer lacks %s: %s", want, b)
		}
	}
}

// With the OP down, tokens the gateway has not verified yet get 503 JSON —
// never through.
func TestProviderDownIs503(t *testing.T) {
	fresh := map[string]string{}
	for _, site := range sites {
		fresh[site] = token(t, "app")
	}
	idp.stop()
	defer func() {
		if err := idp.restart(); err != nil {
			t.Fatalf("restarting the OP: %v", err)
		}
	}()
	for _, site := range sites {
		t.Run(site, func(t *testing.T) {
			sim.ResetRequests()
			a := gw.get(t, site, fresh[site])
			if a.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(a.body), &body); err != nil || body["error"] != "authentication_unavailable" {
				t.Errorf("body %s", a.body)
			}
			if n := len(sim.RequestsTo(atlassim.HostSite)); n != 0 {
				t.Errorf("a request that could not be authenticated reached Atlassian")
			}
		})
	}
}

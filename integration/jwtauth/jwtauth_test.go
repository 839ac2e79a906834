// Package jwtauth tests the jwt authenticator end to end: a real OpenID
// Provider (zitadel's op) issues JWT access tokens with the client credentials
// grant, and the real Caddy with atlasgate_auth and atlasgate_proxy forwards
// the calls it accepts to the Atlassian simulator.
package jwtauth

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
	_ "github.com/atlasgate/atlasgate/modules/authn/jwt"
)

var (
	sim     *atlassim.Sim
	idp     *provider
	workDir string
	caFile  string
)

const envAPIToken = "IT_JWT_ATLASSIAN_API_TOKEN"

func TestMain(m *testing.M) {
	os.Exit(itest.Main(m, itest.Options{
		Sim:    atlassim.Config{Seed: true},
		Name:   "jwt-it",
		CAFile: "atlassim-ca.pem",
		Env:    map[string]string{envAPIToken: atlassim.DemoAPIToken},
		Setup: func(h *itest.Harness) (err error) {
			sim, workDir, caFile = h.Sim, h.Dir, h.CAFile
			if idp, err = startProvider(); err != nil {
				return fmt.Errorf("starting OpenID Provider: %w", err)
			}
			h.Cleanup(idp.stop)
			return nil
		},
	}))
}

// gatewayConfig: the OP's tokens for the audience `atlasgate` are accepted;
// jira is the simulator's Cloud site. jwks_min_refetch is tiny so that the
// rotation step needs no waiting.
const gatewayConfig = `{
%s
	atlasgate {
		credential jira api_token {
			site %s
			email %s
			token {env.%s}
			trusted_ca_file %s
		}
		authenticator op jwt {
			preset oidc %s
			audience atlasgate
			jwks_min_refetch 1ms
		}
	}
}

http://127.0.0.1:%d {
	atlasgate_auth op
	atlasgate_proxy jira
}
`

type gateway struct{ port, adminPort int }

func (g gateway) caddyfile() string {
	return fmt.Sprintf(gatewayConfig, itest.GlobalOptions(g.adminPort, filepath.Join(workDir, "storage")),
		sim.URL(atlassim.HostSite), atlassim.DemoEmail, envAPIToken, caFile, idp.issuer, g.port)
}

func (g gateway) get(t *testing.T, token string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/rest/api/3/myself", g.port), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET via gateway: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func token(t *testing.T, client string) string {
	t.Helper()
	cc := clientcredentials.Config{
		ClientID: client, ClientSecret: opClients[client].secret,
		TokenURL: idp.issuer + "/oauth/token", Scopes: []string{"openid"},
	}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("client credentials grant for %s: %v", client, err)
	}
	if strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatalf("the OP issued an opaque access token, not a JWT")
	}
	return tok.AccessToken
}

// forge signs claims with the OP's current key, for tokens the OP would not
// issue (already expired).
func forge(t *testing.T, claims map[string]any) string {
	t.Helper()
	k := idp.storage.signingKey()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.key, KeyID: k.id}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func expectOK(t *testing.T, g gateway, tok string) {
	t.Helper()
	sim.ResetRequests()
	resp, body := g.get(t, tok)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if !strings.Contains(body, atlassim.DemoAccountID) {
		t.Errorf("the simulator did not answer for the injected account: %s", body)
	}
	reqs := sim.RequestsTo(atlassim.HostSite)
	if len(reqs) == 0 {
		t.Fatal("the simulator received no request")
	}
	rec := reqs[len(reqs)-1]
	if got, want := rec.Header.Get("Authorization"), basic(atlassim.DemoEmail, atlassim.DemoAPIToken); got != want {
		t.Errorf("Authorization at the simulator = %q, want the injected API token", got)
	}
	for name, vals := range rec.Header {
		for _, v := range vals {
			if strings.Contains(v, tok) || strings.Contains(v, tok[len(tok)-20:]) {
				t.Errorf("the client's token reached the simulator in %s", name)
			}
		}
	}
}

func expect401(t *testing.T, g gateway, tok, description string) {
	t.Helper()
	resp, body := g.get(t, tok)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401: %s", resp.StatusCode, body)
	}
	want := `Bearer realm="atlasgate", error="invalid_token", error_description="` + description + `"`
	if got := resp.Header.Get("WWW-Authenticate"); got != want {
		t.Errorf("WWW-Authenticate = %q, want %q", got, want)
	}
	if !strings.Contains(body, `"error":"invalid_token"`) || (tok != "" && strings.Contains(body, tok)) {
		t.Errorf("body = %s", body)
	}
}

// The steps share one gateway and one OP and run in order: the last one stops
// the OP.
func TestJWTAuthenticationThroughGateway(t *testing.T) {
	g := gateway{port: itest.FreePort(t), adminPort: itest.FreePort(t)}
	itest.MustLoad(t, g.caddyfile())
	valid := token(t, "app")

	t.Run("valid token reaches Atlassian as the injected credential", func(t *testing.T) {
		expectOK(t, g, valid)
		expectOK(t, g, valid) // again, from the verified-token cache
	})

	t.Run("invalid tokens get RFC 6750 401s", func(t *testing.T) {
		now := time.Now()
		expired := forge(t, map[string]any{"iss": idp.issuer, "aud": "atlasgate", "sub": "app",
			"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})
		expect401(t, g, expired, "token expired")
		ours := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"` + idp.issuer + `","sub":"x"}`))
		expect401(t, g, "eyJhbGciOiJSUzI1NiJ9."+ours+".c2ln", "token signature invalid")
		// A JWT that names no issuer of ours is no authenticator's: refused,
		// and never handed to an authenticator that does not own it.
		expect401(t, g, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "credential not accepted by this gateway")
		expect401(t, g, "garbage.with.dots", "malformed token")
		expect401(t, g, token(t, "other-app"), "token audience not accepted")
		resp, body := g.get(t, "")
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer realm="atlasgate"` {
			t.Errorf("no token: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	})

	t.Run("key rotation at the OP", func(t *testing.T) {
		hits := idp.jwksHits.Load()
		idp.storage.rotate()
		rotated := token(t, "app")
		expectOK(t, g, rotated)
		if n := idp.jwksHits.Load() - hits; n != 1 {
			t.Errorf("%d JWKS fetches for the new key, want 1", n)
		}
		expectOK(t, g, valid) // the old key is still published
	})

	t.Run("config reload keeps the keys", func(t *testing.T) {
		hits := idp.jwksHits.Load()
		cf := g.caddyfile() + "\n# reloaded\n"
		if status, body := itest.Reload(g.adminPort, cf); status != http.StatusOK {
			t.Fatalf("reload: %d %s", status, body)
		}
		expectOK(t, g, token(t, "app"))
		if n := idp.jwksHits.Load() - hits; n != 0 {
			t.Errorf("the reload caused %d JWKS fetches", n)
		}
	})

	t.Run("OP stopped", func(t *testing.T) {
		unused := token(t, "app") // issued, never shown to the gateway yet
		idp.stop()
		expectOK(t, g, valid)  // cached
		expectOK(t, g, unused) // a known key verifies it without the OP
		// A token of a key the gateway never saw cannot be checked now.
		idp.storage.rotate()
		unknownKey := forge(t, map[string]any{"iss": idp.issuer, "aud": "atlasgate", "sub": "app",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
		resp, body := g.get(t, unknownKey)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "authentication_unavailable") {
			t.Errorf("token of an unknown key with the OP down: %d %s", resp.StatusCode, body)
		}
		expect401(t, g, "garbage.with.dots", "malformed token")
	})
}

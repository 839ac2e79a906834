package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/integration/atlassim"
)

// Bad config fails validation with a message naming the field, and a reload
// that fails keeps the old config serving.
func TestBadConfigIsRejectedWithClearError(t *testing.T) {
	site := sim.URL(atlassim.HostSite)
	cases := []struct {
		name, credential, want string
	}{
		{"literal secret", "api_token {\n site " + site + "\n email a@b.c\n token ATATT3xliteral\n}", "token: must be an {env.NAME} or {file.PATH} placeholder"},
		{"unset variable", "api_token {\n site " + site + "\n email a@b.c\n token {env.IT_NOT_SET_ANYWHERE}\n}", "environment variable IT_NOT_SET_ANYWHERE is not set"},
		{"missing file", "bearer {\n site " + site + "\n token {file./nonexistent/pat}\n}", "token: cannot read file /nonexistent/pat"},
		{"cleartext site", "bearer {\n site http://jira.example.com\n token {env.IT_DC_PAT}\n}", "site: \"http://jira.example.com\" must be an https:// URL"},
		{"Cloud site with a path", "api_token {\n site https://acme.atlassian.net/wiki\n email a@b.c\n token {env.IT_DC_PAT}\n}", `site: "https://acme.atlassian.net/wiki" has a path, but an Atlassian Cloud site has none: write https://acme.atlassian.net`},
		{"missing email", "api_token {\n site " + site + "\n token {env.IT_DC_PAT}\n}", "email: required"},
		{"api_base without scoped", "api_token {\n site " + site + "\n email a@b.c\n token {env.IT_DC_PAT}\n api_base https://api.example.com\n}", "api_base: only applies to scoped tokens"},
		{"missing CA file", "bearer {\n site " + site + "\n token {env.IT_DC_PAT}\n trusted_ca_file /nonexistent/ca.pem\n}", "trusted_ca_files: open /nonexistent/ca.pem"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cf := "{\n atlasgate {\n  credential bad " + c.credential + "\n }\n}\n"
			err := caddy.Validate(mustConfig(t, adapt(t, cf)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
			if !strings.Contains(err.Error(), "bad") {
				t.Errorf("error does not name the credential: %v", err)
			}
			for _, secret := range []string{atlassim.DemoPAT, "ATATT3xliteral"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error holds a secret: %v", err)
				}
			}
		})
	}

	t.Run("unknown credential in handler", func(t *testing.T) {
		cf := "{\n atlasgate {\n  credential jira bearer {\n   site " + site + "\n   token {env.IT_DC_PAT}\n  }\n }\n}\n:0 {\n atlasgate_proxy jria\n}\n"
		err := caddy.Validate(mustConfig(t, adapt(t, cf)))
		if err == nil || !strings.Contains(err.Error(), `credential "jria" is not defined in the atlasgate app (defined: jira)`) {
			t.Fatalf("error = %v", err)
		}
	})

	t.Run("failed reload keeps serving", func(t *testing.T) {
		g := startGateway(t)
		bad := strings.Replace(g.caddyfile(), "token {env.IT_DC_PAT}", "token literal-pat", 1)
		status, msg := g.reload(bad)
		if status != http.StatusBadRequest || !strings.Contains(msg, "token: must be an {env.NAME} or {file.PATH} placeholder") {
			t.Fatalf("reload answered %d: %s", status, msg)
		}
		if strings.Contains(msg, "literal-pat") {
			t.Error("reload error echoes the secret")
		}
		resp, body := g.do(t, request{site: "jira-dc", path: "/rest/api/2/myself"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("after the failed reload: status %d: %s", resp.StatusCode, body)
		}
	})
}

func mustConfig(t testing.TB, js []byte) *caddy.Config {
	t.Helper()
	var cfg caddy.Config
	if err := caddyJSON(js, &cfg); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

// Neither the adapted config nor the admin API ever holds a secret.
func TestSecretsNeverInConfigOrAdminAPI(t *testing.T) {
	g := startGateway(t)
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/config/", g.adminPort))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(cfg), `"atlasgate"`) {
		t.Fatalf("admin config lacks the app: %s", cfg)
	}
	adapted := adapt(t, g.caddyfile())
	for _, secret := range []string{atlassim.DemoAPIToken, atlassim.DemoScopedToken, atlassim.DemoPAT, atlassim.DemoBitbucketAPIToken, atlassim.DemoBitbucketAccessToken} {
		if strings.Contains(string(cfg), secret) {
			t.Errorf("GET /config/ holds a secret")
		}
		if strings.Contains(string(adapted), secret) {
			t.Errorf("adapted config holds a secret")
		}
	}
}

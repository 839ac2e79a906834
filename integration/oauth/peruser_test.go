package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/credentials"
)

const bobAccount = "5c0bb0b0b0b0b0b0b0b0b0b1"

// Delegated credentials: every caller authorizes their own Atlassian account
// and their requests run as themselves.
func TestPerUserCredential(t *testing.T) {
	sim.AddUser(atlassim.User{AccountID: bobAccount, Email: "bob@example.com", DisplayName: "Bob Example", Username: "bob"})
	port, admin := itest.FreePort(t), itest.FreePort(t)
	cb := fmt.Sprintf("http://127.0.0.1:%d/atlasgate/oauth/callback", port)
	sim.AddRedirectURI(atlassim.DemoOAuthClientID, cb)
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	itest.MustLoad(t, fmt.Sprintf(`{
%s	atlasgate {
		encryption_key {env.IT_ENCRYPTION_KEY}
		credential mine oauth {
			client_id %s
			client_secret {env.IT_OAUTH_SECRET}
			scopes read:jira-user read:jira-work offline_access
			site %s
			callback_url %s
			authorize_url %s/authorize
			token_url %s/oauth/token
			api_base %s
			trusted_ca_file %s
			per_user
		}
	}
}

http://127.0.0.1:%d {
	basic_auth {
		alice %s
		bob %s
	}
	atlasgate_proxy mine
}
`, itest.GlobalOptions(admin, filepath.Join(dir, "storage-peruser")), atlassim.DemoOAuthClientID, sim.URL(atlassim.HostSite), cb,
		sim.URL(atlassim.HostAuth), sim.URL(atlassim.HostAuth), sim.URL(atlassim.HostAPI), ca, port, hash, hash))

	call := func(user string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/rest/api/3/myself", port), nil)
		req.SetBasicAuth(user, "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}

	// Before authorizing: a 403 with the link to authorize.
	status, body := call("alice")
	if status != http.StatusForbidden || body["error"] != "authorization_required" || !strings.HasSuffix(fmt.Sprint(body["link"]), "/atlasgate/oauth/authorize/mine") {
		t.Fatalf("unauthorized caller: %d %v", status, body)
	}

	cred := perUserCredential(t)
	authorizeAs(t, cred, "alice", atlassim.DemoAccountID)
	if status, body := call("alice"); status != 200 || body["accountId"] != atlassim.DemoAccountID {
		t.Fatalf("alice: %d %v", status, body)
	}
	if status, body := call("bob"); status != http.StatusForbidden {
		t.Fatalf("bob used alice's grant: %d %v", status, body)
	}
	authorizeAs(t, cred, "bob", bobAccount)
	if status, body := call("bob"); status != 200 || body["accountId"] != bobAccount {
		t.Fatalf("bob: %d %v", status, body)
	}
	if status, body := call("alice"); status != 200 || body["accountId"] != atlassim.DemoAccountID {
		t.Fatalf("alice after bob: %d %v", status, body)
	}
	if st := cred.Status(context.Background()); !st.PerUser || st.Users != 2 {
		t.Errorf("status: %+v", st)
	}
	sim.ConsentAs(atlassim.DemoAccountID)
}

func perUserCredential(t *testing.T) *credentials.OAuth {
	app, err := caddy.ActiveContext().AppIfConfigured("atlasgate")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := app.(*atlasgate.App).Credential("mine")
	return c.(*credentials.OAuth)
}

// authorizeAs consents as an Atlassian account and completes the callback as
// the gateway user (Caddy's {http.auth.user.id}).
func authorizeAs(t *testing.T, c *credentials.OAuth, gatewayUser, account string) {
	t.Helper()
	sim.ConsentAs(account)
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: tlsConfig()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get(c.AuthCodeURL("s"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", gatewayUser)
	ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl)
	if err := c.CompleteAuthorization(ctx, loc.Query().Get("code")); err != nil {
		t.Fatalf("authorizing %s: %v", gatewayUser, err)
	}
	// Without a caller, a per-user credential cannot be authorized.
	if err := c.CompleteAuthorization(context.Background(), "x"); err == nil {
		t.Error("a per-user grant was stored without a caller")
	}
}

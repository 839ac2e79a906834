package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
)

// The 503 of a credential nobody has authorized carries a link that, in the
// demo.Caddyfile layout (`handle /atlasgate/oauth/*` for the console,
// `handle` for the proxy), opens the console's confirmation page — not the
// proxy, which would send it to Jira — and that page's button starts the flow.
func TestUnauthorizedAnswerLinksToConsent(t *testing.T) {
	other := itest.FreePort(t)
	extra := fmt.Sprintf(`		credential jira-later oauth {
			client_id %s
			client_secret {env.IT_CONSOLE_OAUTH_SECRET}
			scopes read:jira-user offline_access
			site %s
			callback_url %s
			authorize_url %s/authorize
			token_url %s/oauth/token
			api_base %s
			trusted_ca_file %s
		}
`, atlassim.DemoOAuthClientID, sim.URL(atlassim.HostSite), gw.callbackURL(), sim.URL(atlassim.HostAuth),
		sim.URL(atlassim.HostAuth), sim.URL(atlassim.HostAPI), dir+"/ca.pem")
	cf := gw.caddyfile()
	cf = strings.Replace(cf, "\t\tcredential jira-dc bearer {", extra+"\t\tcredential jira-dc bearer {", 1)
	cf += fmt.Sprintf("\nhttp://127.0.0.1:%d {\n\tatlasgate_proxy jira-later\n}\n", other)
	if status, body := itest.Reload(gw.admin, cf); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	defer func() {
		if status, body := itest.Reload(gw.admin, gw.caddyfile()); status != http.StatusOK {
			t.Fatalf("restoring the config: %d %s", status, body)
		}
	}()

	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/rest/api/3/myself", other), nil)
	res := do(t, req)
	var answer struct{ Error, Link, Remedy string }
	if err := json.Unmarshal([]byte(res.body), &answer); err != nil || res.status != http.StatusServiceUnavailable {
		t.Fatalf("unauthorized credential: %d %s", res.status, res.body)
	}
	if want := gw.base() + prefix + "/authorize/jira-later"; answer.Link != want || !strings.Contains(answer.Remedy, want) {
		t.Fatalf("link %q, remedy %q; want %s", answer.Link, answer.Remedy, want)
	}

	// Following the link (as the console's user) shows the confirmation page
	// and changes nothing.
	page := do(t, consoleRequest(http.MethodGet, strings.TrimPrefix(answer.Link, gw.base()), nil))
	if page.status != http.StatusOK || page.header.Get("Set-Cookie") != "" {
		t.Fatalf("the link: %d %s", page.status, page.body)
	}
	action := regexp.MustCompile(`<form method="post" action="([^"]+)">`).FindStringSubmatch(page.body)
	if action == nil || action[1] != prefix+"/authorize/jira-later" {
		t.Fatalf("no Authorize form posting to the credential: %s", page.body)
	}
	// Pressing its button starts the flow at the authorization server.
	loc, _ := startAuthorize(t, "jira-later")
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != sim.URL(atlassim.HostAuth)+"/authorize" {
		t.Errorf("the button sent the browser to %s", loc)
	}
}

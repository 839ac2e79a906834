package oauth

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/atlasgate/atlasgate/integration/atlassim"
)

// A grant revoked while its access token is still valid for the gateway: the
// very first request after it gets the gateway's 503 naming the credential
// and what to do, not Atlassian's bare 401 (issue 9, defect 6).
func TestRevokedGrantFirstRequest(t *testing.T) {
	g := start(t)
	authorize(t)
	if status, body := g.get(t, "/rest/api/3/myself"); status != 200 {
		t.Fatalf("%d %v", status, body)
	}
	sim.RevokeGrant(atlassim.DemoOAuthClientID, atlassim.DemoAccountID)
	defer authorize(t)
	status, body := g.get(t, "/rest/api/3/myself")
	if status != http.StatusServiceUnavailable || body["credential"] != "jira" ||
		!strings.Contains(fmt.Sprint(body["message"]), "authorized again") {
		t.Fatalf("first request after revocation: %d %v", status, body)
	}
}

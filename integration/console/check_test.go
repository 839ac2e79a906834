package console

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/modules/console"
)

// "Check now" asks Atlassian with the credential and the console's row shows
// the answer: a PAT nobody has used yet becomes "working (200 …)". A post
// from another site is refused, like Authorize.
func TestCheckNowShowsAtlassiansAnswer(t *testing.T) {
	page := do(t, consoleRequest(http.MethodGet, prefix+"/", nil))
	if !strings.Contains(page.body, `id="check-jira-dc"`) {
		t.Fatalf("no Check now button for jira-dc:\n%s", page.body)
	}
	sim.ResetRequests()

	evil := consoleRequest(http.MethodPost, prefix+"/check/jira-dc", nil)
	evil.Header.Set("Origin", "https://evil.example")
	if res := do(t, evil); res.status != http.StatusForbidden {
		t.Fatalf("cross-origin check: %d", res.status)
	}
	if n := len(sim.RequestsTo(atlassim.HostJiraDC)); n != 0 {
		t.Fatalf("a cross-origin check reached Atlassian (%d requests)", n)
	}

	req := consoleRequest(http.MethodPost, prefix+"/check/jira-dc", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res := do(t, req)
	if res.status != http.StatusSeeOther || res.header.Get("Location") != prefix+"/#credential-jira-dc" {
		t.Fatalf("check: %d %q %s", res.status, res.header.Get("Location"), res.body)
	}
	page = do(t, consoleRequest(http.MethodGet, prefix+"/", nil))
	i := strings.Index(page.body, `id="upstream-jira-dc"`)
	if i < 0 || !strings.Contains(page.body[i:min(i+200, len(page.body))], "working (200 at ") {
		t.Fatalf("the row does not show the check's answer:\n%s", page.body)
	}
	calls := sim.RequestsTo(atlassim.HostJiraDC)
	if len(calls) != 1 || calls[0].Path != "/rest/api/2/myself" {
		t.Fatalf("the check sent %+v", calls)
	}
	_, metrics := adminGet(t, "/metrics")
	for _, want := range []string{
		`atlasgate_credential_upstream{credential="jira-dc",verdict="working"} 1`,
		`atlasgate_credential_upstream{credential="jira-dc",verdict="rejected"} 0`,
		`atlasgate_credential_upstream_requests_last_hour{credential="jira-dc"} 1`,
		`atlasgate_credential_upstream_errors_last_hour{credential="jira-dc"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// An authorized OAuth credential says when its access token is next refreshed:
// refresh_before (5 minutes by default) ahead of its expiry.
func TestNextRefreshIsShown(t *testing.T) {
	authorizeOverHTTP(t)
	status, body := adminGet(t, "/atlasgate/credentials")
	var list []console.CredentialStatus
	if err := json.Unmarshal([]byte(body), &list); status != 200 || err != nil || len(list) == 0 || list[0].OAuth == nil {
		t.Fatalf("GET /atlasgate/credentials: %d %v %s", status, err, body)
	}
	o := list[0].OAuth
	if o.AccessExpiry.IsZero() || !o.NextRefresh.Equal(o.AccessExpiry.Add(-5*time.Minute)) {
		t.Fatalf("next_refresh %s, access token expiry %s", o.NextRefresh, o.AccessExpiry)
	}
	page := do(t, consoleRequest(http.MethodGet, prefix+"/", nil))
	if !strings.Contains(page.body, `id="refresh-jira">`+o.NextRefresh.UTC().Format("2006-01-02 15:04 MST")+`<`) {
		t.Fatalf("the console does not show the next refresh:\n%s", page.body)
	}
}

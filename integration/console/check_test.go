package console

import (
	"net/http"
	"strings"
	"testing"

	"github.com/atlasgate/atlasgate/integration/atlassim"
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
}

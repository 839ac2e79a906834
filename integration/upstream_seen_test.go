package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

// A static credential has no state of its own, but what Atlassian answers
// through it does: a revoked token is "rejected with 401 since …", a burst
// limit is "rate_limited" with the headroom Atlassian reported, and the last
// hour's requests and errors are counted — in GET /atlasgate/credentials (the
// same data as the console, the CLI and the metrics).
func TestAdminShowsWhatAtlassianLastAnswered(t *testing.T) {
	os.Setenv("IT_REVOKED_PAT", "revoked-personal-access-token")
	g := newGateway(t)
	g.params["ExtraCredentials"] = fmt.Sprintf(`		credential seen-revoked bearer {
			site %s
			token {env.IT_REVOKED_PAT}
			trusted_ca_file %s
		}
		credential seen-limited api_token {
			site %s
			email %s
			token {env.IT_ATLASSIAN_API_TOKEN}
			trusted_ca_file %s
		}
`, sim.URL(atlassim.HostJiraDC), caFile, sim.URL(atlassim.HostSite), atlassim.DemoEmail, caFile)
	g.params["Sites"] = append(append([]string{}, credentialSites...), "seen-revoked", "seen-limited")
	if err := g.load(); err != nil {
		t.Fatal(err)
	}
	seen := func(name string) atlasgate.UpstreamSeen {
		t.Helper()
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/atlasgate/credentials", g.adminPort))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var list []struct {
			Name     string                 `json:"name"`
			Upstream atlasgate.UpstreamSeen `json:"upstream"`
		}
		if err := json.Unmarshal(b, &list); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		for _, c := range list {
			if c.Name == name {
				return c.Upstream
			}
		}
		t.Fatalf("%s not listed: %s", name, b)
		return atlasgate.UpstreamSeen{}
	}

	if u := seen("seen-revoked"); u.Verdict != "" || u.RequestsLastHour != 0 {
		t.Fatalf("before any request: %+v", u)
	}
	before := time.Now().Add(-time.Second)
	for range 2 {
		if resp, body := g.do(t, request{site: "seen-revoked", path: "/rest/api/2/myself"}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("revoked PAT: status %d: %s", resp.StatusCode, body)
		}
	}
	u := seen("seen-revoked")
	if u.Verdict != atlasgate.UpstreamRejected || u.LastStatus != 401 || u.Since.Before(before) ||
		u.RequestsLastHour != 2 || u.ErrorsLastHour != 2 {
		t.Errorf("revoked PAT: %+v", u)
	}

	sim.AddRateLimit(atlassim.RateLimit{Host: atlassim.HostSite, PathPrefix: "/rest/api/3/search", Count: 1, Headers: true})
	if resp, body := g.do(t, request{site: "seen-limited", path: "/rest/api/3/search/jql?jql=x"}); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("rate limit: status %d: %s", resp.StatusCode, body)
	}
	u = seen("seen-limited")
	if u.Verdict != atlasgate.UpstreamRateLimited || u.RateLimitRemaining == nil || *u.RateLimitRemaining != 0 || !u.RateLimitNearLimit {
		t.Errorf("after a 429: %+v", u)
	}
	if resp, body := g.do(t, request{site: "seen-limited", path: "/rest/api/3/myself"}); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	u = seen("seen-limited")
	if u.Verdict != atlasgate.UpstreamWorking || u.LastStatus != 200 || u.RequestsLastHour != 2 || u.ErrorsLastHour != 1 {
		t.Errorf("after a 200: %+v", u)
	}
	if v := seen("seen-revoked").Verdict; v != atlasgate.UpstreamRejected {
		t.Errorf("another credential's answers changed seen-revoked to %q", v)
	}
}

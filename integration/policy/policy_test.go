package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/modules/policy"
)

var (
	dev = map[string]string{"X-Test-User": "alice", "X-Test-Groups": "dev"}
	ops = map[string]string{"X-Test-User": "ops"}
)

// Every path trick goes through the real Caddy server to the simulator: the
// request either reaches Atlassian on exactly the canonical path its rule
// allows, or it is refused before anything reaches Atlassian. The explain
// route gives the same answer for each.
func TestPathBypassTable(t *testing.T) {
	g := start(t)
	const allowed = "/rest/api/3/issue/DEMO-1"
	cases := []struct {
		name, target string
		status       int
		reached      string            // the path the simulator must see; "" for none
		as           map[string]string // the caller; default dev
	}{
		{"plain", "/rest/api/3/issue/DEMO-1", 200, allowed, nil},
		{"duplicate slashes", "//rest//api/3/issue//DEMO-1", 200, allowed, nil},
		{"dot segment", "/rest/api/3/issue/./DEMO-1", 200, allowed, nil},
		{"encoded dot segment", "/rest/api/3/issue/%2e/DEMO-1", 200, allowed, nil},
		{"encoded letter", "/rest/api/3/issue/%44EMO-1", 200, allowed, nil},
		{"dot-dot out of the allowed tree", "/rest/api/3/issue/../myself", 403, "", nil},
		{"dot-dot back into it", "/rest/api/3/myself/../issue/DEMO-1", 200, allowed, nil},
		{"encoded dot-dot", "/rest/api/3/issue/%2e%2e/myself", 403, "", nil},
		{"mixed-case encoded dot-dot", "/rest/api/3/issue/%2E%2e/myself", 403, "", nil},
		{"half-encoded dot-dot", "/rest/api/3/issue/.%2E/myself", 403, "", nil},
		{"dot-dot into a denied path", "/rest/api/3/issue/../admin/x", 403, "", nil},
		{"dot-dot above the root", "/rest/api/3/issue/../../../../../etc/passwd", 400, "", nil},
		{"encoded slash", "/rest/api/3/issue/..%2fmyself", 400, "", nil},
		{"encoded slash, upper case", "/rest/api/3/issue/..%2Fmyself", 400, "", nil},
		{"encoded backslash", "/rest/api/3/issue/..%5cmyself", 400, "", nil},
		{"backslash", `/rest/api/3/issue/..\myself`, 400, "", nil},
		{"matrix parameter", "/rest/api/3/issue/DEMO-1;x=y/../../myself", 400, "", nil},
		{"encoded semicolon", "/rest/api/3/issue/DEMO-1%3b/../../myself", 400, "", nil},
		{"double encoding", "/rest/api/3/issue/%252e%252e/myself", 400, "", nil},
		{"overlong UTF-8 dot", "/rest/api/3/issue/%c0%ae%c0%ae/myself", 400, "", nil},
		{"overlong UTF-8 slash", "/rest/api/3/issue/..%c0%afmyself", 400, "", nil},
		{"invalid UTF-8", "/rest/api/3/issue/%ff", 400, "", nil},
		{"NUL", "/rest/api/3/issue/DEMO-1%00", 400, "", nil},
		{"case trick on a denied path", "/REST/API/3/ADMIN/x", 403, "", nil},
		{"case trick on another path", "/REST/API/3/MYSELF", 403, "", nil},
		{"case variant of an allowed path", "/Rest/Api/3/Issue/DEMO-1", 200, "/Rest/Api/3/Issue/DEMO-1", nil},
		// Unicode that an NFKC-normalising upstream reads as path syntax.
		{"fullwidth dot-dot", "/rest/api/3/issue/%EF%BC%8E%EF%BC%8E/myself", 400, "", nil},
		{"two-dot leader", "/rest/api/3/issue/%E2%80%A5/myself", 400, "", nil},
		{"one-dot leaders", "/rest/api/3/issue/%E2%80%A4%E2%80%A4/myself", 400, "", nil},
		{"small full stops", "/rest/api/3/issue/%EF%B9%92%EF%B9%92/myself", 400, "", nil},
		{"fullwidth solidus", "/rest/api/3/issue/DEMO-1%EF%BC%8F..%EF%BC%8F..%EF%BC%8Fmyself", 400, "", nil},
		{"fullwidth reverse solidus", "/rest/api/3/issue/DEMO-1%EF%BC%BC..%EF%BC%BCmyself", 400, "", nil},
		// An exact deny rule holds for every form Jersey routes to the same
		// resource (ops may call anything but /rest/api/3/myself).
		{"exact deny", "/rest/api/3/myself", 403, "", ops},
		{"exact deny, trailing slash", "/rest/api/3/myself/", 403, "", ops},
		{"exact deny, two trailing slashes", "/rest/api/3/myself//", 403, "", ops},
		{"exact deny, dot", "/rest/api/3/myself/.", 403, "", ops},
		{"exact deny, dot slash", "/rest/api/3/myself/./", 403, "", ops},
		{"exact deny, encoded dot", "/rest/api/3/myself/%2e", 403, "", ops},
		{"exact deny, dot-dot and slash", "/rest/api/3/issue/../myself/", 403, "", ops},
		{"exact deny, case and slash", "/REST/Api/3/MySelf/", 403, "", ops},
		{"exact deny leaves the rest", "/rest/api/3/issue/DEMO-1/", 200, "/rest/api/3/issue/DEMO-1/", ops},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			who := c.as
			if who == nil {
				who = dev
			}
			sim.ResetRequests()
			resp, body := g.raw(t, "GET", c.target, who)
			if resp.StatusCode != c.status && !(c.reached != "" && resp.StatusCode == 404 && c.reached != allowed) {
				t.Fatalf("%s: status %d, want %d: %s", c.target, resp.StatusCode, c.status, body)
			}
			got := sim.RequestsTo(atlassim.HostSite)
			if c.reached == "" {
				if len(got) != 0 {
					t.Fatalf("%s reached Atlassian as %q", c.target, got[0].RawPath)
				}
				if !strings.Contains(body, `"error"`) {
					t.Errorf("no JSON error body: %s", body)
				}
			} else if len(got) != 1 || got[0].Path != c.reached || got[0].RawPath != c.reached {
				t.Fatalf("%s: Atlassian received %+v, want exactly %q", c.target, paths(got), c.reached)
			}
			// The explain route answers as the gateway did.
			ex := explainWithHeaders(t, g, policy.ExplainRequest{Method: "GET", Path: c.target}, who)
			if ex.Status != c.status {
				t.Errorf("explain says %d, the gateway answered %d: %+v", ex.Status, c.status, ex)
			}
		})
	}
}

func paths(rs []atlassim.Recorded) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.RawPath)
	}
	return out
}

func TestDecisionsAndExplain(t *testing.T) {
	g := start(t)
	cases := []struct {
		name        string
		method      string
		path        string
		hdr         map[string]string
		status      int
		rule, code  string
		credential  string
		principalOK bool
	}{
		{"dev allowed", "GET", "/rest/api/3/issue/DEMO-1", dev, 200, "devs", "", "jira", true},
		{"team credential by header", "GET", "/rest/api/3/issue/DEMO-1", map[string]string{"X-Test-User": "alice", "X-Test-Groups": "dev", "X-Atlasgate-Credential": "jira-team-b"}, 200, "devs", "", "jira-team-b", true},
		{"credential not permitted", "GET", "/rest/api/3/issue/DEMO-1", map[string]string{"X-Test-User": "alice", "X-Test-Groups": "dev", "X-Atlasgate-Credential": "jira-held"}, 403, "devs", "credential_not_permitted", "", false},
		{"deny rule", "GET", "/rest/api/3/admin", dev, 403, "no-admin", "access_denied", "", false},
		{"no rule", "GET", "/rest/api/3/myself", map[string]string{"X-Test-User": "mallory"}, 403, "no rule matched", "no_rule_matched", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim.ResetRequests()
			resp, body := g.raw(t, c.method, c.path, c.hdr)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if c.status == 403 {
				var b map[string]string
				if err := json.Unmarshal([]byte(body), &b); err != nil || b["error"] != c.code || b["rule"] != c.rule || b["reason"] == "" {
					t.Errorf("denial body %s", body)
				}
			}
			if c.principalOK && sim.RequestsTo(atlassim.HostSite)[0].Principal != atlassim.DemoAccountID {
				t.Errorf("no credential injected")
			}
			req := policy.ExplainRequest{Method: c.method, Path: c.path, Headers: map[string]string{}}
			for k, v := range c.hdr {
				if k == "X-Test-User" || k == "X-Test-Groups" {
					continue
				}
				req.Headers[k] = v
			}
			// The caller as the authenticator saw it: explain authenticates
			// the request's headers the way the gateway does.
			req.Identity = nil
			ex := explainWithHeaders(t, g, req, c.hdr)
			if ex.Status != c.status || ex.Decision == nil || ex.Decision.Credential != c.credential {
				t.Errorf("explain: %+v (decision %+v)", ex, ex.Decision)
			}
			if c.status == 200 && ex.Decision.Rule != c.rule {
				t.Errorf("explain rule %q, want %q", ex.Decision.Rule, c.rule)
			}
		})
	}
}

func aliceDev() *authnIdentity {
	return &authnIdentity{Authenticator: "tester", Kind: "test", User: "alice", Groups: []string{"dev"}}
}

func explain(t *testing.T, g *gateway, req policy.ExplainRequest) policy.Explanation {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/atlasgate/explain", g.adminPort), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []policy.Explanation
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out) != 1 {
		t.Fatalf("explain: status %d, %v, %d answers", resp.StatusCode, err, len(out))
	}
	return out[0]
}

// explainWithHeaders gives the identity as the test authenticator would derive
// it from the headers.
func explainWithHeaders(t *testing.T, g *gateway, req policy.ExplainRequest, hdr map[string]string) policy.Explanation {
	if u := hdr["X-Test-User"]; u != "" {
		id := &authnIdentity{Authenticator: "tester", Kind: "test", User: u}
		if gr := hdr["X-Test-Groups"]; gr != "" {
			id.Groups = strings.Split(gr, ",")
		}
		req.Identity = id
	}
	return explain(t, g, req)
}

func TestGatewayRateLimit(t *testing.T) {
	g := start(t)
	base := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	var offset atomic.Int64
	defer gclock.Set(func() time.Time { return base.Add(time.Duration(offset.Load())) })()
	l1 := map[string]string{"X-Test-User": "limited-1"}
	for i := 0; i < 2; i++ {
		if resp, body := g.raw(t, "GET", "/rest/api/3/myself", l1); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	sim.ResetRequests()
	resp, body := g.raw(t, "GET", "/rest/api/3/myself", l1)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "30" || !strings.Contains(body, `"error":"rate_limited"`) {
		t.Fatalf("third request: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := len(sim.RequestsTo(atlassim.HostSite)); n != 0 {
		t.Errorf("a rate-limited request reached Atlassian (%d)", n)
	}
	// Another identity under the same rule is not affected.
	if resp, body := g.raw(t, "GET", "/rest/api/3/myself", map[string]string{"X-Test-User": "limited-2"}); resp.StatusCode != 200 {
		t.Errorf("limited-2 limited by limited-1's traffic: %d %s", resp.StatusCode, body)
	}
	offset.Store(int64(31 * time.Second))
	if resp, body := g.raw(t, "GET", "/rest/api/3/myself", l1); resp.StatusCode != 200 {
		t.Errorf("after Retry-After: %d %s", resp.StatusCode, body)
	}
}

// After Atlassian's 429 with Retry-After, the gateway passes it on, then holds
// the credential back without contacting Atlassian until Retry-After passes.
func TestUpstreamHoldBack(t *testing.T) {
	g := start(t)
	base := time.Now()
	var offset atomic.Int64
	defer gclock.Set(func() time.Time { return base.Add(time.Duration(offset.Load())) })()
	held := map[string]string{"X-Test-User": "held"}

	// A per-issue limit concerns one issue: it never holds the credential back.
	sim.AddRateLimit(atlassim.RateLimit{Host: atlassim.HostSite, PathPrefix: "/rest/api/3/issue", Count: 1, RetryAfter: 30, Headers: true, Reason: "jira-per-issue-on-write"})
	if resp, _ := g.raw(t, "GET", "/rest/api/3/issue/DEMO-1", held); resp.StatusCode != 429 {
		t.Fatalf("per-issue 429 did not pass through: %d", resp.StatusCode)
	}
	if resp, body := g.raw(t, "GET", "/rest/api/3/myself", held); resp.StatusCode != 200 {
		t.Fatalf("a per-issue limit held the credential back: %d %s", resp.StatusCode, body)
	}

	sim.AddRateLimit(atlassim.RateLimit{Host: atlassim.HostSite, PathPrefix: "/rest/api/3/search", Count: 1, RetryAfter: 30, Headers: true})
	resp, body := g.raw(t, "GET", "/rest/api/3/search/jql?jql=x", held)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "30" || resp.Header.Get("RateLimit-Reason") == "" || strings.Contains(body, "upstream_rate_limited") {
		t.Fatalf("Atlassian's 429 did not pass through unchanged: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	sim.ResetRequests()
	offset.Store(int64(10 * time.Second))
	resp, body = g.raw(t, "GET", "/rest/api/3/myself", held)
	if resp.StatusCode != 429 || !strings.Contains(body, `"error":"upstream_rate_limited"`) || !strings.Contains(body, `"credential":"jira-held"`) {
		t.Fatalf("held request: %d %s", resp.StatusCode, body)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra != 20 {
		t.Errorf("Retry-After %q, want 20", resp.Header.Get("Retry-After"))
	}
	if n := len(sim.RequestsTo(atlassim.HostSite)); n != 0 {
		t.Fatalf("held credential's request reached Atlassian")
	}
	// Other credentials are not held.
	if resp, body := g.raw(t, "GET", "/rest/api/3/issue/DEMO-1", dev); resp.StatusCode != 200 {
		t.Errorf("another credential was held back: %d %s", resp.StatusCode, body)
	}
	offset.Store(int64(31 * time.Second))
	if resp, body := g.raw(t, "GET", "/rest/api/3/myself", held); resp.StatusCode != 200 {
		t.Errorf("after Retry-After: %d %s", resp.StatusCode, body)
	}
}

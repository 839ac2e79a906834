// Package oauth tests OAuth 2.0 (3LO) credentials end to end: the real
// in-process Caddy with atlasgate, the Atlassian simulator's authorization
// server with rotating refresh tokens, and a clock both share.
package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/credentials"
)

var (
	sim   *atlassim.Sim
	clock *atlassim.ManualClock
	dir   string
	ca    string
)

func TestMain(m *testing.M) {
	clock = atlassim.NewManualClock(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	os.Exit(itest.Main(m, itest.Options{
		Sim:  atlassim.Config{Seed: true, Clock: clock.Now, AutoConsent: true},
		Name: "oauth",
		Env: map[string]string{
			"IT_OAUTH_SECRET":   atlassim.DemoOAuthClientSecret,
			"IT_ENCRYPTION_KEY": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
		},
		Setup: func(h *itest.Harness) error {
			sim, dir, ca = h.Sim, h.Dir, h.CAFile
			h.Cleanup(gclock.Set(clock.Now))
			return nil
		},
	}))
}

type gateway struct{ port, admin int }

func (g gateway) caddyfile() string {
	cb := fmt.Sprintf("http://127.0.0.1:%d/atlasgate/oauth/callback", g.port)
	return fmt.Sprintf(`{
%s	atlasgate {
		encryption_key {env.IT_ENCRYPTION_KEY}
		credential jira oauth {
			client_id %s
			client_secret {env.IT_OAUTH_SECRET}
			scopes read:jira-user read:jira-work write:jira-work read:confluence-content.all read:page:confluence offline_access
			site %s
			callback_url %s
			authorize_url %s/authorize
			token_url %s/oauth/token
			api_base %s
			trusted_ca_file %s
		}
	}
}

http://127.0.0.1:%d {
	atlasgate_proxy jira
}
`, itest.GlobalOptions(g.admin, filepath.Join(dir, "storage")), atlassim.DemoOAuthClientID, sim.URL(atlassim.HostSite), cb,
		sim.URL(atlassim.HostAuth), sim.URL(atlassim.HostAuth), sim.URL(atlassim.HostAPI), ca, g.port)
}

func start(t *testing.T) gateway {
	t.Helper()
	g := gateway{port: itest.FreePort(t), admin: itest.FreePort(t)}
	sim.AddRedirectURI(atlassim.DemoOAuthClientID, fmt.Sprintf("http://127.0.0.1:%d/atlasgate/oauth/callback", g.port))
	itest.MustLoad(t, g.caddyfile())
	return g
}

func (g gateway) get(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", g.port, path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, m
}

// credential returns the running config's OAuth credential.
func credential(t *testing.T) *credentials.OAuth {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("atlasgate")
	if err != nil {
		t.Fatal(err)
	}
	c, ok := app.(*atlasgate.App).Credential("jira")
	if !ok {
		t.Fatal("no credential jira")
	}
	return c.(*credentials.OAuth)
}

// authorize runs the consent flow against the simulator (auto-consent) and
// completes it as the console's callback does.
func authorize(t *testing.T) {
	t.Helper()
	c := credential(t)
	pool := sim.CACertPEM()
	_ = pool
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: tlsConfig()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get(c.AuthCodeURL("state-123"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("state") != "state-123" || loc.Query().Get("code") == "" {
		t.Fatalf("consent: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if err := c.CompleteAuthorization(context.Background(), loc.Query().Get("code")); err != nil {
		t.Fatalf("completing authorization: %v", err)
	}
}

func refreshCalls() int {
	n := 0
	for _, c := range sim.TokenCalls() {
		if c.GrantType == "refresh_token" {
			n++
		}
	}
	return n
}

func TestOAuthLifecycle(t *testing.T) {
	g := start(t)

	// Before anyone authorized: 503 naming the credential and the console.
	status, body := g.get(t, "/rest/api/3/myself")
	if status != http.StatusServiceUnavailable || body["credential"] != "jira" ||
		!strings.Contains(fmt.Sprint(body["remedy"]), "/atlasgate/oauth/authorize/jira") ||
		!strings.HasSuffix(fmt.Sprint(body["link"]), "/atlasgate/oauth/authorize/jira") {
		t.Fatalf("unauthorized: %d %v", status, body)
	}

	authorize(t)
	sim.ResetRequests()
	status, body = g.get(t, "/rest/api/3/myself")
	if status != 200 || body["accountId"] != atlassim.DemoAccountID {
		t.Fatalf("after authorization: %d %v", status, body)
	}
	rec := sim.RequestsTo(atlassim.HostAPI)
	if len(rec) != 1 || rec[0].Path != "/ex/jira/"+sim.CloudID()+"/rest/api/3/myself" || rec[0].AuthKind != "bearer" {
		t.Fatalf("reached Atlassian as %+v", rec)
	}
	if status, _ := g.get(t, "/wiki/api/v2/pages"); status != 200 {
		t.Errorf("confluence via 3LO: %d", status)
	}

	// 500 concurrent requests at the moment of expiry: one token call, no failure.
	sim.ResetTokenCalls()
	clock.Advance(time.Hour)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < 500; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/rest/api/3/myself", g.port))
			if err != nil {
				failed.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 || refreshCalls() != 1 {
		t.Fatalf("500 requests at expiry: %d failed, %d refresh calls (want 0 and 1)", failed.Load(), refreshCalls())
	}

	// Simulated months of daily use, with a reload now and then: no re-consent.
	for day := 1; day <= 120; day++ {
		clock.Advance(24 * time.Hour)
		if day%30 == 0 {
			if code, msg := itest.Reload(g.admin, g.caddyfile()+fmt.Sprintf("\n# day %d\n", day)); code != 200 {
				t.Fatalf("reload: %d %s", code, msg)
			}
		}
		if status, body := g.get(t, "/rest/api/3/issue/DEMO-1"); status != 200 {
			t.Fatalf("day %d: %d %v", day, status, body)
		}
	}
	if sim.GrantRevoked(atlassim.DemoOAuthClientID, atlassim.DemoAccountID) {
		t.Fatal("the grant was revoked")
	}

	// An idle credential is kept alive by the maintenance round, far inside
	// the 90-day inactivity limit.
	for day := 1; day <= 100; day++ {
		clock.Advance(24 * time.Hour)
		credential(t).Maintain(context.Background())
	}
	if status, body := g.get(t, "/rest/api/3/myself"); status != 200 {
		t.Fatalf("after 100 idle days: %d %v", status, body)
	}
	st := credential(t).Status(context.Background())
	if st.State != "ready" || len(st.Warnings) != 0 && !strings.Contains(st.Warnings[0], "365-day") {
		t.Errorf("status: %+v", st)
	}

	// The user revokes consent: the credential says so and stops refreshing.
	sim.RevokeGrant(atlassim.DemoOAuthClientID, atlassim.DemoAccountID)
	sim.ResetTokenCalls()
	clock.Advance(2 * time.Hour)
	status, body = g.get(t, "/rest/api/3/myself")
	if status != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(body["message"]), "authorized again") {
		t.Fatalf("revoked grant: %d %v", status, body)
	}
	for i := 0; i < 10; i++ {
		g.get(t, "/rest/api/3/myself")
	}
	if n := refreshCalls(); n != 1 {
		t.Errorf("%d refresh calls after invalid_grant, want 1 (no retry storm)", n)
	}
	if st := credential(t).Status(context.Background()); st.State != "needs_reauthorization" {
		t.Errorf("state = %s", st.State)
	}

	// Authorizing again brings it back.
	authorize(t)
	if status, _ := g.get(t, "/rest/api/3/myself"); status != 200 {
		t.Fatalf("after re-authorization: %d", status)
	}
}

// An access token Atlassian stopped accepting before its expiry (the gateway
// believes it valid) gets one refresh and one replay: the client never sees
// the 401.
func TestUpstream401RefreshesAndReplays(t *testing.T) {
	g := start(t)
	authorize(t)
	if status, body := g.get(t, "/rest/api/3/myself"); status != 200 {
		t.Fatalf("%d %v", status, body)
	}
	// A minute later for the gateway (a token refused right after a refresh
	// is refused for another reason, and not refreshed again), two hours
	// later for Atlassian.
	frozen := clock.Now().Add(time.Minute)
	defer gclock.Set(func() time.Time { return frozen })()
	sim.Advance(2 * time.Hour) // only Atlassian's clock moves: the token dies there
	defer sim.Advance(-2 * time.Hour)
	sim.ResetTokenCalls()
	sim.ResetRequests()
	status, body := g.get(t, "/rest/api/3/myself")
	if status != 200 || body["accountId"] != atlassim.DemoAccountID {
		t.Fatalf("after the upstream 401: %d %v", status, body)
	}
	if n := refreshCalls(); n != 1 {
		t.Errorf("%d refresh calls, want 1", n)
	}
	reqs := sim.RequestsTo(atlassim.HostAPI)
	if len(reqs) != 2 || reqs[0].Status != 401 || reqs[1].Status != 200 {
		t.Errorf("Atlassian saw %d requests, want a 401 then a 200", len(reqs))
	}
}

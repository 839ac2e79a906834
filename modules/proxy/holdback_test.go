package proxy

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/authn"
)

func TestHolds(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	resp := func(status int, h ...string) *http.Response {
		r := &http.Response{StatusCode: status, Header: http.Header{}}
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Set(h[i], h[i+1])
		}
		return r
	}
	cases := []struct {
		name string
		resp *http.Response
		held time.Duration // 0: no hold
	}{
		{"429 seconds", resp(429, "Retry-After", "30"), 30 * time.Second},
		{"503 seconds", resp(503, "Retry-After", "5"), 5 * time.Second},
		{"429 date", resp(429, "Retry-After", t0.Add(time.Minute).Format(http.TimeFormat)), time.Minute},
		{"capped", resp(429, "Retry-After", "3600"), 5 * time.Minute},
		{"no Retry-After", resp(429), 0},
		{"garbage Retry-After", resp(429, "Retry-After", "soon"), 0},
		{"per-issue limit", resp(429, "Retry-After", "30", "RateLimit-Reason", "jira-per-issue-on-write"), 0},
		{"200", resp(200, "Retry-After", "30"), 0},
		{"500", resp(500, "Retry-After", "30"), 0},
	}
	for _, c := range cases {
		h := &holds{until: map[string]hold{}}
		h.observe("jira", c.resp, t0, defaultHoldBackMax)
		hd, ok := h.get("jira", t0)
		if c.held == 0 {
			if ok {
				t.Errorf("%s: held until %v", c.name, hd.until)
			}
			continue
		}
		if !ok || hd.until.Sub(t0) != c.held || hd.status != c.resp.StatusCode {
			t.Errorf("%s: hold %+v %t, want %v", c.name, hd, ok, c.held)
		}
		if _, ok := h.get("other", t0); ok {
			t.Errorf("%s: another credential held", c.name)
		}
		if _, ok := h.get("jira", t0.Add(c.held)); ok {
			t.Errorf("%s: still held at Retry-After", c.name)
		}
	}
}

// fakeCred is a credential that is per user or shared.
type fakeCred struct {
	atlasgate.Credential
	perUser bool
}

func (c fakeCred) IsPerUser() bool { return c.perUser }

func callerCtx(authenticator, user string) context.Context {
	vars := map[string]any{authn.IdentityVar: &authn.Identity{Authenticator: authenticator, User: user}}
	return context.WithValue(context.Background(), caddyhttp.VarsCtxKey, vars)
}

// A per-user credential acts as each caller's own account, which Atlassian
// rate-limits on its own: alice's 429 holds back alice's grant, not bob's. A
// shared credential is one account: everyone is held back.
func TestHoldBackPerGrant(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	limited := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"30"}}}
	for _, perUser := range []bool{true, false} {
		h := &holds{until: map[string]hold{}}
		cred := fakeCred{perUser: perUser}
		alice, bob := callerCtx("corp", "alice"), callerCtx("corp", "bob")
		h.observe(holdName(alice, "jira-me", cred), limited, t0, time.Minute)
		if _, held := h.get(holdName(alice, "jira-me", cred), t0); !held {
			t.Errorf("per user %t: alice not held back after her 429", perUser)
		}
		if _, held := h.get(holdName(bob, "jira-me", cred), t0); held == perUser {
			t.Errorf("per user %t: bob held back %t", perUser, held)
		}
	}
}

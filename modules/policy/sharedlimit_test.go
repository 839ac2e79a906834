package policy

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/integration/redistest"
	"github.com/atlasgate/atlasgate/modules/authn"
	redisstorage "github.com/atlasgate/atlasgate/modules/storage/redis"
)

// redisReplica is a policy handler with its own Redis client, as one replica
// of a cluster would have.
func redisReplica(t *testing.T, addr string, replica int, onError string) *Handler {
	t.Helper()
	st := &redisstorage.Storage{Addresses: []string{addr}, KeyPrefix: "policy-test",
		LimitsOnError: onError, Timeout: caddy.Duration(time.Duration(replica+1) * time.Second)}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := st.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Cleanup(); cancel() })
	h, _, _ := testHandler(t, &Handler{
		Rules:           []Rule{{Name: "all", Paths: []string{"/*"}, Credential: "jira"}},
		IdentityRate:    &Rate{Requests: 5, Per: caddy.Duration(time.Hour)},
		CredentialRates: map[string]Rate{"jira": {Requests: 8, Per: caddy.Duration(time.Hour)}},
	})
	h.shared = st
	return h
}

// Three replicas on one Redis admit a caller's 5 requests an hour in total,
// not 5 each; the credential's limit counts everyone's requests.
func TestSharedRateLimitAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	replicas := []*Handler{redisReplica(t, srv.Addr, 0, ""), redisReplica(t, srv.Addr, 1, ""), redisReplica(t, srv.Addr, 2, "")}
	alice := &authn.Identity{Authenticator: "oidc", User: "alice"}
	bob := &authn.Identity{Authenticator: "oidc", User: "bob"}

	admitted := 0
	for i := range 12 {
		s := serve(t, replicas[i%3], alice, "GET", "/rest/api/3/myself", nil)
		switch s.w.Code {
		case http.StatusOK:
			admitted++
		case http.StatusTooManyRequests:
			var body errorBody
			_ = json.Unmarshal(s.w.Body.Bytes(), &body)
			if body.Error != "rate_limited" || s.w.Header().Get("Retry-After") == "" {
				t.Fatalf("refusal %s without Retry-After or code", s.w.Body)
			}
		default:
			t.Fatalf("status %d: %s", s.w.Code, s.w.Body)
		}
	}
	if admitted != 5 {
		t.Fatalf("3 replicas admitted %d of alice's requests, want 5 (her limit, shared)", admitted)
	}
	// Bob has his own identity bucket but shares the credential's: 8 - 5 = 3 left.
	admitted = 0
	for i := range 6 {
		s := serve(t, replicas[i%3], bob, "GET", "/rest/api/3/myself", nil)
		if s.w.Code == http.StatusOK {
			admitted++
		} else if s.w.Code == http.StatusTooManyRequests {
			var body errorBody
			_ = json.Unmarshal(s.w.Body.Bytes(), &body)
			if body.Credential != "jira" {
				t.Fatalf("bob refused for %q, want the credential's limit", body.Reason)
			}
		}
	}
	if admitted != 3 {
		t.Fatalf("bob got %d requests through, want 3 (the credential's 8 minus alice's 5)", admitted)
	}
}

// Redis goes away mid-test: failing open, each replica falls back to its own
// buckets (limited, not unlimited); failing closed, rate-limited requests get
// 503 JSON. Redis back, shared limiting resumes by itself.
func TestSharedRateLimitRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	open := redisReplica(t, srv.Addr, 0, "open")
	closed := redisReplica(t, srv.Addr, 1, "closed")
	carol := &authn.Identity{Authenticator: "oidc", User: "carol"}
	if s := serve(t, open, carol, "GET", "/rest/api/3/myself", nil); s.w.Code != http.StatusOK {
		t.Fatalf("before the outage: %d", s.w.Code)
	}

	srv.Stop()
	admitted, refused := 0, 0
	for range 7 {
		switch s := serve(t, open, carol, "GET", "/rest/api/3/myself", nil); s.w.Code {
		case http.StatusOK:
			admitted++
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("fail open answered %d: %s", s.w.Code, s.w.Body)
		}
	}
	if admitted != 5 || refused != 2 {
		t.Fatalf("fail open with Redis down: %d admitted, %d refused; want the replica's own 5, then 429", admitted, refused)
	}
	s := serve(t, closed, carol, "GET", "/rest/api/3/myself", nil)
	var body errorBody
	_ = json.Unmarshal(s.w.Body.Bytes(), &body)
	if s.w.Code != http.StatusServiceUnavailable || body.Error != "rate_limit_unavailable" || s.w.Header().Get("Retry-After") == "" {
		t.Fatalf("fail closed with Redis down: %d %s", s.w.Code, s.w.Body)
	}

	srv.Restart()
	// Redis is back (with carol's 1 shared request recorded): the closed
	// replica admits again, from the shared bucket.
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := serve(t, closed, carol, "GET", "/rest/api/3/myself", nil)
		if s.w.Code == http.StatusOK {
			break
		}
		if s.w.Code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after Redis restarted: %d %s", s.w.Code, s.w.Body)
		}
		time.Sleep(50 * time.Millisecond) // waiting for the client to reconnect
	}
	admitted = 1
	for range 6 {
		if s := serve(t, closed, carol, "GET", "/rest/api/3/myself", nil); s.w.Code == http.StatusOK {
			admitted++
		}
	}
	if admitted != 4 {
		t.Fatalf("after the restart the shared bucket admitted %d, want 4 (5 minus the one before the outage)", admitted)
	}
}

// BenchmarkRateLimit is the cost of one rate-limited request's check: in
// process, and on Redis (one script round trip to a local redis-server),
// with a rule rate, an identity rate and a credential rate (three buckets).
func BenchmarkRateLimit(b *testing.B) {
	srv := redistest.Start(b)
	h := &Handler{
		Rules:           []Rule{{Name: "all", Paths: []string{"/*"}, Credential: "jira", Rate: &Rate{Requests: 1 << 30}}},
		IdentityRate:    &Rate{Requests: 1 << 30},
		CredentialRates: map[string]Rate{"jira": {Requests: 1 << 30}},
	}
	if err := h.setup(nil); err != nil {
		b.Fatal(err)
	}
	h.limiter = newLimiter()
	in := &Input{Identity: &authn.Identity{Authenticator: "oidc", User: "alice"}, Method: "GET", Path: "/rest/api/3/myself", Product: ProductJira, Header: http.Header{}}
	d := h.engine.decide(in)
	st := &redisstorage.Storage{Addresses: []string{srv.Addr}, KeyPrefix: "bench"}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := st.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	defer st.Cleanup()
	for _, c := range []struct {
		name   string
		shared SharedLimiter
	}{{"local", nil}, {"redis", st}} {
		b.Run(c.name, func(b *testing.B) {
			h.shared = c.shared
			for b.Loop() {
				in.Time = time.Now()
				if scope, _, why := h.limit(context.Background(), in, &d); scope != "" {
					b.Fatal(why)
				}
			}
		})
	}
}

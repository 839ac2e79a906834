package opaque

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/atlasgate/atlasgate/modules/authn"
)

const (
	testClientID = "atlas gate" // a space: RFC 6749 form-encodes Basic credentials
	testSecret   = "s3cr:et/+"
	envSecret    = "OPAQUE_TEST_CLIENT_SECRET"
)

func newIntrospection(t *testing.T, endpoint string, mod func(*Introspection)) *Introspection {
	t.Helper()
	t.Setenv(envSecret, testSecret)
	in := &Introspection{Endpoint: endpoint, ClientID: testClientID, ClientSecret: "{env." + envSecret + "}"}
	if mod != nil {
		mod(in)
	}
	mustProvision(t, in)
	return in
}

// introspectionIDP answers like an RFC 7662 endpoint, checking the client
// authentication the gateway should use; tokens maps token → response.
func introspectionIDP(t *testing.T, clientAuth string, tokens map[string]string) *idp {
	return newIDP(t, func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		user, pass, basic := r.BasicAuth()
		switch clientAuth {
		case "basic":
			// form-encoded, then Basic
			if !basic || user != "atlas+gate" || pass != "s3cr%3Aet%2F%2B" || r.PostForm.Has("client_secret") {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		case "post":
			if basic || r.PostForm.Get("client_id") != testClientID || r.PostForm.Get("client_secret") != testSecret {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		if r.PostForm.Get("token_type_hint") != "access_token" {
			http.Error(w, "missing hint", http.StatusBadRequest)
			return
		}
		body, ok := tokens[r.PostForm.Get("token")]
		if !ok {
			body = `{"active":false}`
		}
		jsonReply(http.StatusOK, body)(w, r)
	})
}

func TestIntrospectionIdentity(t *testing.T) {
	clk := fakeClock(t)
	exp := clk.t.Add(time.Hour).Unix()
	resp := fmt.Sprintf(`{"active":true,"scope":"read:jira write:jira","client_id":"app","username":"alice",
		"sub":"u-1","iss":"https://idp.example.com","aud":["atlasgate","other"],"exp":%d,
		"realm_access":{"roles":["dev","ops"]}}`, exp)
	const jwtShaped = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2ln"
	for _, auth := range []string{"basic", "post"} {
		t.Run(auth, func(t *testing.T) {
			p := introspectionIDP(t, auth, map[string]string{"opaque-1": resp, jwtShaped: resp})
			in := newIntrospection(t, p.URL, func(in *Introspection) {
				in.ClientAuth = auth
				in.GroupsClaim = "realm_access.roles"
				in.Audiences = []string{"atlasgate"}
				in.Issuer = "https://idp.example.com"
			})
			for _, tok := range []string{"opaque-1", jwtShaped} {
				id, err := in.Authenticate(bearer(tok))
				if err != nil {
					t.Fatalf("%s: %v", tok, err)
				}
				if id.Kind != "introspection" || id.User != "alice" || id.Subject != "u-1" || id.Issuer != "https://idp.example.com" {
					t.Errorf("identity = %+v", id)
				}
				if strings.Join(id.Groups, ",") != "dev,ops" || strings.Join(id.Scopes, " ") != "read:jira write:jira" {
					t.Errorf("groups %v scopes %v", id.Groups, id.Scopes)
				}
				if id.ExpiresAt.Unix() != exp || id.Claims["client_id"] != "app" {
					t.Errorf("expires %v claims %v", id.ExpiresAt, id.Claims)
				}
			}
		})
	}
}

func TestIntrospectionRefusals(t *testing.T) {
	clk := fakeClock(t)
	future := clk.t.Add(time.Hour).Unix()
	for _, tc := range []struct {
		name, resp string
		mod        func(*Introspection)
		wantUser   string
		wantDesc   string
	}{
		{name: "inactive", resp: `{"active":false}`, wantDesc: "the token is not active"},
		{name: "username falls back to sub", resp: `{"active":true,"sub":"u-2"}`, wantUser: "u-2"},
		{name: "username preferred to sub", resp: `{"active":true,"sub":"u-2","username":"bob"}`, wantUser: "bob"},
		{name: "no username at all", resp: `{"active":true,"scope":"x"}`, wantDesc: "token lacks the username attribute"},
		{name: "configured claim", resp: `{"active":true,"sub":"u","ext":{"login":"carol"}}`,
			mod: func(in *Introspection) { in.UsernameClaim = "ext.login" }, wantUser: "carol"},
		{name: "configured claim missing: no fallback", resp: `{"active":true,"sub":"u"}`,
			mod: func(in *Introspection) { in.UsernameClaim = "email" }, wantDesc: "token lacks the username attribute"},
		{name: "expired", resp: fmt.Sprintf(`{"active":true,"sub":"u","exp":%d}`, clk.t.Add(-time.Second).Unix()), wantDesc: "the token has expired"},
		{name: "audience string", resp: fmt.Sprintf(`{"active":true,"sub":"u","aud":"atlasgate","exp":%d}`, future),
			mod: func(in *Introspection) { in.Audiences = []string{"x", "atlasgate"} }, wantUser: "u"},
		{name: "wrong audience", resp: `{"active":true,"sub":"u","aud":["other"]}`,
			mod: func(in *Introspection) { in.Audiences = []string{"atlasgate"} }, wantDesc: "the token is not meant for this gateway (audience)"},
		{name: "no audience", resp: `{"active":true,"sub":"u"}`,
			mod: func(in *Introspection) { in.Audiences = []string{"atlasgate"} }, wantDesc: "the token is not meant for this gateway (audience)"},
		{name: "wrong issuer", resp: `{"active":true,"sub":"u","iss":"https://evil.example.com"}`,
			mod: func(in *Introspection) { in.Issuer = "https://idp.example.com" }, wantDesc: "the token was issued by another issuer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := introspectionIDP(t, "basic", map[string]string{"tok": tc.resp})
			in := newIntrospection(t, p.URL, tc.mod)
			id, err := in.Authenticate(bearer("tok"))
			if tc.wantDesc != "" {
				ae := wantStatus(t, err, http.StatusUnauthorized)
				if ae.Code != "invalid_token" || ae.Description != tc.wantDesc {
					t.Errorf("error = %+v, want invalid_token %q", ae, tc.wantDesc)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.User != tc.wantUser {
				t.Errorf("user = %q, want %q", id.User, tc.wantUser)
			}
		})
	}
}

// The endpoint failing in any way is a 503, never a success, and logs a line
// that names the endpoint but not the token.
func TestIntrospectionUnavailable(t *testing.T) {
	block := make(chan struct{})
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"500", jsonReply(http.StatusInternalServerError, `{"active":true,"sub":"u"}`)},
		{"502 html", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
		}},
		{"gateway credentials refused", jsonReply(http.StatusUnauthorized, `{"error":"invalid_client"}`)},
		{"400", jsonReply(http.StatusBadRequest, `{"error":"invalid_request"}`)},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example.com/", http.StatusFound)
		}},
		{"not json", jsonReply(http.StatusOK, `active=true`)},
		{"json array", jsonReply(http.StatusOK, `[{"active":true}]`)},
		{"no active", jsonReply(http.StatusOK, `{"sub":"u"}`)},
		{"active not bool", jsonReply(http.StatusOK, `{"active":"true","sub":"u"}`)},
		{"too large", jsonReply(http.StatusOK, `{"active":true,"sub":"u","pad":"`+strings.Repeat("x", maxBody)+`"}`)},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newIDP(t, tc.h)
			if tc.name == "timeout" {
				// runs before the server's Close, which waits for handlers
				t.Cleanup(func() { close(block) })
			}
			in := newIntrospection(t, p.URL, func(in *Introspection) { in.Timeout = caddy.Duration(100 * time.Millisecond) })
			core, logs := observer.New(zapcore.DebugLevel)
			in.checker.logger = zap.New(core)
			const token = "secret-token-value"
			_, err := in.Authenticate(bearer(token))
			ae := wantStatus(t, err, http.StatusServiceUnavailable)
			if ae.Code != "authentication_unavailable" || strings.Contains(ae.Description, token) {
				t.Errorf("error = %+v", ae)
			}
			if logs.Len() != 1 {
				t.Fatalf("want one log line, got %d", logs.Len())
			}
			entry := logs.All()[0]
			var b bytes.Buffer
			fmt.Fprint(&b, entry.Message, entry.ContextMap())
			if strings.Contains(b.String(), token) || !strings.Contains(b.String(), p.URL) {
				t.Errorf("log line %s: must name the endpoint and not the token", b.String())
			}
			// 503s are not cached: the next request asks again.
			_, _ = in.Authenticate(bearer(token))
			if p.calls.Load() != 2 {
				t.Errorf("endpoint called %d times, want 2 (no caching of failures)", p.calls.Load())
			}
		})
	}
	t.Run("endpoint down", func(t *testing.T) {
		p := newIDP(t, jsonReply(http.StatusOK, `{"active":true,"sub":"u"}`))
		p.Close()
		in := newIntrospection(t, p.URL, nil)
		_, err := in.Authenticate(bearer("tok"))
		wantStatus(t, err, http.StatusServiceUnavailable)
	})
}

func TestIntrospectionCache(t *testing.T) {
	clk := fakeClock(t)
	exp := clk.t.Add(30 * time.Minute).Unix()
	p := introspectionIDP(t, "basic", map[string]string{
		"long":  fmt.Sprintf(`{"active":true,"username":"alice","exp":%d}`, exp),
		"short": fmt.Sprintf(`{"active":true,"username":"bob","exp":%d}`, clk.t.Add(5*time.Minute+time.Second+90*time.Second).Unix()),
		"noexp": `{"active":true,"username":"carol"}`,
	})
	in := newIntrospection(t, p.URL, nil) // cache_ttl 5m, negative 10s
	call := func(tok string, wantCalls int64, wantErr int) {
		t.Helper()
		id, err := in.Authenticate(bearer(tok))
		switch {
		case wantErr != 0:
			wantStatus(t, err, wantErr)
		case err != nil:
			t.Fatalf("%s: %v", tok, err)
		default:
			id.Authenticator = "mutated" // the cached identity must not change
		}
		if got := p.calls.Load(); got != wantCalls {
			t.Fatalf("%s: %d calls to the endpoint, want %d", tok, got, wantCalls)
		}
	}
	call("long", 1, 0)
	call("long", 1, 0) // cached
	id, _ := in.Authenticate(bearer("long"))
	if id.Authenticator != "" {
		t.Errorf("cached identity was modified through a returned copy")
	}
	clk.advance(5*time.Minute - time.Second)
	call("long", 1, 0)
	clk.advance(2 * time.Second) // past cache_ttl
	call("long", 2, 0)

	// Never cached beyond exp: with 90s of life left, cached 90s, not 5m.
	call("short", 3, 0)
	clk.advance(89 * time.Second)
	call("short", 3, 0)
	clk.advance(2 * time.Second)
	call("short", 4, http.StatusUnauthorized) // the endpoint's answer has expired

	call("noexp", 5, 0)
	clk.advance(4 * time.Minute)
	call("noexp", 5, 0)

	// Inactive tokens are remembered for negative_cache_ttl (10s).
	call("bad", 6, http.StatusUnauthorized)
	call("bad", 6, http.StatusUnauthorized)
	clk.advance(9 * time.Second)
	call("bad", 6, http.StatusUnauthorized)
	clk.advance(2 * time.Second)
	call("bad", 7, http.StatusUnauthorized)
}

func TestIntrospectionSingleFlight(t *testing.T) {
	release := make(chan struct{})
	p := newIDP(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		jsonReply(http.StatusOK, `{"active":true,"username":"alice"}`)(w, r)
	})
	in := newIntrospection(t, p.URL, nil)
	const n = 100
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	errs := make(chan error, n)
	for range n {
		go func() {
			defer done.Done()
			started.Done()
			id, err := in.Authenticate(bearer("same-token"))
			if err == nil && id.User != "alice" {
				err = fmt.Errorf("user %q", id.User)
			}
			errs <- err
		}()
	}
	started.Wait()
	close(release)
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := p.calls.Load(); got != 1 {
		t.Errorf("%d concurrent identical lookups made %d calls, want 1", n, got)
	}
}

func TestIntrospectionNoCredential(t *testing.T) {
	p := introspectionIDP(t, "basic", nil)
	in := newIntrospection(t, p.URL, nil)
	for _, tc := range []struct {
		name   string
		header []string
		want   error
	}{
		{"none", nil, authn.ErrNoCredential},
		{"basic", []string{"Basic YTpi"}, authn.ErrNoCredential},
		{"two headers", []string{"Bearer a", "Bearer b"}, nil},
		{"too long", []string{"Bearer " + strings.Repeat("a", authn.MaxTokenLength+1)}, nil},
	} {
		r := bearer("")
		for _, h := range tc.header {
			r.Header.Add("Authorization", h)
		}
		_, err := in.Authenticate(r)
		if tc.want != nil {
			if err != tc.want {
				t.Errorf("%s: error = %v, want %v", tc.name, err, tc.want)
			}
		} else {
			wantStatus(t, err, http.StatusUnauthorized)
		}
	}
	if p.calls.Load() != 0 {
		t.Errorf("the endpoint was called %d times for requests without a usable token", p.calls.Load())
	}
}

func TestIntrospectionProvisionErrors(t *testing.T) {
	t.Setenv(envSecret, testSecret)
	ok := func() *Introspection {
		return &Introspection{Endpoint: "https://idp.example.com/introspect", ClientID: "gw", ClientSecret: "{env." + envSecret + "}"}
	}
	for _, tc := range []struct {
		name string
		mod  func(*Introspection)
		want string
	}{
		{"valid", func(*Introspection) {}, ""},
		{"no endpoint", func(in *Introspection) { in.Endpoint = "" }, "endpoint: required"},
		{"http endpoint", func(in *Introspection) { in.Endpoint = "http://idp.example.com/i" }, "must be an https:// URL"},
		{"no client id", func(in *Introspection) { in.ClientID = "" }, "client_id: required"},
		{"literal secret", func(in *Introspection) { in.ClientSecret = "hunter2" }, "client_secret: must be an {env.NAME}"},
		{"unset secret", func(in *Introspection) { in.ClientSecret = "{env.OPAQUE_TEST_UNSET_VAR}" }, "OPAQUE_TEST_UNSET_VAR is not set"},
		{"bad client_auth", func(in *Introspection) { in.ClientAuth = "private_key_jwt" }, "client_auth"},
		{"negative ttl", func(in *Introspection) { in.CacheTTL = -1 }, "must not be negative"},
	} {
		in := ok()
		tc.mod(in)
		err := provision(t, in)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error = %v, want %q", tc.name, err, tc.want)
		case err != nil && strings.Contains(err.Error(), testSecret):
			t.Errorf("%s: error reveals the secret", tc.name)
		}
	}
	in := ok()
	mustProvision(t, in)
	if in.ClientAuth != "basic" || in.TokenTypeHint != "access_token" || time.Duration(in.CacheTTL) != 5*time.Minute {
		t.Errorf("defaults not applied: %+v", in)
	}
}

// The cached path: what every request after the first pays.
func BenchmarkIntrospectionCached(b *testing.B) {
	p := newIDP(b, jsonReply(http.StatusOK, `{"active":true,"username":"alice","scope":"a b"}`))
	b.Setenv(envSecret, testSecret)
	in := &Introspection{Endpoint: p.URL, ClientID: "gw", ClientSecret: "{env." + envSecret + "}"}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := in.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	in.checker.logger = zap.NewNop()
	r := bearer("benchmark-token")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := in.Authenticate(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	if p.calls.Load() != 1 {
		b.Fatalf("%d calls", p.calls.Load())
	}
}

package authhandler

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// fixed answers the same for every request.
type fixed struct {
	id  *authn.Identity
	err error
}

func (f fixed) Authenticate(*http.Request) (*authn.Identity, error) { return f.id, f.err }

func TestHandlerDecisions(t *testing.T) {
	alice := &authn.Identity{Kind: "jwt", User: "alice", Groups: []string{"dev", "ops"}, Scopes: []string{"read", "write"}}
	none := fixed{err: authn.ErrNoCredential}
	bad := fixed{err: authn.Invalid("token expired", errors.New("exp 123 < now 456"))}
	down := fixed{err: authn.Unavailable("identity provider unavailable", errors.New("dial tcp: refused"))}
	buggy := fixed{err: errors.New("nil map write")}
	cases := []struct {
		name        string
		auths       []namedAuthenticator
		status      int
		code        string
		challenge   string
		user        string
		notInOutput string
	}{
		{"first accepts", []namedAuthenticator{{"a", fixed{id: alice}}, {"b", bad}}, 200, "", "", "alice", ""},
		{"skips not-applicable", []namedAuthenticator{{"a", none}, {"b", fixed{id: alice}}}, 200, "", "", "alice", ""},
		{"no credential", []namedAuthenticator{{"a", none}}, 401, "missing_credential", `Bearer realm="atlasgate"`, "", ""},
		{"invalid token", []namedAuthenticator{{"a", none}, {"b", bad}}, 401, "invalid_token", `Bearer realm="atlasgate", error="invalid_token", error_description="token expired"`, "", "exp 123"},
		{"a claimed and refused token goes no further", []namedAuthenticator{{"a", bad}, {"b", fixed{id: alice}}}, 401, "invalid_token", `Bearer realm="atlasgate", error="invalid_token", error_description="token expired"`, "", ""},
		{"unavailable ends the search", []namedAuthenticator{{"a", down}, {"b", fixed{id: alice}}}, 503, "authentication_unavailable", "", "", "dial tcp"},
		{"authenticator bug never allows", []namedAuthenticator{{"a", buggy}}, 503, "authentication_unavailable", "", "", "nil map"},
		{"a credential nobody claims", []namedAuthenticator{{"a", none}, {"b", none}}, 401, "invalid_token", `Bearer realm="atlasgate", error="invalid_token", error_description="credential not accepted by this gateway"`, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &Handler{Realm: "atlasgate", auths: c.auths, logger: zap.NewNop()}
			repl := caddy.NewReplacer()
			ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl)
			ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
			r := httptest.NewRequest("GET", "/rest/api/3/myself", nil).WithContext(ctx)
			if c.code != "missing_credential" {
				r.Header.Set("Authorization", "Bearer some-token")
			}
			w := httptest.NewRecorder()
			var reached bool
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				reached = true
				return nil
			})
			if err := h.ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
			if c.status == 200 {
				if !reached {
					t.Fatalf("request did not go on: %d %s", w.Code, w.Body)
				}
				if got, _ := repl.GetString("http.auth.user.id"); got != c.user {
					t.Errorf("user placeholder = %q", got)
				}
				if got, _ := repl.GetString("http.auth.user.groups"); got != "dev,ops" {
					t.Errorf("groups placeholder = %q", got)
				}
				id, _ := caddyhttp.GetVar(r.Context(), IdentityVar).(*authn.Identity)
				if id == nil || id.Authenticator == "" {
					t.Errorf("identity not stored for policy: %+v", id)
				}
				return
			}
			if reached {
				t.Fatal("a denied request went on")
			}
			if w.Code != c.status {
				t.Fatalf("status %d, want %d", w.Code, c.status)
			}
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["error"] != c.code || body["message"] == "" {
				t.Errorf("body = %s", w.Body)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != c.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, c.challenge)
			}
			if c.notInOutput != "" && (strings.Contains(w.Body.String(), c.notInOutput) || strings.Contains(w.Header().Get("WWW-Authenticate"), c.notInOutput)) {
				t.Errorf("internal detail leaked to the client: %s", w.Body)
			}
		})
	}
}

func TestQuoteSafe(t *testing.T) {
	if got := quoteSafe("a \"quoted\"\\ \r\nline é"); got != "a  quoted     line  " {
		t.Errorf("quoteSafe = %q", got)
	}
}

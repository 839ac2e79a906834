package jwt

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/modules/authn"
)

func TestAcceptsEachAlgorithmFamily(t *testing.T) {
	for _, k := range []testKey{rs256(), ps256(), es256(), eddsa()} {
		t.Run(k.alg, func(t *testing.T) {
			is := newIssuer(t, rs256(), es256(), eddsa())
			j := newAuth(t, is, func(j *JWT) { j.Algorithms = []string{k.alg} })
			id, err := j.Authenticate(bearer(sign(t, k, is.claims(nil), nil)))
			if err != nil {
				t.Fatalf("valid %s token refused: %v", k.alg, err)
			}
			if id.User != "user-1" || id.Kind != "jwt" || id.Issuer != is.URL() {
				t.Errorf("identity = %+v", id)
			}
		})
	}
}

func TestIdentityFromClaims(t *testing.T) {
	is := newIssuer(t, rs256())
	exp := clock.Now().Add(30 * time.Minute).Truncate(time.Second)
	tests := []struct {
		name   string
		mod    func(*JWT)
		claims map[string]any
		want   authn.Identity
	}{
		{
			name:   "defaults",
			claims: map[string]any{"groups": []string{"dev", "ops"}, "scp": "read:jira write:jira"},
			want:   authn.Identity{User: "user-1", Subject: "user-1", Groups: []string{"dev", "ops"}, Scopes: []string{"read:jira", "write:jira"}},
		},
		{
			name:   "nested username, groups and roles, scope array",
			mod:    func(j *JWT) { j.UsernameClaim = "ext.login"; j.GroupsClaim = []string{"groups", "roles"} },
			claims: map[string]any{"ext": map[string]any{"login": "alice"}, "groups": "dev", "roles": []string{"Reader"}, "scp": []string{"a", "b"}},
			want:   authn.Identity{User: "alice", Subject: "user-1", Groups: []string{"dev", "Reader"}, Scopes: []string{"a", "b"}},
		},
		{
			name:   "claim name with dots wins over nesting; scope claim",
			mod:    func(j *JWT) { j.UsernameClaim = "kubernetes.io.namespace" },
			claims: map[string]any{"kubernetes.io": map[string]any{"namespace": "ci"}, "scope": "openid profile"},
			want:   authn.Identity{User: "ci", Subject: "user-1", Scopes: []string{"openid", "profile"}},
		},
		{
			name:   "fallback username",
			mod:    func(j *JWT) { j.UsernameClaim = "preferred_username"; j.UsernameFallbackClaims = []string{"azp"} },
			claims: map[string]any{"azp": "app-client-id"},
			want:   authn.Identity{User: "app-client-id", Subject: "user-1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newAuth(t, is, tt.mod)
			over := map[string]any{"exp": exp.Unix()}
			for k, v := range tt.claims {
				over[k] = v
			}
			id, err := j.Authenticate(bearer(sign(t, rs256(), is.claims(over), nil)))
			if err != nil {
				t.Fatal(err)
			}
			if id.User != tt.want.User || id.Subject != tt.want.Subject || id.Issuer != is.URL() || id.Kind != "jwt" {
				t.Errorf("identity = %+v", id)
			}
			if !reflect.DeepEqual(id.Groups, tt.want.Groups) || !reflect.DeepEqual(id.Scopes, tt.want.Scopes) {
				t.Errorf("groups %q scopes %q, want %q %q", id.Groups, id.Scopes, tt.want.Groups, tt.want.Scopes)
			}
			if !id.ExpiresAt.Equal(exp) {
				t.Errorf("ExpiresAt = %v, want %v", id.ExpiresAt, exp)
			}
			if id.Claims["iss"] != is.URL() || id.Claims["aud"] != testAudience {
				t.Errorf("claims not exposed: %v", id.Claims)
			}
			if _, err := json.Marshal(id); err != nil {
				t.Errorf("identity does not marshal: %v", err)
			}
		})
	}
}

func TestUsernameClaimMissing(t *testing.T) {
	is := newIssuer(t, rs256())
	j := newAuth(t, is, func(j *JWT) { j.UsernameClaim = "email" })
	for _, over := range []map[string]any{{}, {"email": ""}, {"email": []string{"a@x"}}} {
		_, err := j.Authenticate(bearer(sign(t, rs256(), is.claims(over), nil)))
		if ae := authErr(t, err); ae.Status != 401 || ae.Description != "token lacks the username claim" {
			t.Errorf("%v: %v", over, err)
		}
	}
}

func TestRequireClaim(t *testing.T) {
	is := newIssuer(t, rs256())
	tests := []struct {
		name   string
		reqs   []ClaimRequirement
		claims map[string]any
		ok     bool
	}{
		{"github ref glob", []ClaimRequirement{{"repository", []string{"acme/app"}}, {"ref", []string{"refs/heads/*"}}},
			map[string]any{"repository": "acme/app", "ref": "refs/heads/main"}, true},
		{"github tag refused", []ClaimRequirement{{"repository", []string{"acme/app"}}, {"ref", []string{"refs/heads/*"}}},
			map[string]any{"repository": "acme/app", "ref": "refs/tags/v1"}, false},
		{"github other repo", []ClaimRequirement{{"repository", []string{"acme/app"}}},
			map[string]any{"repository": "acme/app-fork"}, false},
		{"kubernetes service account", []ClaimRequirement{{"sub", []string{"system:serviceaccount:ci:deployer"}}},
			map[string]any{"sub": "system:serviceaccount:ci:deployer"}, true},
		{"kubernetes namespace glob", []ClaimRequirement{{"sub", []string{"system:serviceaccount:ci:*"}}},
			map[string]any{"sub": "system:serviceaccount:prod:deployer"}, false},
		{"nested k8s namespace", []ClaimRequirement{{"kubernetes.io.namespace", []string{"ci"}}},
			map[string]any{"kubernetes.io": map[string]any{"namespace": "ci"}}, true},
		{"array claim, one matches", []ClaimRequirement{{"groups", []string{"admins", "ops"}}},
			map[string]any{"groups": []string{"dev", "ops"}}, true},
		{"missing claim", []ClaimRequirement{{"environment", []string{"prod"}}}, nil, false},
		{"boolean claim", []ClaimRequirement{{"email_verified", []string{"true"}}},
			map[string]any{"email_verified": true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newAuth(t, is, func(j *JWT) { j.RequireClaims = tt.reqs })
			_, err := j.Authenticate(bearer(sign(t, rs256(), is.claims(tt.claims), nil)))
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok {
				if ae := authErr(t, err); ae.Description != "token claims not accepted" {
					t.Fatalf("error = %v", err)
				}
			}
		})
	}
}

func TestTokenType(t *testing.T) {
	is := newIssuer(t, rs256())
	j := newAuth(t, is, func(j *JWT) { j.TokenTypes = []string{"at+jwt"} })
	for typ, ok := range map[string]bool{"at+jwt": true, "application/AT+JWT": true, "JWT": false, "": false} {
		extra := map[string]any{"typ": typ}
		if typ == "" {
			extra["typ"] = nil
		}
		_, err := j.Authenticate(bearer(sign(t, rs256(), is.claims(nil), extra)))
		if (err == nil) != ok {
			t.Errorf("typ %q: err = %v, want ok=%v", typ, err, ok)
		}
	}
}

func TestMaxTokenAge(t *testing.T) {
	is := newIssuer(t, rs256())
	j := newAuth(t, is, func(j *JWT) { j.MaxTokenAge = caddy.Duration(10 * time.Minute) })
	old := clock.Now().Add(-20 * time.Minute).Unix()
	_, err := j.Authenticate(bearer(sign(t, rs256(), is.claims(map[string]any{"iat": old, "nbf": old}), nil)))
	if ae := authErr(t, err); ae.Description != "token too old" {
		t.Errorf("old token: %v", err)
	}
	_, err = j.Authenticate(bearer(sign(t, rs256(), is.claims(map[string]any{"iat": nil}), nil)))
	if ae := authErr(t, err); ae.Description != "token too old" {
		t.Errorf("token without iat: %v", err)
	}
	if _, err := j.Authenticate(bearer(sign(t, rs256(), is.claims(nil), nil))); err != nil {
		t.Errorf("fresh token: %v", err)
	}
}

func TestNotAJWT(t *testing.T) {
	is := newIssuer(t, rs256())
	j := newAuth(t, is, nil)
	for _, r := range []*http.Request{bearer(""), bearer("opaque-token_abc123")} {
		if _, err := j.Authenticate(r); !errors.Is(err, authn.ErrNoCredential) {
			t.Errorf("%q: err = %v, want ErrNoCredential", r.Header.Get("Authorization"), err)
		}
	}
	r := bearer("")
	r.SetBasicAuth("u", "p")
	if _, err := j.Authenticate(r); !errors.Is(err, authn.ErrNoCredential) {
		t.Errorf("basic auth: err = %v, want ErrNoCredential", err)
	}
}

// A cached identity is a copy per request, and the cache never outlives exp.
func TestVerifiedTokenCache(t *testing.T) {
	is := newIssuer(t, rs256())
	j := newAuth(t, is, func(j *JWT) { j.Leeway = caddy.Duration(time.Second) })
	tok := sign(t, rs256(), is.claims(map[string]any{"exp": clock.Now().Add(time.Minute).Unix()}), nil)
	id1, err := j.Authenticate(bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	id1.Authenticator = "changed"
	if j.cache.Len() != 1 {
		t.Fatalf("cache holds %d entries", j.cache.Len())
	}
	id2, err := j.Authenticate(bearer(tok))
	if err != nil || id2.Authenticator != "" || id2 == id1 {
		t.Fatalf("cached identity shared or lost: %+v %v", id2, err)
	}
	clock.Advance(2 * time.Minute)
	_, err = j.Authenticate(bearer(tok))
	if ae := authErr(t, err); ae.Description != "token expired" {
		t.Fatalf("after exp: %v", err)
	}
}

func TestProvisionErrors(t *testing.T) {
	is := newIssuer(t, rs256())
	no := false
	tests := []struct {
		name string
		mod  func(*JWT)
		want string
	}{
		{"no audience", func(j *JWT) { j.Audiences = nil }, "audiences: required"},
		{"any audience", func(j *JWT) { j.Audiences = []string{"*"} }, "is not an audience"},
		{"no issuer", func(j *JWT) { j.Issuer = "" }, "issuer: required"},
		{"plain http issuer", func(j *JWT) { j.Issuer = "http://idp.example.com" }, "must be an https URL"},
		{"HS256", func(j *JWT) { j.Algorithms = []string{"HS256"} }, "HS256 is never accepted"},
		{"none", func(j *JWT) { j.Algorithms = []string{"none"} }, "none is never accepted"},
		{"unknown alg", func(j *JWT) { j.Algorithms = []string{"RS1"} }, "not supported"},
		{"leeway too large", func(j *JWT) { j.Leeway = caddy.Duration(10 * time.Minute) }, "leeway"},
		{"discovery off without jwks", func(j *JWT) { j.Discovery = &no }, "jwks_uri: required"},
		{"match-anything requirement", func(j *JWT) { j.RequireClaims = []ClaimRequirement{{"sub", []string{"*"}}} }, "would match anything"},
		{"unknown preset", func(j *JWT) { j.Preset = &Preset{Name: "auth0"} }, "not known"},
		{"multi-tenant entra", func(j *JWT) { j.Preset = &Preset{Name: "entra", Args: []string{"common"}} }, "not a tenant id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := provision(is, tt.mod)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

package jwt

import (
	"reflect"
	"strings"
	"testing"
)

func TestPresets(t *testing.T) {
	tests := []struct {
		preset    Preset
		issuer    string
		jwks      string
		username  string
		fallback  []string
		groups    []string
		audiences []string
		algs      []string
	}{
		{preset: Preset{"entra", []string{"11111111-2222-3333-4444-555555555555"}},
			issuer:   "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0",
			jwks:     "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/discovery/v2.0/keys",
			username: "preferred_username", fallback: []string{"azp"}, groups: []string{"groups", "roles"}, algs: []string{"RS256"}},
		{preset: Preset{"entra", []string{"contoso.onmicrosoft.com", "v1"}},
			issuer:   "https://sts.windows.net/contoso.onmicrosoft.com/",
			jwks:     "https://login.microsoftonline.com/contoso.onmicrosoft.com/discovery/v2.0/keys",
			username: "upn", fallback: []string{"unique_name", "appid"}, groups: []string{"groups", "roles"}, algs: []string{"RS256"}},
		{preset: Preset{"okta", []string{"https://acme.okta.com/oauth2/default"}},
			issuer: "https://acme.okta.com/oauth2/default", username: "sub", groups: []string{"groups"},
			audiences: []string{"api://default"}, algs: []string{"RS256"}},
		{preset: Preset{"okta", []string{"https://acme.okta.com/oauth2/aus123"}},
			issuer: "https://acme.okta.com/oauth2/aus123", username: "sub", groups: []string{"groups"}, algs: []string{"RS256"}},
		{preset: Preset{"keycloak", []string{"https://kc.example.com/realms/acme"}},
			issuer: "https://kc.example.com/realms/acme", username: "preferred_username",
			groups: []string{"groups", "realm_access.roles"}, algs: []string{"RS256"}},
		{preset: Preset{"cognito", []string{"eu-west-1", "eu-west-1_AbCdEf123"}},
			issuer:   "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
			jwks:     "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123/.well-known/jwks.json",
			username: "username", fallback: []string{"cognito:username"}, groups: []string{"cognito:groups"}, algs: []string{"RS256"}},
		{preset: Preset{"google", nil}, issuer: "https://accounts.google.com", username: "email", groups: []string{"groups"}, algs: []string{"RS256"}},
		{preset: Preset{"gitlab", []string{"https://gitlab.com/"}}, issuer: "https://gitlab.com", username: "project_path",
			fallback: []string{"nickname", "sub"}, groups: []string{"groups"}, algs: []string{"RS256"}},
		{preset: Preset{"github_actions", nil}, issuer: "https://token.actions.githubusercontent.com", username: "sub", algs: []string{"RS256"}},
		{preset: Preset{"kubernetes", []string{"https://kubernetes.default.svc.cluster.local"}},
			issuer: "https://kubernetes.default.svc.cluster.local", username: "sub", algs: []string{"RS256", "ES256"}},
		{preset: Preset{"oidc", []string{"https://idp.example.com"}}, issuer: "https://idp.example.com", username: "sub", groups: []string{"groups"}, algs: []string{"RS256"}},
	}
	for _, tt := range tests {
		t.Run(tt.preset.Name+" "+strings.Join(tt.preset.Args, " "), func(t *testing.T) {
			p := tt.preset
			j := &JWT{Preset: &p}
			if err := j.applyPreset(); err != nil {
				t.Fatal(err)
			}
			got := []any{j.Issuer, j.JWKSURI, j.UsernameClaim, j.UsernameFallbackClaims, j.GroupsClaim, j.Audiences, j.Algorithms}
			want := []any{tt.issuer, tt.jwks, tt.username, tt.fallback, tt.groups, tt.audiences, tt.algs}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

// Explicit options override the preset; the cognito preset checks client_id
// when a token has no aud.
func TestPresetOverridesAndCognitoClientID(t *testing.T) {
	j := &JWT{Preset: &Preset{"entra", []string{"contoso.com"}}, UsernameClaim: "oid", Issuer: "https://override.example"}
	if err := j.applyPreset(); err != nil {
		t.Fatal(err)
	}
	if j.UsernameClaim != "oid" || j.UsernameFallbackClaims != nil || j.Issuer != "https://override.example" {
		t.Errorf("explicit options lost: %+v", j)
	}

	is := newIssuer(t, rs256())
	a := newAuth(t, is, func(j *JWT) {
		j.Preset = &Preset{"oidc", []string{is.URL()}}
		j.AudienceFallbackClaim = "client_id"
		j.Audiences = []string{"app-client"}
	})
	if _, err := a.Authenticate(bearer(sign(t, rs256(), is.claims(map[string]any{"aud": nil, "client_id": "app-client"}), nil))); err != nil {
		t.Fatalf("cognito-style access token refused: %v", err)
	}
	_, err := a.Authenticate(bearer(sign(t, rs256(), is.claims(map[string]any{"aud": nil, "client_id": "other"}), nil)))
	if ae := authErr(t, err); ae.Description != errAudience {
		t.Fatalf("other client: %v", err)
	}
	// An aud, when present, decides alone.
	_, err = a.Authenticate(bearer(sign(t, rs256(), is.claims(map[string]any{"aud": "other", "client_id": "app-client"}), nil)))
	if ae := authErr(t, err); ae.Description != errAudience {
		t.Fatalf("aud other with our client_id: %v", err)
	}
}

func TestPresetArgumentErrors(t *testing.T) {
	for _, p := range []Preset{
		{"entra", nil}, {"entra", []string{"https://evil/"}}, {"entra", []string{"t", "v3"}},
		{"okta", nil}, {"okta", []string{"not a url"}}, {"cognito", []string{"eu-west-1"}},
		{"cognito", []string{"eu-west-1", "../x"}}, {"google", []string{"x"}},
	} {
		if _, err := p.values(); err == nil {
			t.Errorf("preset %v accepted", p)
		}
	}
}

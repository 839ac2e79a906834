package jwt

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Preset names an identity provider whose conventions fill in the options the
// config leaves empty. Explicit options always win over the preset's values.
type Preset struct {
	// Name of the preset: entra, okta, keycloak, cognito, google, gitlab,
	// github_actions, kubernetes or oidc.
	Name string `json:"name,omitempty"`
	// Args of the preset, e.g. the tenant id for entra or the issuer URL for
	// okta (see the preset table in the documentation).
	Args []string `json:"args,omitempty"`
}

// presetValues are the defaults a preset contributes.
type presetValues struct {
	issuer           string
	jwksURI          string
	audiences        []string
	algorithms       []string
	usernameClaim    string
	usernameFallback []string
	groupsClaim      []string
	audienceFallback string
}

// Well-known issuers.
const (
	googleIssuer        = "https://accounts.google.com"
	githubActionsIssuer = "https://token.actions.githubusercontent.com"
)

var (
	// tenant ids are GUIDs or verified domain names; anything else (a URL, a
	// path) would change the issuer's meaning.
	entraTenant = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$`)
	awsRegion   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	cognitoPool = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]_[A-Za-z0-9]+$`)
)

// values returns the defaults of the preset, or an error naming what is wrong
// with its arguments.
func (p *Preset) values() (*presetValues, error) {
	args := p.Args
	want := func(min, max int, usage string) error {
		if len(args) < min || len(args) > max {
			return fmt.Errorf("preset %s: usage: preset %s %s", p.Name, p.Name, usage)
		}
		return nil
	}
	issuerArg := func() (string, error) {
		if err := want(1, 1, "<issuer-url>"); err != nil {
			return "", err
		}
		u, err := url.Parse(args[0])
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return "", fmt.Errorf("preset %s: %q is not an issuer URL", p.Name, args[0])
		}
		return args[0], nil
	}
	v := &presetValues{algorithms: []string{"RS256"}, usernameClaim: "sub", groupsClaim: []string{"groups"}}
	switch p.Name {
	case "entra":
		if err := want(1, 2, "<tenant-id> [v1]"); err != nil {
			return nil, err
		}
		tenant := args[0]
		if !entraTenant.MatchString(tenant) || tenant == "common" || tenant == "organizations" || tenant == "consumers" {
			// Multi-tenant endpoints issue tokens whose issuer names the
			// caller's tenant: accepting them would accept every tenant.
			return nil, fmt.Errorf("preset entra: %q is not a tenant id (use your directory's GUID or verified domain; multi-tenant endpoints are not supported)", tenant)
		}
		// Both token versions are signed with the tenant's keys.
		v.jwksURI = "https://login.microsoftonline.com/" + tenant + "/discovery/v2.0/keys"
		v.groupsClaim = []string{"groups", "roles"}
		if len(args) == 2 {
			if args[1] != "v1" {
				return nil, fmt.Errorf("preset entra: the second argument may only be v1, not %q", args[1])
			}
			v.issuer = "https://sts.windows.net/" + tenant + "/"
			v.usernameClaim, v.usernameFallback = "upn", []string{"unique_name", "appid"}
		} else {
			v.issuer = "https://login.microsoftonline.com/" + tenant + "/v2.0"
			v.usernameClaim, v.usernameFallback = "preferred_username", []string{"azp"}
		}
	case "okta":
		iss, err := issuerArg()
		if err != nil {
			return nil, err
		}
		v.issuer = iss
		// Okta's "default" custom authorization server issues tokens for the
		// audience api://default unless reconfigured.
		if strings.HasSuffix(strings.TrimSuffix(iss, "/"), "/oauth2/default") {
			v.audiences = []string{"api://default"}
		}
	case "keycloak":
		iss, err := issuerArg()
		if err != nil {
			return nil, err
		}
		v.issuer = iss
		v.usernameClaim = "preferred_username"
		v.groupsClaim = []string{"groups", "realm_access.roles"}
	case "cognito":
		if err := want(2, 2, "<region> <user-pool-id>"); err != nil {
			return nil, err
		}
		if !awsRegion.MatchString(args[0]) || !cognitoPool.MatchString(args[1]) {
			return nil, fmt.Errorf("preset cognito: %q %q is not a region and user pool id (e.g. eu-west-1 eu-west-1_AbCdEf123)", args[0], args[1])
		}
		v.issuer = "https://cognito-idp." + args[0] + ".amazonaws.com/" + args[1]
		v.jwksURI = v.issuer + "/.well-known/jwks.json"
		v.usernameClaim, v.usernameFallback = "username", []string{"cognito:username"}
		v.groupsClaim = []string{"cognito:groups"}
		// Cognito access tokens carry the app client id in client_id and no aud.
		v.audienceFallback = "client_id"
	case "google":
		if err := want(0, 0, ""); err != nil {
			return nil, err
		}
		v.issuer = googleIssuer
		v.usernameClaim = "email"
	case "gitlab":
		iss, err := issuerArg()
		if err != nil {
			return nil, err
		}
		v.issuer = strings.TrimSuffix(iss, "/")
		// CI job ID tokens name the project; user ID tokens the user.
		v.usernameClaim, v.usernameFallback = "project_path", []string{"nickname", "sub"}
	case "github_actions":
		if err := want(0, 0, ""); err != nil {
			return nil, err
		}
		v.issuer = githubActionsIssuer
		// sub (repo:<owner>/<repo>:ref:… or :environment:…) is what GitHub
		// documents for trust policies; repository is a claim to require.
		v.groupsClaim = nil
	case "kubernetes":
		iss, err := issuerArg()
		if err != nil {
			return nil, err
		}
		v.issuer = iss
		v.algorithms = []string{"RS256", "ES256"}
		v.groupsClaim = nil
	case "oidc":
		iss, err := issuerArg()
		if err != nil {
			return nil, err
		}
		v.issuer = iss
	default:
		return nil, fmt.Errorf("preset %q is not known (entra, okta, keycloak, cognito, google, gitlab, github_actions, kubernetes, oidc)", p.Name)
	}
	return v, nil
}

// applyPreset fills the options the config leaves empty from the preset.
func (j *JWT) applyPreset() error {
	if j.Preset == nil {
		return nil
	}
	v, err := j.Preset.values()
	if err != nil {
		return err
	}
	if j.Issuer == "" {
		j.Issuer = v.issuer
	}
	if j.JWKSURI == "" && j.Discovery == nil {
		j.JWKSURI = v.jwksURI
	}
	if len(j.Audiences) == 0 {
		j.Audiences = v.audiences
	}
	if len(j.Algorithms) == 0 {
		j.Algorithms = v.algorithms
	}
	if j.UsernameClaim == "" {
		j.UsernameClaim = v.usernameClaim
		if j.UsernameFallbackClaims == nil {
			j.UsernameFallbackClaims = v.usernameFallback
		}
	}
	if j.GroupsClaim == nil {
		j.GroupsClaim = v.groupsClaim
	}
	if j.AudienceFallbackClaim == "" {
		j.AudienceFallbackClaim = v.audienceFallback
	}
	return nil
}

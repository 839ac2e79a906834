package console

import (
	"context"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/credentials"
)

// CredentialStatus is one credential as the console, the admin API and the
// CLI show it. It never holds a token.
type CredentialStatus struct {
	Name string `json:"name"`
	// Type is the credential module's name: api_token, bearer, oauth, …
	Type string `json:"type"`
	// Site is the base URL clients address through the credential.
	Site string `json:"site,omitempty"`
	// OAuth is the state of an OAuth credential; absent for the others,
	// which have no state to show.
	OAuth *credentials.OAuthStatus `json:"oauth,omitempty"`
	// Upstream is what Atlassian last answered through the credential
	// (working, rejected with 401 since …, rate-limited), its rate-limit
	// headroom and the last hour's requests and errors, on this replica.
	Upstream atlasgate.UpstreamSeen `json:"upstream"`
}

// State is the OAuth state, or "" for a credential without one.
func (s CredentialStatus) State() string {
	if s.OAuth == nil {
		return ""
	}
	return s.OAuth.State
}

// statuses reads the state of every credential of src, by name.
func statuses(ctx context.Context, src source) []CredentialStatus {
	names := src.CredentialNames()
	out := make([]CredentialStatus, 0, len(names))
	for _, name := range names {
		c, ok := src.Credential(name)
		if !ok {
			continue
		}
		st := CredentialStatus{Name: name, Type: credentialType(c), Upstream: atlasgate.Upstream(name, time.Now())}
		if home := c.Home(); home != nil {
			st.Site = home.String()
		}
		if a, ok := c.(authorizer); ok {
			os := a.Status(ctx)
			st.OAuth = &os
		}
		out = append(out, st)
	}
	return out
}

// credentialType is the name of the credential's module
// (`atlasgate.credentials.<type>`).
func credentialType(c atlasgate.Credential) string {
	if m, ok := c.(caddy.Module); ok {
		return m.CaddyModule().ID.Name()
	}
	return "unknown"
}

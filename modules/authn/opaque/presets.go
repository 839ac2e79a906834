package opaque

import (
	"net/http"
	"strings"
)

// preset describes a well-known userinfo-style endpoint: where it is, which
// attribute names the user, and the provider's quirks.
type preset struct {
	url      string
	username string
	header   http.Header
	// invalidStatus lists statuses besides 401 and 403 that mean a bad token.
	invalidStatus []int
	// okField names a boolean member that is false for a bad token although
	// the status is 200 (Slack).
	okField string
	// unavailableErrors are values of `error` in a not-ok answer that mean the
	// provider failed rather than the token (Slack).
	unavailableErrors []string
	// verifiedField names a boolean member that, when false, means the
	// username (an email address) is not verified.
	verifiedField string
	// scopesHeader names a response header listing the token's scopes,
	// comma-separated (GitHub's X-OAuth-Scopes).
	scopesHeader string
}

const defaultGitLab = "https://gitlab.com"

// presets by provider name. `gitlab`, `oidc` and `custom` get their URL from
// the configuration.
var presets = map[string]preset{
	// Microsoft Graph: https://learn.microsoft.com/graph/api/user-get
	"graph": {url: "https://graph.microsoft.com/v1.0/me", username: "userPrincipalName"},
	// GitHub: https://docs.github.com/rest/users/users#get-the-authenticated-user
	"github": {
		url: "https://api.github.com/user", username: "login",
		header:       http.Header{"Accept": {"application/vnd.github+json"}},
		scopesHeader: "X-OAuth-Scopes",
	},
	// GitLab: https://docs.gitlab.com/api/users/#retrieve-the-current-user
	"gitlab": {username: "username"},
	// Google: https://developers.google.com/identity/openid-connect/openid-connect#obtaininguserprofileinformation
	"google": {
		url: "https://openidconnect.googleapis.com/v1/userinfo", username: "email",
		verifiedField: "email_verified",
	},
	// Slack: https://api.slack.com/methods/openid.connect.userInfo — answers
	// 200 {"ok":false,"error":"invalid_auth"} for a bad token.
	"slack": {
		url: "https://slack.com/api/openid.connect.userInfo", username: "email",
		okField:           "ok",
		unavailableErrors: []string{"fatal_error", "internal_error", "service_unavailable", "request_timeout", "ratelimited"},
	},
	// Facebook Graph API: answers 400 (OAuthException) for a bad token.
	"facebook": {url: "https://graph.facebook.com/me?fields=id,name,email", username: "id", invalidStatus: []int{http.StatusBadRequest}},
	// OpenID Connect userinfo endpoint (URL from the configuration).
	"oidc": {username: "sub"},
	// Anything else answering JSON to a bearer token.
	"custom": {},
}

func presetNames() string {
	return "graph, github, gitlab, google, slack, facebook, oidc or custom"
}

func gitlabURL(instance string) string {
	return strings.TrimRight(instance, "/") + "/api/v4/user"
}

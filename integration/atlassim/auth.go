package atlassim

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
)

// splitAuth parses an Authorization header into its lower-case scheme and
// credentials: user and secret for Basic, the token (as secret) for Bearer.
// A malformed Basic value yields kind "basic" with empty credentials, which
// then fails authentication like a wrong password would.
func splitAuth(h string) (kind, user, secret string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	kind = strings.ToLower(scheme)
	rest = strings.TrimSpace(rest)
	switch kind {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return kind, "", ""
		}
		user, secret, _ = strings.Cut(string(raw), ":")
	case "bearer":
		secret = rest
	case "":
	default:
		// Never echo an unknown scheme: a bare token sent without one would
		// otherwise land in Recorded.AuthKind and the request log.
		kind = "other"
	}
	return kind, user, secret
}

// lookupAPIToken finds an unexpired API token presented as Basic email:token
// together with its account. Email comparison is case-insensitive, as
// Atlassian's is. (Map lookups are not constant-time; that is acceptable for
// a test double holding fake credentials.)
func (s *Sim) lookupAPIToken(email, token string) (APIToken, User, bool) {
	if email == "" || token == "" {
		return APIToken{}, User{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.data.apiTokens[token]
	if !ok || !strings.EqualFold(t.Email, email) {
		return APIToken{}, User{}, false
	}
	if !t.ExpiresAt.IsZero() && !s.now().Before(t.ExpiresAt) {
		return APIToken{}, User{}, false
	}
	u, ok := s.userByEmail(email)
	return t, u, ok
}

// authSite authenticates a request at the site (acme.atlassian.net): only a
// classic, unscoped API token as Basic email:token. Scoped tokens and Bearer
// tokens are rejected here because Atlassian accepts them only through
// api.atlassian.com/ex — the gateway must route them there.
func (s *Sim) authSite(c *call) bool {
	kind, user, secret := splitAuth(c.r.Header.Get("Authorization"))
	if kind != "basic" {
		return false
	}
	t, u, ok := s.lookupAPIToken(user, secret)
	if !ok || t.Bitbucket || t.Scopes != nil {
		return false
	}
	c.principal = u.AccountID
	return true
}

// authEx authenticates a request at api.atlassian.com/ex and checks that its
// credential carries scope ("" = no scope needed). It returns "" on success
// or the message of the 401 body. Classic tokens fail here for the mirror
// reason scoped tokens fail at the site.
func (s *Sim) authEx(c *call, scope string) string {
	const unauthorized = "Unauthorized"
	kind, user, secret := splitAuth(c.r.Header.Get("Authorization"))
	var account string
	var scopes []string
	switch kind {
	case "basic":
		t, u, ok := s.lookupAPIToken(user, secret)
		if !ok || t.Bitbucket || t.Scopes == nil {
			return unauthorized
		}
		account, scopes = u.AccountID, t.Scopes
	case "bearer":
		if secret == "" {
			return unauthorized
		}
		// Access tokens issued by the simulated authorization server
		// (HostAuth) are checked first, including which sites their grant
		// covers. A token it never issued falls through to the hook
		// installed with SetBearerAuth, if any.
		if id, sc, known, ok := s.oauthBearer(secret, c.cloudID); known {
			if !ok {
				return unauthorized
			}
			account, scopes = id, sc
			break
		}
		s.mu.RLock()
		f := s.bearerAuth
		s.mu.RUnlock()
		if f == nil {
			return unauthorized
		}
		id, sc, ok := f(secret) // called unlocked: the hook may have its own state
		if !ok {
			return unauthorized
		}
		account, scopes = id, sc
	default:
		return unauthorized
	}
	if scope != "" && !slices.Contains(scopes, scope) {
		return "Unauthorized; scope does not match"
	}
	c.principal = account
	return ""
}

// authBitbucket authenticates at the Bitbucket Cloud host: an API token as
// Basic email:token (tokens marked Bitbucket only), or a repository/project/
// workspace access token as Bearer, which is confined to one workspace.
func (s *Sim) authBitbucket(c *call) (u User, workspace string, ok bool) {
	kind, user, secret := splitAuth(c.r.Header.Get("Authorization"))
	switch kind {
	case "basic":
		t, u, ok := s.lookupAPIToken(user, secret)
		if !ok || !t.Bitbucket {
			return User{}, "", false
		}
		c.principal = u.AccountID
		return u, "", true
	case "bearer":
		s.mu.RLock()
		ws, ok := s.data.bbAccess[secret]
		s.mu.RUnlock()
		if !ok || secret == "" {
			return User{}, "", false
		}
		c.principal = "bb-access-token:" + ws
		return User{}, ws, true
	}
	return User{}, "", false
}

// authDC authenticates at a Data Center host: a personal access token as
// Bearer, or username:password as Basic. A PAT sent as a Basic password fails,
// as it does on real DC installs, so the gateway must use the right scheme.
func (s *Sim) authDC(c *call) (User, bool) {
	kind, user, secret := splitAuth(c.r.Header.Get("Authorization"))
	host := c.vh.name
	s.mu.RLock()
	defer s.mu.RUnlock()
	var name string
	switch kind {
	case "bearer":
		name = s.data.pats[host][secret]
	case "basic":
		if pw, ok := s.data.dcPasswords[host][user]; ok && secret != "" && pw == secret {
			name = user
		}
	}
	if name == "" || secret == "" {
		return User{}, false
	}
	u, ok := s.userByUsername(name)
	if !ok {
		u = User{Username: name, DisplayName: name}
	}
	c.principal = name
	return u, true
}

// setSiteCookie mimics the XSRF cookie Atlassian Cloud sets on API responses;
// the gateway is expected to strip it before it reaches clients.
func (c *call) setSiteCookie() {
	http.SetCookie(c, &http.Cookie{Name: "atlassian.xsrf.token", Value: randomHex(16) + "_lin", Path: "/", Secure: true, SameSite: http.SameSiteNoneMode})
}

// setSessionCookie mimics the JSESSIONID every Data Center product sets on an
// authenticated response; the gateway is expected to strip it.
func (c *call) setSessionCookie() {
	http.SetCookie(c, &http.Cookie{Name: "JSESSIONID", Value: strings.ToUpper(randomHex(16)), Path: "/", HttpOnly: true})
}

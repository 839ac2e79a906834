package atlassim

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// routeBitbucket serves https://api.bitbucket.org/2.0 with API tokens (Basic
// email:token) and workspace-confined access tokens (Bearer).
func (s *Sim) routeBitbucket(c *call) {
	u, workspace, ok := s.authBitbucket(c)
	var serve func()
	if _, found := match(c.r.URL.Path, "/2.0/user"); found {
		serve = func() { s.bitbucketUser(c, u, workspace) }
	} else if v, found := match(c.r.URL.Path, "/2.0/repositories/{}"); found {
		serve = func() { s.bitbucketRepos(c, v[0], workspace) }
	}
	switch {
	case serve == nil:
		c.bitbucketError(http.StatusNotFound, "Resource not found")
	case c.bitbucketCheck(ok):
		serve()
	}
}

// bitbucketCheck enforces GET and authentication, answering otherwise.
func (c *call) bitbucketCheck(authenticated bool) bool {
	switch {
	case c.r.Method != http.MethodGet:
		c.bitbucketError(http.StatusMethodNotAllowed, "Method not allowed")
	case !authenticated:
		msg := "Invalid or missing credentials."
		if c.authKind == "bearer" {
			msg = "Access token expired."
		}
		c.Header().Set("WWW-Authenticate", `Basic realm="Bitbucket.org HTTP"`)
		c.bitbucketError(http.StatusUnauthorized, msg)
	default:
		return true
	}
	return false
}

func (c *call) bitbucketError(status int, msg string) {
	c.json(status, map[string]any{"type": "error", "error": map[string]any{"message": msg}})
}

// bitbucketUUID derives a stable "{uuid}" from any string, for accounts that
// the simulator only knows by id.
func bitbucketUUID(s string) string {
	h := sha256.Sum256([]byte(s))
	return fmt.Sprintf("{%x-%x-%x-%x-%x}", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func (s *Sim) bitbucketUser(c *call, u User, workspace string) {
	if workspace != "" {
		// An access token acts as a bot account of its workspace.
		c.json(http.StatusOK, map[string]any{
			"type": "user", "account_id": "access-token-" + workspace, "uuid": bitbucketUUID("bot:" + workspace),
			"display_name": workspace + " access token", "nickname": workspace + "-bot",
		})
		return
	}
	c.json(http.StatusOK, map[string]any{
		"type": "user", "account_id": u.AccountID, "uuid": bitbucketUUID(u.AccountID),
		"display_name": u.DisplayName, "nickname": u.Username,
		"links": map[string]any{"self": map[string]string{"href": c.base + "/2.0/users/" + url.PathEscape(bitbucketUUID(u.AccountID))}},
	})
}

// bitbucketRepos lists a workspace's repositories with Bitbucket's page-based
// pagination (pagelen, page, size, next, previous).
func (s *Sim) bitbucketRepos(c *call, ws, tokenWorkspace string) {
	if tokenWorkspace != "" && tokenWorkspace != ws {
		c.bitbucketError(http.StatusForbidden, "Your credentials lack one or more required privilege scopes.")
		return
	}
	s.mu.RLock()
	repos, ok := s.data.repos[ws]
	repos = append([]repo(nil), repos...)
	s.mu.RUnlock()
	if !ok {
		c.bitbucketError(http.StatusNotFound, "No workspace with identifier '"+ws+"'.")
		return
	}
	q := c.r.URL.Query()
	pagelen := queryInt(q, "pagelen", 10, 1, 100)
	pageNo := queryInt(q, "page", 1, 1, 1<<20)
	start := min((pageNo-1)*pagelen, len(repos))
	end := min(start+pagelen, len(repos))
	values := []map[string]any{}
	for _, r := range repos[start:end] {
		values = append(values, map[string]any{
			"type": "repository", "uuid": r.UUID, "name": r.Name, "slug": r.Slug,
			"full_name": ws + "/" + r.Slug, "is_private": r.Private,
			"links": map[string]any{
				"self": map[string]string{"href": c.base + "/2.0/repositories/" + ws + "/" + r.Slug},
				// The web page is on bitbucket.org, not the API host.
				"html": map[string]string{"href": "https://bitbucket.org/" + ws + "/" + r.Slug},
			},
		})
	}
	body := map[string]any{"values": values, "pagelen": pagelen, "page": pageNo, "size": len(repos)}
	if end < len(repos) {
		body["next"] = fmt.Sprintf("%s/2.0/repositories/%s?pagelen=%d&page=%d", c.base, ws, pagelen, pageNo+1)
	}
	if pageNo > 1 {
		body["previous"] = fmt.Sprintf("%s/2.0/repositories/%s?pagelen=%d&page=%d", c.base, ws, pagelen, pageNo-1)
	}
	c.json(http.StatusOK, body)
}

func queryInt(q url.Values, name string, def, lo, hi int) int {
	n, err := strconv.Atoi(q.Get(name))
	if err != nil {
		return def
	}
	return max(lo, min(n, hi))
}

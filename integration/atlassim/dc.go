package atlassim

import "net/http"

// Data Center hosts accept a personal access token as Bearer or a password
// as Basic (see authDC), answer failures in each product's own shape, and set
// a JSESSIONID cookie on success that the gateway must not pass on.

func (s *Sim) routeJiraDC(c *call) {
	c.product = "jira"
	s.routeDC(c, "/rest/api/2/myself", s.jiraDCMyself, func() {
		if c.authKind != "" {
			c.Header().Set("X-Seraph-LoginReason", "AUTHENTICATED_FAILED")
		}
		c.json(http.StatusUnauthorized, jiraErrors("You are not authenticated. Authentication required to perform this operation."))
	})
}

func (s *Sim) routeConfluenceDC(c *call) {
	c.product = "confluence"
	s.routeDC(c, "/rest/api/content", s.confluenceDCContent, func() {
		c.json(http.StatusUnauthorized, map[string]any{"statusCode": 401, "message": "This request requires authentication."})
	})
}

func (s *Sim) routeBitbucketDC(c *call) {
	s.routeDC(c, "/rest/api/1.0/dashboard/pull-requests", s.bitbucketDCPullRequests, func() {
		c.bitbucketDCError(http.StatusUnauthorized, "Authentication failed. Please check your credentials and try again.",
			"com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException")
	})
}

// routeDC serves the single GET endpoint a DC host simulates.
func (s *Sim) routeDC(c *call, path string, serve func(*call, User), unauthorized func()) {
	u, ok := s.authDC(c)
	switch {
	case c.r.URL.Path != path:
		c.dcError(http.StatusNotFound, "The requested resource could not be found.")
	case c.r.Method != http.MethodGet:
		c.dcError(http.StatusMethodNotAllowed, "Method "+c.r.Method+" is not allowed.")
	case !ok:
		unauthorized()
	default:
		c.setSessionCookie()
		serve(c, u)
	}
}

func (c *call) dcError(status int, msg string) {
	if c.vh.name == HostBitbucketDC {
		c.bitbucketDCError(status, msg, "com.atlassian.bitbucket.rest.NoSuchResourceException")
		return
	}
	c.productError(status)
}

func (c *call) bitbucketDCError(status int, msg, exception string) {
	c.json(status, map[string]any{"errors": []map[string]any{{"context": nil, "message": msg, "exceptionName": exception}}})
}

func (s *Sim) jiraDCMyself(c *call, u User) {
	c.json(http.StatusOK, map[string]any{
		"self":         c.base + "/rest/api/2/user?username=" + u.Username,
		"key":          "JIRAUSER10100",
		"name":         u.Username,
		"emailAddress": u.Email,
		"displayName":  u.DisplayName,
		"active":       true,
		"timeZone":     "Etc/UTC",
	})
}

func (s *Sim) confluenceDCContent(c *call, _ User) {
	s.mu.RLock()
	results := []map[string]any{}
	for _, p := range s.data.pages {
		results = append(results, map[string]any{
			"id": p.ID, "type": "page", "status": "current", "title": p.Title,
			"_links": map[string]any{"webui": "/pages/viewpage.action?pageId=" + p.ID, "self": c.base + "/rest/api/content/" + p.ID},
		})
	}
	s.mu.RUnlock()
	c.json(http.StatusOK, map[string]any{
		"results": results, "start": 0, "limit": 25, "size": len(results),
		"_links": map[string]any{"base": c.base, "context": "", "self": c.base + "/rest/api/content"},
	})
}

func (s *Sim) bitbucketDCPullRequests(c *call, u User) {
	pr := map[string]any{
		"id": 1, "version": 0, "title": "Add gateway configuration", "state": "OPEN", "open": true,
		"author":  map[string]any{"user": map[string]any{"name": u.Username, "displayName": u.DisplayName}, "role": "AUTHOR"},
		"fromRef": map[string]any{"id": "refs/heads/feature/gateway", "repository": map[string]any{"slug": "widgets", "project": map[string]any{"key": "ACME"}}},
		"toRef":   map[string]any{"id": "refs/heads/main", "repository": map[string]any{"slug": "widgets", "project": map[string]any{"key": "ACME"}}},
		"links":   map[string]any{"self": []map[string]string{{"href": c.base + "/projects/ACME/repos/widgets/pull-requests/1"}}},
	}
	c.json(http.StatusOK, map[string]any{"size": 1, "limit": 25, "isLastPage": true, "values": []any{pr}, "start": 0})
}

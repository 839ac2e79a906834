package atlassim

import (
	"net/http"
	"strings"
)

// endpoint is a resolved Jira or Confluence Cloud route: the scope a scoped
// token or OAuth token needs for it at api.atlassian.com/ex, and its handler.
// The same endpoints serve the site and /ex so both routes behave alike.
type endpoint struct {
	scope string
	serve func(*call)
}

// match reports whether path matches pattern, where a "{}" segment matches
// any one non-empty segment, and returns the wildcard segments.
func match(path, pattern string) ([]string, bool) {
	ps, qs := strings.Split(path, "/"), strings.Split(pattern, "/")
	if len(ps) != len(qs) {
		return nil, false
	}
	var vars []string
	for i, q := range qs {
		switch {
		case q == "{}" && ps[i] != "":
			vars = append(vars, ps[i])
		case q != ps[i]:
			return nil, false
		}
	}
	return vars, true
}

// routeSite serves https://<site>.atlassian.net: tenant_info anonymously,
// Jira under /rest and Confluence under /wiki, with classic API tokens.
func (s *Sim) routeSite(c *call) {
	p := c.r.URL.Path
	if p == "/_edge/tenant_info" {
		// Anonymous on purpose: it is how a client learns the cloudId of a
		// site before it holds any token.
		c.json(http.StatusOK, map[string]string{"cloudId": s.cloudID})
		return
	}
	c.product = "jira"
	if p == "/wiki" || strings.HasPrefix(p, "/wiki/") {
		c.product = "confluence"
	}
	ep, status := s.cloudEndpoint(c)
	ok := s.authSite(c) // before the 404 so the recording shows the principal
	if status != 0 {
		c.productError(status)
		return
	}
	if !ok {
		c.unauthorizedSite()
		return
	}
	c.setSiteCookie()
	ep.serve(c)
}

// routeAPI serves https://api.atlassian.com: /ex/{jira|confluence}/{cloudId}/…
// with scoped API tokens or OAuth bearer tokens, and the OAuth
// accessible-resources listing. Handlers registered through Sim.Handle take
// precedence over both.
func (s *Sim) routeAPI(c *call) {
	if c.r.URL.Path == "/oauth/token/accessible-resources" {
		s.accessibleResources(c)
		return
	}
	rest, ok := strings.CutPrefix(c.r.URL.Path, "/ex/")
	if !ok {
		c.json(http.StatusNotFound, map[string]any{"code": http.StatusNotFound, "message": "Not Found"})
		return
	}
	product, rest, _ := strings.Cut(rest, "/")
	cloudID, rest, _ := strings.Cut(rest, "/")
	if (product != "jira" && product != "confluence") || cloudID != s.cloudID {
		c.json(http.StatusNotFound, map[string]any{"code": http.StatusNotFound, "message": "Cloud id not found or product not available: " + product + "/" + cloudID})
		return
	}
	c.product, c.viaEx, c.cloudID = product, true, cloudID
	c.path = "/" + rest
	// Links in responses (self, tiny-link redirects) stay on the /ex route,
	// as Atlassian's do, so a client following them keeps using the API host.
	c.base = c.vh.url + "/ex/" + product + "/" + cloudID
	ep, status := s.cloudEndpoint(c)
	if status != 0 {
		s.authEx(c, "")
		c.productError(status)
		return
	}
	if msg := s.authEx(c, ep.scope); msg != "" {
		c.json(http.StatusUnauthorized, map[string]any{"code": http.StatusUnauthorized, "message": msg})
		return
	}
	ep.serve(c)
}

func (s *Sim) cloudEndpoint(c *call) (endpoint, int) {
	if c.product == "confluence" {
		return s.confluenceEndpoint(c)
	}
	return s.jiraEndpoint(c)
}

// unauthorizedSite answers a failed authentication at the site in the
// product's own error shape.
func (c *call) unauthorizedSite() {
	c.Header().Set("WWW-Authenticate", `Basic realm="protected-area"`)
	if c.product == "confluence" {
		c.json(http.StatusUnauthorized, map[string]any{"statusCode": 401, "message": "This request requires authentication.", "data": map[string]any{"authorized": false, "valid": true, "errors": []any{}, "successful": false}})
		return
	}
	c.json(http.StatusUnauthorized, jiraErrors("Client must be authenticated to access this resource."))
}

// productError answers 404/405 (or another status) in the product's shape.
func (c *call) productError(status int) {
	msg := "The requested resource could not be found."
	if status == http.StatusMethodNotAllowed {
		msg = "Method " + c.r.Method + " is not allowed for this resource."
	}
	if c.product == "confluence" {
		c.json(status, map[string]any{"statusCode": status, "message": msg})
		return
	}
	c.json(status, jiraErrors(msg))
}

func jiraErrors(msgs ...string) map[string]any {
	return map[string]any{"errorMessages": msgs, "errors": map[string]string{}}
}

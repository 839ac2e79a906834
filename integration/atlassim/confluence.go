package atlassim

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
)

// Confluence Cloud scopes: the classic one for REST v1, a granular one for v2.
const (
	scopeConfluenceRead = "read:confluence-content.all"
	scopePageRead       = "read:page:confluence"
)

// confluenceEndpoint resolves a Confluence Cloud path (under /wiki, relative
// to the site or to /ex/confluence/{cloudId}).
func (s *Sim) confluenceEndpoint(c *call) (endpoint, int) {
	p, m := c.path, c.r.Method
	get := func(scope string, f func(*call)) (endpoint, int) {
		return onlyMethod(m, http.MethodGet, endpoint{scope, f})
	}
	if _, ok := match(p, "/wiki/rest/api/content"); ok {
		return get(scopeConfluenceRead, s.confluenceContent)
	}
	if v, ok := match(p, "/wiki/rest/api/content/{}"); ok {
		return get(scopeConfluenceRead, func(c *call) { s.confluenceContentByID(c, v[0]) })
	}
	if _, ok := match(p, "/wiki/api/v2/pages"); ok {
		return get(scopePageRead, s.confluencePagesV2)
	}
	if v, ok := match(p, "/wiki/x/{}"); ok {
		return get(scopeConfluenceRead, func(c *call) { s.confluenceTinyLink(c, v[0]) })
	}
	if v, ok := match(p, "/wiki/spaces/{}/pages/{}"); ok {
		return get(scopeConfluenceRead, func(c *call) { s.confluencePageView(c, v[1]) })
	}
	if v, ok := match(p, "/wiki/spaces/{}/pages/{}/{}"); ok { // trailing title slug
		return get(scopeConfluenceRead, func(c *call) { s.confluencePageView(c, v[1]) })
	}
	return endpoint{}, http.StatusNotFound
}

func (s *Sim) findPage(id string) *page {
	for _, p := range s.data.pages {
		if p.ID == id {
			return p
		}
	}
	return nil
}

func webUI(p *page) string { return "/spaces/" + p.SpaceKey + "/pages/" + p.ID }

func (c *call) contentJSON(p *page) map[string]any {
	return map[string]any{
		"id": p.ID, "type": "page", "status": "current", "title": p.Title,
		"space": map[string]any{"key": p.SpaceKey},
		"_links": map[string]any{
			"webui":  webUI(p),
			"tinyui": "/x/" + tinyLink(p.ID),
			"self":   c.base + "/wiki/rest/api/content/" + p.ID,
		},
	}
}

// confluenceContent lists pages with REST v1's offset paging: `start` and
// `limit` (default 25), and a `_links.next` relative to `_links.base` while
// more remain, which clients join to the base.
func (s *Sim) confluenceContent(c *call) {
	q := c.r.URL.Query()
	limit := queryInt(q, "limit", 25, 1, 250)
	s.mu.RLock()
	start := min(queryInt(q, "start", 0, 0, 1<<20), len(s.data.pages))
	end := min(start+limit, len(s.data.pages))
	results := []map[string]any{}
	for _, p := range s.data.pages[start:end] {
		results = append(results, c.contentJSON(p))
	}
	more := end < len(s.data.pages)
	s.mu.RUnlock()
	links := map[string]any{"base": c.base + "/wiki", "context": "/wiki", "self": c.base + "/wiki/rest/api/content"}
	if more {
		links["next"] = fmt.Sprintf("/rest/api/content?next=true&limit=%d&start=%d", limit, end)
	}
	c.json(http.StatusOK, map[string]any{
		"results": results, "start": start, "limit": limit, "size": len(results), "_links": links,
	})
}

func (s *Sim) confluenceContentByID(c *call, id string) {
	s.mu.RLock()
	p := s.findPage(id)
	var body map[string]any
	if p != nil {
		body = c.contentJSON(p)
	}
	s.mu.RUnlock()
	if p == nil {
		c.productError(http.StatusNotFound)
		return
	}
	c.json(http.StatusOK, body)
}

func (s *Sim) confluencePagesV2(c *call) {
	s.mu.RLock()
	results := []map[string]any{}
	for _, p := range s.data.pages {
		results = append(results, map[string]any{
			"id": p.ID, "status": "current", "title": p.Title, "spaceId": p.SpaceID,
			"_links": map[string]any{"webui": webUI(p), "tinyui": "/x/" + tinyLink(p.ID)},
		})
	}
	s.mu.RUnlock()
	c.json(http.StatusOK, map[string]any{"results": results, "_links": map[string]any{"base": c.base + "/wiki"}})
}

// confluenceTinyLink redirects a /wiki/x/{code} short link with an ABSOLUTE
// Location on the host (and /ex prefix) it was requested through, as
// Confluence does; the gateway must rewrite or follow it without sending the
// client to the upstream directly.
func (s *Sim) confluenceTinyLink(c *call, code string) {
	id, ok := parseTinyLink(code)
	s.mu.RLock()
	var p *page
	if ok {
		p = s.findPage(strconv.FormatUint(id, 10))
	}
	s.mu.RUnlock()
	if p == nil {
		c.productError(http.StatusNotFound)
		return
	}
	c.Header().Set("Location", c.base+"/wiki"+webUI(p))
	c.WriteHeader(http.StatusFound)
}

func (s *Sim) confluencePageView(c *call, id string) {
	s.mu.RLock()
	p := s.findPage(id)
	var title, body string
	if p != nil {
		title, body = p.Title, p.Body
	}
	s.mu.RUnlock()
	if p == nil {
		c.productError(http.StatusNotFound)
		return
	}
	c.Header().Set("Content-Type", "text/html;charset=UTF-8")
	c.WriteHeader(http.StatusOK)
	fmt.Fprintf(c, "<!DOCTYPE html><html><head><title>%s</title></head><body><h1>%s</h1>%s</body></html>\n",
		html.EscapeString(title), html.EscapeString(title), body)
}

// tinyLink encodes a page id the way Confluence tiny links do: the id's
// little-endian bytes in base64, trailing "A"s and padding dropped, with
// "/" and "+" swapped for URL-safe "-" and "_". 65537 → "AQAB".
func tinyLink(id string) string {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return ""
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], n)
	enc := strings.TrimRight(base64.StdEncoding.EncodeToString(b[:]), "=A")
	return strings.NewReplacer("/", "-", "+", "_").Replace(enc)
}

func parseTinyLink(code string) (uint64, bool) {
	code = strings.NewReplacer("-", "/", "_", "+").Replace(code)
	if code == "" || len(code) > 11 {
		return 0, false
	}
	code += strings.Repeat("A", 12-len(code))
	raw, err := base64.StdEncoding.DecodeString(code)
	if err != nil {
		return 0, false
	}
	return binary.LittleEndian.Uint64(raw[:8]), true
}

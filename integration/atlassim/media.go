package atlassim

import (
	"mime"
	"net/http"
)

// routeMedia serves https://api.media.atlassian.com/file/{id}/binary, the
// target of Jira's attachment redirect. Access is granted by the signed token
// in the query alone; an Authorization header is neither needed nor checked,
// but its presence is recorded (Recorded.AuthKind) so tests can catch a
// gateway that forwards credentials across hosts.
func (s *Sim) routeMedia(c *call) {
	v, ok := match(c.r.URL.Path, "/file/{}/binary")
	if !ok {
		c.json(http.StatusNotFound, map[string]any{"error": map[string]any{"code": "NotFound", "title": "Not Found"}})
		return
	}
	if c.r.Method != http.MethodGet && c.r.Method != http.MethodHead {
		c.json(http.StatusMethodNotAllowed, map[string]any{"error": map[string]any{"code": "MethodNotAllowed", "title": "Method Not Allowed"}})
		return
	}
	if !s.validMediaToken(c.r.URL.Query().Get("token"), v[0]) {
		c.json(http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": "Unauthorized", "title": "Invalid or expired token"}})
		return
	}
	s.mu.RLock()
	var a *attachment
	for _, x := range s.data.attachments {
		if x.FileID == v[0] {
			a = x
		}
	}
	s.mu.RUnlock()
	if a == nil {
		c.json(http.StatusNotFound, map[string]any{"error": map[string]any{"code": "NotFound", "title": "File not found"}})
		return
	}
	c.Header().Set("Content-Type", a.MimeType)
	c.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.Filename}))
	c.WriteHeader(http.StatusOK)
	if c.r.Method == http.MethodGet {
		_, _ = c.Write(a.Content)
	}
}

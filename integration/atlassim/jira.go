package atlassim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Jira Cloud scopes (classic OAuth scopes, shared by scoped API tokens).
const (
	scopeJiraUser  = "read:jira-user"
	scopeJiraRead  = "read:jira-work"
	scopeJiraWrite = "write:jira-work"
)

// jiraEndpoint resolves a Jira Cloud REST path (relative to the site or to
// /ex/jira/{cloudId}); the int is 404 or 405 when nothing matches.
func (s *Sim) jiraEndpoint(c *call) (endpoint, int) {
	p, m := c.path, c.r.Method
	if _, ok := match(p, "/rest/api/3/myself"); ok {
		return onlyMethod(m, http.MethodGet, endpoint{scopeJiraUser, s.jiraMyself})
	}
	if _, ok := match(p, "/rest/api/3/issue"); ok {
		return onlyMethod(m, http.MethodPost, endpoint{scopeJiraWrite, s.jiraCreateIssue})
	}
	if v, ok := match(p, "/rest/api/3/issue/{}"); ok {
		switch m {
		case http.MethodGet:
			return endpoint{scopeJiraRead, func(c *call) { s.jiraGetIssue(c, v[0]) }}, 0
		case http.MethodPut:
			return endpoint{scopeJiraWrite, func(c *call) { s.jiraEditIssue(c, v[0]) }}, 0
		}
		return endpoint{}, http.StatusMethodNotAllowed
	}
	if _, ok := match(p, "/rest/api/3/search/jql"); ok {
		return onlyMethod(m, http.MethodGet, endpoint{scopeJiraRead, s.jiraSearch})
	}
	if v, ok := match(p, "/rest/api/3/attachment/content/{}"); ok {
		return onlyMethod(m, http.MethodGet, endpoint{scopeJiraRead, func(c *call) { s.jiraAttachment(c, v[0]) }})
	}
	return endpoint{}, http.StatusNotFound
}

func onlyMethod(got, want string, ep endpoint) (endpoint, int) {
	if got != want {
		return endpoint{}, http.StatusMethodNotAllowed
	}
	return ep, 0
}

func (s *Sim) jiraMyself(c *call) {
	s.mu.RLock()
	u, ok := s.data.users[c.principal]
	s.mu.RUnlock()
	if !ok { // an OAuth principal the simulator has no profile for
		u = User{AccountID: c.principal, DisplayName: c.principal}
	}
	c.json(http.StatusOK, map[string]any{
		"self":         c.base + "/rest/api/3/user?accountId=" + url.QueryEscape(u.AccountID),
		"accountId":    u.AccountID,
		"accountType":  "atlassian",
		"emailAddress": u.Email,
		"displayName":  u.DisplayName,
		"active":       true,
		"timeZone":     "Etc/UTC",
		"locale":       "en_US",
	})
}

// createIssue must be called with s.mu held.
func (s *Sim) createIssue(project, summary string, description any) *issue {
	n := s.data.nextKey[project]
	if n == 0 {
		n = 1
	}
	s.data.nextKey[project] = n + 1
	is := &issue{
		ID: strconv.Itoa(s.data.nextIssueID), Key: project + "-" + strconv.Itoa(n),
		Project: project, Summary: summary, Description: description, Status: "To Do",
	}
	s.data.nextIssueID++
	s.data.issues = append(s.data.issues, is)
	return is
}

// findIssue looks an issue up by key or id; s.mu must be held.
func (s *Sim) findIssue(idOrKey string) *issue {
	for _, is := range s.data.issues {
		if is.Key == idOrKey || is.ID == idOrKey {
			return is
		}
	}
	return nil
}

func (c *call) issueJSON(is *issue) map[string]any {
	return map[string]any{
		"id":   is.ID,
		"key":  is.Key,
		"self": c.base + "/rest/api/3/issue/" + is.ID,
		"fields": map[string]any{
			"summary":     is.Summary,
			"description": is.Description,
			"status":      map[string]any{"name": is.Status},
			"project":     map[string]any{"key": is.Project},
		},
	}
}

func (c *call) issueNotFound() {
	c.json(http.StatusNotFound, jiraErrors("Issue does not exist or you do not have permission to see it."))
}

func (s *Sim) jiraGetIssue(c *call, key string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	is := s.findIssue(key)
	if is == nil {
		c.issueNotFound()
		return
	}
	c.json(http.StatusOK, c.issueJSON(is))
}

// issueBody is the {"fields": {...}} body of issue create and edit.
type issueBody struct {
	Fields struct {
		Project *struct {
			Key string `json:"key"`
		} `json:"project"`
		Summary     *string         `json:"summary"`
		Description json.RawMessage `json:"description"`
	} `json:"fields"`
}

func (c *call) decodeIssue() (issueBody, bool) {
	var b issueBody
	if err := c.decode(&b); err != nil {
		c.json(http.StatusBadRequest, jiraErrors("Unexpected character in request body: "+err.Error()))
		return b, false
	}
	return b, true
}

func rawValue(raw json.RawMessage) any {
	var v any
	_ = json.Unmarshal(raw, &v)
	return v
}

func (s *Sim) jiraEditIssue(c *call, key string) {
	b, ok := c.decodeIssue()
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.findIssue(key)
	if is == nil {
		c.issueNotFound()
		return
	}
	if b.Fields.Summary != nil {
		is.Summary = *b.Fields.Summary
	}
	if b.Fields.Description != nil {
		is.Description = rawValue(b.Fields.Description)
	}
	c.json(http.StatusNoContent, nil)
}

func (s *Sim) jiraCreateIssue(c *call) {
	b, ok := c.decodeIssue()
	if !ok {
		return
	}
	errs := map[string]string{}
	if b.Fields.Project == nil || b.Fields.Project.Key == "" {
		errs["project"] = "Specify a valid project ID or key"
	}
	if b.Fields.Summary == nil || *b.Fields.Summary == "" {
		errs["summary"] = "You must specify a summary of the issue."
	}
	if len(errs) > 0 {
		c.json(http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": errs})
		return
	}
	s.mu.Lock()
	is := s.createIssue(b.Fields.Project.Key, *b.Fields.Summary, rawValue(b.Fields.Description))
	s.mu.Unlock()
	c.json(http.StatusCreated, map[string]any{"id": is.ID, "key": is.Key, "self": c.base + "/rest/api/3/issue/" + is.ID})
}

var jqlProject = regexp.MustCompile(`(?i)\bproject\s*=\s*"?([A-Za-z][A-Za-z0-9_]*)"?`)

// jiraSearch implements the enhanced JQL search just far enough for clients:
// "project = X" filters, anything else returns every issue. It pages like
// Jira's /search/jql: `maxResults` (default 50), an opaque `nextPageToken`
// while more remain, `isLast` on the last page, no URLs.
func (s *Sim) jiraSearch(c *call) {
	q := c.r.URL.Query()
	project := ""
	if m := jqlProject.FindStringSubmatch(q.Get("jql")); m != nil {
		project = strings.ToUpper(m[1])
	}
	maxResults := queryInt(q, "maxResults", 50, 1, 5000)
	start := 0
	if tok := q.Get("nextPageToken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		n, perr := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if err != nil || perr != nil || n < 0 {
			c.productError(http.StatusBadRequest)
			return
		}
		start = n
	}
	s.mu.RLock()
	var matched []*issue
	for _, is := range s.data.issues {
		if project == "" || is.Project == project {
			matched = append(matched, is)
		}
	}
	start = min(start, len(matched))
	end := min(start+maxResults, len(matched))
	issues := []map[string]any{}
	for _, is := range matched[start:end] {
		issues = append(issues, c.issueJSON(is))
	}
	s.mu.RUnlock()
	body := map[string]any{"issues": issues, "isLast": end == len(matched)}
	if end < len(matched) {
		body["nextPageToken"] = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
	}
	c.json(http.StatusOK, body)
}

// jiraAttachment answers like Jira Cloud: 303 to a signed URL on the media
// host. The signed URL needs no Authorization, so a gateway that lets its
// client follow the redirect with credentials attached leaks them to another
// host — the media host records any that arrive.
func (s *Sim) jiraAttachment(c *call, id string) {
	s.mu.RLock()
	a := s.data.attachments[id]
	s.mu.RUnlock()
	if a == nil {
		c.json(http.StatusNotFound, jiraErrors("The attachment with id '"+id+"' does not exist"))
		return
	}
	q := url.Values{"token": {s.mediaToken(a.FileID)}, "client": {"d2b6a9c4-5e1f-4a7b-8c3d-0e9f8a7b6c5d"}, "dl": {"true"}, "name": {a.Filename}}
	c.Header().Set("Location", s.URL(HostMedia)+"/file/"+a.FileID+"/binary?"+q.Encode())
	c.WriteHeader(http.StatusSeeOther)
}

// mediaToken returns a fresh stateless token for fileID: a random nonce and
// an HMAC over nonce and file id, so the media host can verify it without
// storing anything (benchmarks may download millions of times).
func (s *Sim) mediaToken(fileID string) string {
	nonce := randomHex(12)
	return nonce + "." + s.mediaMAC(nonce, fileID)
}

func (s *Sim) mediaMAC(nonce, fileID string) string {
	m := hmac.New(sha256.New, s.mediaKey)
	m.Write([]byte(nonce + "/" + fileID))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Sim) validMediaToken(token, fileID string) bool {
	nonce, mac, ok := strings.Cut(token, ".")
	return ok && hmac.Equal([]byte(mac), []byte(s.mediaMAC(nonce, fileID)))
}

package policy

import (
	"strings"
	"testing"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// TestPathPrefixShortcut: the shared literal prefix only ever rules out paths
// no pattern matches; case and patterns with different tails still match.
func TestPathPrefixShortcut(t *testing.T) {
	r, err := compileRule(Rule{Name: "r", Paths: []string{"/rest/api/3/issue/*", "/rest/api/2/Issue/*/comment", "/rest/api/latest"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.pathPrefix != "/rest/api/" {
		t.Errorf("prefix %q", r.pathPrefix)
	}
	for path, want := range map[string]bool{
		"/REST/API/3/ISSUE/P-1":         true,
		"/rest/api/2/issue/P-1/comment": true,
		"/rest/api/latest":              true,
		"/rest/api/latest/x":            false,
		"/rest/agile/1.0/board":         false,
		"/rest":                         false,
	} {
		if got, _ := r.match(&Input{Path: path}, strings.ToLower(path)); got != want {
			t.Errorf("%s: match %t, want %t", path, got, want)
		}
	}
	if open, _ := compileRule(Rule{Name: "o", Paths: []string{"*/issue/*"}}, 0); open.pathPrefix != "" {
		t.Errorf("a pattern starting with * has prefix %q", open.pathPrefix)
	}
}

// TestPrefixIndexKeepsRuleOrder: with rules indexed by path prefix, by user and
// unindexed mixed, decide still picks the first matching rule in
// configuration order — the one a full scan (trace) finds.
func TestPrefixIndexKeepsRuleOrder(t *testing.T) {
	e, err := newEngine([]Rule{
		{Name: "no-issue-admin", Action: "deny", Paths: []string{"/rest/api/3/issue/*/admin"}},
		{Name: "alice", Users: []string{"alice"}, Credential: "c"},
		{Name: "issues", Paths: []string{"/rest/api/3/issue/*", "/rest/api/2/issue/*"}, Credential: "c"},
		{Name: "api", Paths: []string{"/rest/api/*"}, ReadOnly: true, Credential: "c"},
		{Name: "wiki", Paths: []string{"/wiki/*"}, Credential: "c"},
		{Name: "anything-read", ReadOnly: true, Credential: "c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.byPrefix) != 3 || len(e.open) != 1 {
		t.Fatalf("index: %d prefixes, %d open rules", len(e.byPrefix), len(e.open))
	}
	want := map[[3]string]string{
		{"alice", "GET", "/rest/api/3/issue/P-1/admin"}: "no-issue-admin",
		{"bob", "GET", "/REST/API/3/ISSUE/P-1/ADMIN"}:   "no-issue-admin",
		{"alice", "POST", "/rest/api/3/issue/P-1"}:      "alice",
		{"bob", "POST", "/rest/api/2/issue/P-1"}:        "issues",
		{"bob", "POST", "/rest/api/3/project"}:          "",
		{"bob", "GET", "/rest/api/3/project"}:           "api",
		{"bob", "POST", "/wiki/spaces"}:                 "wiki",
		{"bob", "GET", "/rest/agile/1.0/board"}:         "anything-read",
		{"bob", "GET", "/"}:                             "anything-read",
	}
	for k, rule := range want {
		in := &Input{Identity: &authn.Identity{User: k[0]}, Method: k[1], Path: k[2]}
		if got := e.decide(in).Rule; got != rule {
			t.Errorf("%v: decided by %q, want %q", k, got, rule)
		}
		first := ""
		for _, tr := range e.trace(in) {
			if tr.Matches {
				first = tr.Rule
				break
			}
		}
		if first != rule {
			t.Errorf("%v: a full scan finds %q first, want %q", k, first, rule)
		}
	}
}

// TestPrefixIndexMatchesTrailingSlashVariants: an exact deny rule written with
// a trailing slash still catches the path without it (and the other way
// round) when rules are found through the path-prefix index.
func TestPrefixIndexMatchesTrailingSlashVariants(t *testing.T) {
	e, err := newEngine([]Rule{
		{Name: "no-myself", Action: "deny", Paths: []string{"/rest/api/3/myself/"}},
		{Name: "no-serverinfo", Action: "deny", Paths: []string{"/rest/api/3/serverInfo"}},
		{Name: "rest", Paths: []string{"/rest/*"}, Credential: "c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/rest/api/3/myself":      "no-myself",
		"/rest/api/3/myself/":     "no-myself",
		"/rest/api/3/serverinfo/": "no-serverinfo",
		"/rest/api/3/serverInfo":  "no-serverinfo",
		"/rest/api/3/project":     "rest",
	} {
		d := e.decide(&Input{Method: "GET", Path: path, Identity: &authn.Identity{User: "bob"}})
		if d.Rule != want {
			t.Errorf("%s: decided by %q, want %q", path, d.Rule, want)
		}
	}
}

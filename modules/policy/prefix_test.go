package policy

import (
	"strings"
	"testing"
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

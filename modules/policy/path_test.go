package policy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/atlasgate/atlasgate/modules/authn"
)

func TestNormalizePath(t *testing.T) {
	cases := []struct {
		in, want string // want "" means refused
	}{
		{"", "/"},
		{"/", "/"},
		{"/rest/api/3/issue/DEMO-1", "/rest/api/3/issue/DEMO-1"},
		{"/rest/api/3/issue/", "/rest/api/3/issue/"},
		{"/rest/api/3/issue/../../2/user", "/rest/api/2/user"},
		{"/rest/api/3/./issue", "/rest/api/3/issue"},
		{"/rest/api/3/issue/..", "/rest/api/3/"},
		{"/rest/api/3/%2e%2e/2/user", "/rest/api/2/user"},
		{"/rest/api/3/%2E./2/user", "/rest/api/2/user"},
		{"/rest/api/3/.%2e/2/user", "/rest/api/2/user"},
		{"/rest/api/3/%2e/issue", "/rest/api/3/issue"},
		{"//rest///api/3//issue", "/rest/api/3/issue"},
		{"/wiki/spaces/A%20B", "/wiki/spaces/A B"},
		{"/rest/api/3/%69ssue", "/rest/api/3/issue"},
		{"/wiki/%C3%A9t%C3%A9", "/wiki/été"},
		{"/REST/API/3/Issue", "/REST/API/3/Issue"},
		{"/...", "/..."},
		{"/..", ""},
		{"/a/../../b", ""},
		{"/%2e%2e/etc", ""},
		{"/rest/api/3/issue%2f..%2f..%2fadmin", ""},
		{"/rest/api/3/issue%2F1", ""},
		{"/rest/api/3/issue%5c..%5cadmin", ""},
		{"/rest/api/3/issue\\..\\admin", ""},
		{"/rest/api/3/issue;x=1/../../admin", ""},
		{"/rest/api/3/issue%3b/../admin", ""},
		{"/rest/api/3/%252e%252e/admin", ""},
		{"/rest/api/3/%25", "/rest/api/3/%"},
		{"/rest/api/3/%c0%ae%c0%ae/admin", ""},
		{"/rest/api/3/%e0%80%ae", ""},
		{"/rest/api/3/%ff", ""},
		{"/rest/api/3/%00", ""},
		{"/rest/api/3/%0d%0aX:1", ""},
		{"/rest/%zz", ""},
		{"/rest/%2", ""},
		{"rest/api", ""},
		{"*", ""},
		// Characters that Unicode compatibility normalisation turns into path
		// syntax: an upstream that applies NFKC would route them as such.
		{"/rest/api/3/issue/%EF%BC%8E%EF%BC%8E/myself", ""},    // fullwidth full stops
		{"/rest/api/3/issue/%E2%80%A5/myself", ""},             // two-dot leader
		{"/rest/api/3/issue/%E2%80%A4%E2%80%A4/myself", ""},    // one-dot leaders
		{"/rest/api/3/issue/%EF%B9%92%EF%B9%92/myself", ""},    // small full stops
		{"/rest/api/3/issue/%E2%80%A4", ""},                    // one dot segment
		{"/rest/api/3/issue%EF%BC%8Fmyself", ""},               // fullwidth solidus
		{"/rest/api/3/issue%EF%BC%BCmyself", ""},               // fullwidth reverse solidus
		{"/rest/api/3/issue%EF%B9%A8myself", ""},               // small reverse solidus
		{"/rest/api/3/issue%EF%BC%9Bx", ""},                    // fullwidth semicolon
		{"/rest/api/3/issue%EF%BC%85%32%65", ""},               // fullwidth percent
		{"/rest/api/3/issue/%E2%85%A0", "/rest/api/3/issue/Ⅰ"}, // roman numeral one: no path syntax
		{"/wiki/Title%E2%80%A6", "/wiki/Title…"},               // an ellipsis inside a segment
		{"/wiki/x%EF%BC%8Ey", "/wiki/x．y"},                     // a fullwidth dot inside a segment
	}
	for _, c := range cases {
		got, err := NormalizePath(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("NormalizePath(%q) = %q, want refusal", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestDetectProduct(t *testing.T) {
	for in, want := range map[string]string{
		"/wiki/rest/api/content":         ProductConfluence,
		"/wiki":                          ProductConfluence,
		"/rest/api/3/issue/X-1":          ProductJira,
		"/REST/API/2/myself":             ProductJira,
		"/rest/api/latest/myself":        ProductJira,
		"/rest/agile/1.0/board":          ProductJira,
		"/rest/servicedeskapi/request":   ProductJira,
		"/browse/X-1":                    ProductJira,
		"/2.0/repositories/acme":         ProductBitbucket,
		"/rest/api/1.0/projects":         ProductBitbucket,
		"/rest/api/content/1":            ProductConfluence,
		"/rest/api":                      "",
		"/rest/other/1":                  "",
		"/":                              "",
		"/wikipedia":                     "",
		"/2.0x/repositories":             "",
		"/rest/api/30/issue":             ProductConfluence,
		"/rest/api/3":                    ProductJira,
		"/ex/jira/abc/rest/api/3/myself": "",
	} {
		if got := DetectProduct(in); got != want {
			t.Errorf("DetectProduct(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	cases := []struct {
		pat, path string
		want      bool
	}{
		{"/rest/api/3/issue/*", "/rest/api/3/issue/x-1", true},
		{"/rest/api/3/issue/*", "/rest/api/3/issue/x-1/comment", true},
		{"/rest/api/3/issue/*", "/rest/api/3/issue", false},
		{"/rest/api/3/issue/*", "/rest/api/3/issuex", false},
		{"/rest/api/3/issue", "/rest/api/3/issue", true},
		{"/rest/api/3/issue", "/rest/api/3/issue/", false},
		{"/rest/api/*/myself", "/rest/api/2/myself", true},
		{"/rest/api/*/myself", "/rest/api/2/x/myself", false},
		{"/rest/*/3/*", "/rest/api/3/issue/1", true},
		{"*", "/anything/at/all", true},
		{"/a*b", "/axxb", true},
		{"/a*b", "/ax/b", false},
	}
	for _, c := range cases {
		if got := matchGlob(c.pat, c.path); got != c.want {
			t.Errorf("matchGlob(%q, %q) = %t", c.pat, c.path, got)
		}
	}
}

// FuzzNormalizePath checks the canonical form's invariants and that matching
// it is stable: whatever a client sends, what the policy checks is what the
// upstream gets, and normalising it again changes nothing.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/rest/api/3/issue/../admin", "/%2e%2e/", "//a//b", "/a;b", "/%c0%ae", "/a%2fb", "/a%252e", "/wiki/./x/",
		"/rest/api/3/issue/x/../../myself/", "/rest/api/3/issue/x/../../myself/.", "/rest/api/3/issue/%EF%BC%8E%EF%BC%8E/myself"} {
		f.Add(s)
	}
	e, err := newEngine([]Rule{
		{Name: "deny-myself", Action: "deny", Paths: []string{"/rest/api/3/issue/myself"}},
		{Name: "deny-admin", Action: "deny", Paths: []string{"/rest/api/3/admin*"}},
		{Name: "issues", Paths: []string{"/rest/api/3/issue/*"}, Credential: "c"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := NormalizePath(raw)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.ContainsAny(p, "\\;\x00") || !utf8.ValidString(p) {
			t.Fatalf("NormalizePath(%q) = %q: not canonical", raw, p)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("NormalizePath(%q) = %q: dot segment left", raw, p)
			}
		}
		// What the upstream receives is the standard escaping of p; reading
		// that back must give p again.
		r, err := http.NewRequest("GET", "http://gw"+escapePath(p), nil)
		if err != nil {
			t.Fatalf("canonical %q does not make a request: %v", p, err)
		}
		again, err := NormalizePath(r.URL.EscapedPath())
		if err != nil || again != p {
			t.Fatalf("NormalizePath(%q) = %q, but the forwarded form reads back as %q, %v", raw, p, again, err)
		}
		in := &Input{Identity: &authn.Identity{User: "u"}, Method: "GET", Path: p, Product: DetectProduct(p)}
		d := e.decide(in)
		if d.Allow && !matchGlob("/rest/api/3/issue/*", strings.ToLower(p)) {
			t.Fatalf("%q (canonical %q) allowed outside the allowed paths", raw, p)
		}
		if strings.HasPrefix(strings.ToLower(p), "/rest/api/3/admin") && d.Allow {
			t.Fatalf("%q reached a denied path", raw)
		}
		// The upstream serves a resource with or without a trailing slash,
		// and one that applies NFKC reads the path in that form: neither
		// reaches an exactly denied resource.
		if strings.EqualFold(strings.TrimSuffix(norm.NFKC.String(p), "/"), "/rest/api/3/issue/myself") && d.Allow {
			t.Fatalf("%q (canonical %q) reached the exactly denied resource", raw, p)
		}
		for _, seg := range strings.Split(norm.NFKC.String(p), "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("NormalizePath(%q) = %q: a dot segment after NFKC", raw, p)
			}
		}
	})
}

func escapePath(p string) string {
	u := &url.URL{Path: p}
	return u.EscapedPath()
}

// An exact rule matches the resource the way Jersey routes it: with or
// without a trailing slash, and whatever dot segments lead there.
func TestExactRuleMatchesTrailingSlashVariants(t *testing.T) {
	e, err := newEngine([]Rule{
		{Name: "no-myself", Action: "deny", Paths: []string{"/rest/api/3/myself"}},
		{Name: "no-field-slash", Action: "deny", Paths: []string{"/rest/api/3/field/"}},
		{Name: "rest", Paths: []string{"/rest/*"}, Credential: "c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]string{
		"/rest/api/3/myself":           "no-myself",
		"/rest/api/3/myself/":          "no-myself",
		"/rest/api/3/myself//":         "no-myself",
		"/rest/api/3/myself/.":         "no-myself",
		"/rest/api/3/myself/./":        "no-myself",
		"/rest/api/3/MYSELF/%2e/":      "no-myself",
		"/rest/api/3/myself/x/..":      "no-myself",
		"/rest/api/3/field":            "no-field-slash",
		"/rest/api/3/field/":           "no-field-slash",
		"/rest/api/3/myselfie":         "rest",
		"/rest/api/3/myself/preferred": "rest",
	} {
		p, err := NormalizePath(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		d := e.decide(&Input{Identity: &authn.Identity{User: "u"}, Method: "GET", Path: p})
		if d.Rule != want {
			t.Errorf("%s (canonical %s) decided by %q, want %q", raw, p, d.Rule, want)
		}
	}
}

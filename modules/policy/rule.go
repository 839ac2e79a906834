package policy

import (
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// Rule binds callers to Atlassian requests and a credential. Every condition
// that is set must hold (AND); within a list, one entry is enough (OR), except
// `scopes`, which the token must all carry. A rule without conditions matches
// every request.
type Rule struct {
	// Name of the rule, unique in the policy; in denials, audit events and
	// metrics. Required.
	Name string `json:"name"`
	// `allow` or `deny`. Default: `allow`.
	Action string `json:"action,omitempty"`

	// Identity.User values (the `{http.auth.user.id}`), compared exactly.
	Users []string `json:"users,omitempty"`
	// Identity.Subject values (token `sub`, API key id, certificate identity).
	Subjects []string `json:"subjects,omitempty"`
	// Groups or roles; the identity needs one of them.
	Groups []string `json:"groups,omitempty"`
	// Scopes the identity must all hold.
	Scopes []string `json:"scopes,omitempty"`
	// Claims: each named claim must equal one of the values (a list claim must
	// contain one). Non-string claims are compared in their JSON form.
	Claims map[string][]string `json:"claims,omitempty"`
	// Labels (API key labels, certificate fields): each must equal one of the values.
	Labels map[string][]string `json:"labels,omitempty"`
	// Names of the authenticators (as configured in the atlasgate app) that
	// must have accepted the caller.
	Authenticators []string `json:"authenticators,omitempty"`

	// HTTP methods, case-insensitive.
	Methods []string `json:"methods,omitempty"`
	// Only GET, HEAD and OPTIONS. Default: false.
	ReadOnly bool `json:"read_only,omitempty"`
	// Products: `jira`, `confluence`, `bitbucket` (see DetectProduct).
	Products []string `json:"products,omitempty"`
	// Request hosts (the Host header without port), case-insensitive.
	Hosts []string `json:"hosts,omitempty"`
	// Path patterns on the canonical path, case-insensitive. `*` matches
	// within one segment; a trailing `*` matches the rest of the path.
	Paths []string `json:"paths,omitempty"`
	// Client networks: CIDRs or addresses (see the policy's trusted_proxies).
	Sources []string `json:"sources,omitempty"`
	// Time windows; the request time must fall in one.
	Times []TimeWindow `json:"times,omitempty"`

	// The credential to inject on allow. Required unless atlasgate_proxy names
	// its own, or CredentialHeader chooses one.
	Credential string `json:"credential,omitempty"`
	// A request header that chooses the credential among CredentialChoices;
	// without the header, Credential is used.
	CredentialHeader string `json:"credential_header,omitempty"`
	// The credentials CredentialHeader may choose.
	CredentialChoices []string `json:"credential_choices,omitempty"`

	// Rate limit per identity for requests this rule allows. Default: none.
	Rate *Rate `json:"rate,omitempty"`
}

// Input is what a decision looks at.
type Input struct {
	Identity *authn.Identity
	Method   string
	Host     string
	// Path is the canonical path (NormalizePath).
	Path     string
	Product  string
	ClientIP netip.Addr
	Header   http.Header
	Time     time.Time
}

type rule struct {
	Rule
	index    int
	deny     bool
	users    map[string]bool
	subjects map[string]bool
	groups   map[string]bool
	methods  map[string]bool
	products map[string]bool
	hosts    map[string]bool
	paths    []string
	sources  []netip.Prefix
	windows  []window
	choices  map[string]bool
	rate     *rate

	// pathPrefix is what every path pattern starts with before its first
	// `*`: a path without it matches none of them, and one comparison says so.
	pathPrefix string
	reason     string // "allowed by rule <name>" or "denied by rule <name>", built once
}

var ruleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func set(ss []string, norm func(string) string) map[string]bool {
	if len(ss) == 0 {
		return nil
	}
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		if norm != nil {
			s = norm(s)
		}
		m[s] = true
	}
	return m
}

func compileRule(r Rule, i int) (*rule, error) {
	c := &rule{Rule: r, index: i}
	if !ruleName.MatchString(r.Name) {
		return nil, fmt.Errorf("rule #%d: name %q: use letters, digits, '.', '_' and '-', at most 64 characters", i+1, r.Name)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("rule %q: "+format, append([]any{r.Name}, args...)...)
	}
	switch r.Action {
	case "", "allow":
	case "deny":
		c.deny = true
		if r.Credential != "" || r.CredentialHeader != "" || r.Rate != nil {
			return nil, fail("a deny rule takes no credential or rate")
		}
	default:
		return nil, fail("action %q: use allow or deny", r.Action)
	}
	c.users, c.subjects, c.groups = set(r.Users, nil), set(r.Subjects, nil), set(r.Groups, nil)
	c.methods = set(r.Methods, strings.ToUpper)
	c.hosts = set(r.Hosts, strings.ToLower)
	c.products = set(r.Products, strings.ToLower)
	for p := range c.products {
		if p != ProductJira && p != ProductConfluence && p != ProductBitbucket {
			return nil, fail("product %q: use jira, confluence or bitbucket", p)
		}
	}
	for _, p := range r.Paths {
		if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*") {
			return nil, fail("path %q must start with /", p)
		}
		c.paths = append(c.paths, strings.ToLower(p))
	}
	c.pathPrefix = literalPrefix(c.paths)
	var err error
	if c.sources, err = parsePrefixes(r.Sources); err != nil {
		return nil, fail("source: %v", err)
	}
	for _, tw := range r.Times {
		w, err := tw.compile()
		if err != nil {
			return nil, fail("time: %v", err)
		}
		c.windows = append(c.windows, w)
	}
	if (r.CredentialHeader == "") != (len(r.CredentialChoices) == 0) {
		return nil, fail("credential_header and credential_choices go together")
	}
	c.choices = set(r.CredentialChoices, nil)
	if r.Rate != nil {
		if c.rate, err = r.Rate.compile(); err != nil {
			return nil, fail("rate: %v", err)
		}
	}
	return c, nil
}

// match reports whether the rule applies to in; if not, it names the first
// condition that failed. lowerPath is in.Path lowercased (the caller does it
// once for all rules).
func (c *rule) match(in *Input, lowerPath string) (bool, string) {
	id := in.Identity
	if id == nil && (len(c.Authenticators) > 0 || c.users != nil || c.subjects != nil || c.groups != nil ||
		len(c.Scopes) > 0 || len(c.Claims) > 0 || len(c.Labels) > 0) {
		return false, "the request is not authenticated"
	}
	if len(c.Authenticators) > 0 && !slices.Contains(c.Authenticators, id.Authenticator) {
		return false, "authenticator " + id.Authenticator + " not listed"
	}
	if c.users != nil && !c.users[id.User] {
		return false, "user not listed"
	}
	if c.subjects != nil && !c.subjects[id.Subject] {
		return false, "subject not listed"
	}
	if c.groups != nil && !anyIn(id.Groups, c.groups) {
		return false, "no listed group"
	}
	for _, s := range c.Scopes {
		if !slices.Contains(id.Scopes, s) {
			return false, "scope " + s + " missing"
		}
	}
	// Starting a map iteration costs even when the map is empty, on every
	// rule of every request: check the length first.
	if len(c.Claims) > 0 {
		for k, vals := range c.Claims {
			if !claimMatches(id.Claims[k], vals) {
				return false, "claim " + k + " does not match"
			}
		}
	}
	if len(c.Labels) > 0 {
		for k, vals := range c.Labels {
			v, ok := id.Labels[k]
			if !ok || !slices.Contains(vals, v) {
				return false, "label " + k + " does not match"
			}
		}
	}
	if c.methods != nil && !c.methods[in.Method] {
		return false, "method " + in.Method + " not listed"
	}
	if c.ReadOnly && !readOnly(in.Method) {
		return false, "read_only: method " + in.Method + " writes"
	}
	if c.products != nil && !c.products[in.Product] {
		return false, "product " + orUnknown(in.Product) + " not listed"
	}
	if c.hosts != nil && !c.hosts[strings.ToLower(in.Host)] {
		return false, "host not listed"
	}
	if c.paths != nil && !c.pathMatches(lowerPath) {
		return false, "path not listed"
	}
	if c.sources != nil && (!in.ClientIP.IsValid() || !containsAddr(c.sources, in.ClientIP)) {
		return false, "client address not in source networks"
	}
	if c.windows != nil && !c.inWindow(in.Time) {
		return false, "outside the time windows"
	}
	return true, ""
}

// pathMatches matches the way Atlassian routes: case-insensitively (p is
// lowercased once per decision), and with a trailing slash on either side
// making no difference, because Jira's and Confluence's REST layer (Jersey)
// serves `/rest/api/3/myself/` as `/rest/api/3/myself`. A deny rule for the
// one is a deny rule for the other (and `…/myself/.`, `…/myself//` normalise
// to the trailing-slash form).
func (c *rule) pathMatches(p string) bool {
	if !strings.HasPrefix(p, c.pathPrefix) {
		return false
	}
	bare := trimTrailingSlash(p)
	for _, pat := range c.paths {
		if matchGlob(pat, p) || matchGlob(trimTrailingSlash(pat), bare) {
			return true
		}
	}
	return false
}

func trimTrailingSlash(p string) string {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return p[:len(p)-1]
	}
	return p
}

func (c *rule) inWindow(t time.Time) bool {
	for _, w := range c.windows {
		if w.contains(t) {
			return true
		}
	}
	return false
}

func readOnly(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func orUnknown(p string) string {
	if p == "" {
		return "unknown"
	}
	return p
}

func anyIn(have []string, want map[string]bool) bool {
	for _, h := range have {
		if want[h] {
			return true
		}
	}
	return false
}

func claimMatches(v any, want []string) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return slices.Contains(want, v)
	case []any:
		for _, e := range v {
			if claimMatches(e, want) {
				return true
			}
		}
		return false
	case []string:
		for _, e := range v {
			if slices.Contains(want, e) {
				return true
			}
		}
		return false
	}
	return slices.Contains(want, fmt.Sprint(v))
}

// fingerprint is the rule's conditions in a canonical form: two rules with the
// same fingerprint match the same requests.
func (c *rule) fingerprint() string {
	var b strings.Builder
	list := func(name string, ss []string, norm func(string) string) {
		cp := make([]string, 0, len(ss))
		for _, s := range ss {
			if norm != nil {
				s = norm(s)
			}
			cp = append(cp, s)
		}
		sort.Strings(cp)
		cp = slices.Compact(cp)
		fmt.Fprintf(&b, "%s=%q;", name, cp)
	}
	list("u", c.Users, nil)
	list("s", c.Subjects, nil)
	list("g", c.Groups, nil)
	list("sc", c.Scopes, nil)
	list("a", c.Authenticators, nil)
	list("m", c.Methods, strings.ToUpper)
	list("p", c.Products, strings.ToLower)
	list("h", c.Hosts, strings.ToLower)
	list("path", c.Paths, strings.ToLower)
	list("src", c.Sources, nil)
	for _, kv := range []map[string][]string{c.Claims, c.Labels} {
		keys := make([]string, 0, len(kv))
		for k := range kv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			list("kv:"+k, kv[k], nil)
		}
		b.WriteString("|")
	}
	fmt.Fprintf(&b, "ro=%t;t=%v", c.ReadOnly, c.Times)
	return b.String()
}

// catchAll reports whether the rule has no condition at all.
func (c *rule) catchAll() bool {
	return c.fingerprint() == (&rule{}).fingerprint()
}

// literalPrefix is the longest prefix all patterns share before their first
// `*` (the only wildcard matchGlob knows).
func literalPrefix(patterns []string) string {
	if len(patterns) == 0 {
		return ""
	}
	// Without their trailing slash: a path matches a pattern with or
	// without one (see pathMatches), so the prefix must hold for both.
	prefix := trimTrailingSlash(patterns[0])
	for _, p := range patterns {
		p = trimTrailingSlash(p)
		if i := strings.IndexByte(p, '*'); i >= 0 {
			p = p[:i]
		}
		n := 0
		for n < len(prefix) && n < len(p) && prefix[n] == p[n] {
			n++
		}
		prefix = prefix[:n]
	}
	return prefix
}

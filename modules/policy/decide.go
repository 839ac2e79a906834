package policy

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// Decision is the outcome of the policy for one request.
type Decision struct {
	// Allow is true when a rule allows the request.
	Allow bool `json:"allow"`
	// Status is the HTTP status of a denial (403) or 0 on allow.
	Status int `json:"status,omitempty"`
	// Error is the stable error code of a denial: access_denied (a deny
	// rule), no_rule_matched, credential_not_permitted.
	Error string `json:"error,omitempty"`
	// Rule is the name of the deciding rule; empty when none matched.
	Rule string `json:"rule,omitempty"`
	// Reason says why, for people.
	Reason string `json:"reason"`
	// Credential is the name of the credential to inject (allow only).
	Credential string `json:"credential,omitempty"`

	rule *rule
}

// engine is the compiled rule list with its index; the handler and the explain
// route decide with the same engine.
type engine struct {
	rules   []*rule
	byUser  map[string][]int
	byGroup map[string][]int
	open    []int // rules indexed neither by user, group nor path prefix
	trusted []netip.Prefix

	// Rules without an identity condition whose path patterns share a literal
	// prefix, by that prefix: a rule is a candidate only for paths that start
	// with it, found with one map lookup per distinct prefix length.
	byPrefix      map[string][]int
	prefixLengths []int // distinct lengths of byPrefix's keys, ascending
}

// newEngine compiles the rules and checks that each can be reached.
func newEngine(rules []Rule) (*engine, error) {
	e := &engine{byUser: map[string][]int{}, byGroup: map[string][]int{}}
	names := map[string]bool{}
	seen := map[string]string{}
	for i, r := range rules {
		c, err := compileRule(r, i)
		if err != nil {
			return nil, err
		}
		if names[r.Name] {
			return nil, fmt.Errorf("rule %q: the name is used twice", r.Name)
		}
		names[r.Name] = true
		c.reason = "allowed by rule " + r.Name
		if c.deny {
			c.reason = "denied by rule " + r.Name
		}
		fp := c.fingerprint()
		if prev, ok := seen[fp]; ok {
			return nil, fmt.Errorf("rule %q is unreachable: rule %q before it has the same conditions", r.Name, prev)
		}
		seen[fp] = r.Name
		if i > 0 && e.rules[i-1].catchAll() {
			return nil, fmt.Errorf("rule %q is unreachable: rule %q before it has no conditions and matches every request", r.Name, e.rules[i-1].Name)
		}
		e.rules = append(e.rules, c)
		// Index by the most selective identity condition: a rule naming users
		// is a candidate only for those users, one naming groups only for
		// members. Evaluation stays in rule order (see decide).
		switch {
		case c.users != nil:
			for u := range c.users {
				e.byUser[u] = append(e.byUser[u], i)
			}
		case c.groups != nil:
			for g := range c.groups {
				e.byGroup[g] = append(e.byGroup[g], i)
			}
		case c.pathPrefix != "":
			if e.byPrefix == nil {
				e.byPrefix = map[string][]int{}
			}
			if !slices.Contains(e.prefixLengths, len(c.pathPrefix)) {
				e.prefixLengths = append(e.prefixLengths, len(c.pathPrefix))
			}
			e.byPrefix[c.pathPrefix] = append(e.byPrefix[c.pathPrefix], i)
		default:
			e.open = append(e.open, i)
		}
	}
	slices.Sort(e.prefixLengths)
	return e, nil
}

// decide finds the first rule, in configuration order, that matches in. The
// index only skips rules that cannot match (they name users or groups the
// identity lacks), so the result is that of checking every rule in order.
func (e *engine) decide(in *Input) Decision {
	var lists [][]int
	var stack [8][]int
	lists = stack[:0]
	if len(e.open) > 0 {
		lists = append(lists, e.open)
	}
	// Rules compare paths case-insensitively: lower the path once, not per rule.
	lowerPath := strings.ToLower(in.Path)
	for _, n := range e.prefixLengths {
		if n <= len(lowerPath) {
			if l := e.byPrefix[lowerPath[:n]]; len(l) > 0 {
				lists = append(lists, l)
			}
		}
	}
	if in.Identity != nil {
		if l := e.byUser[in.Identity.User]; len(l) > 0 {
			lists = append(lists, l)
		}
		for _, g := range in.Identity.Groups {
			if l := e.byGroup[g]; len(l) > 0 {
				lists = append(lists, l)
			}
		}
	}
	last := -1
	for {
		// k-way merge of the sorted candidate lists.
		best, bi := -1, -1
		for li, l := range lists {
			for len(l) > 0 && l[0] <= last {
				l = l[1:]
			}
			lists[li] = l
			if len(l) > 0 && (best < 0 || l[0] < best) {
				best, bi = l[0], li
			}
		}
		if bi < 0 {
			break
		}
		last = best
		r := e.rules[best]
		if ok, _ := r.match(in, lowerPath); ok {
			return r.decision(in)
		}
	}
	return Decision{Status: http.StatusForbidden, Error: "no_rule_matched", Reason: "no rule matched"}
}

// decision is what a matching rule decides.
func (r *rule) decision(in *Input) Decision {
	d := Decision{Rule: r.Name, rule: r}
	if r.deny {
		d.Status, d.Error, d.Reason = http.StatusForbidden, "access_denied", r.reason
		return d
	}
	d.Allow, d.Credential, d.Reason = true, r.Credential, r.reason
	if r.CredentialHeader != "" {
		if v := in.Header.Get(r.CredentialHeader); v != "" {
			if !r.choices[v] {
				return Decision{Rule: r.Name, rule: r, Status: http.StatusForbidden, Error: "credential_not_permitted",
					Reason: fmt.Sprintf("rule %s does not permit the credential named in %s", r.Name, r.CredentialHeader)}
			}
			d.Credential = v
			d.Reason += ", credential chosen by " + r.CredentialHeader
		}
	}
	return d
}

// RuleTrace is one rule's verdict in an explanation.
type RuleTrace struct {
	Rule    string `json:"rule"`
	Action  string `json:"action"`
	Matches bool   `json:"matches"`
	// Why not, when it does not match.
	Reason string `json:"reason,omitempty"`
}

// trace checks every rule, in order, for an explanation.
func (e *engine) trace(in *Input) []RuleTrace {
	out := make([]RuleTrace, 0, len(e.rules))
	lowerPath := strings.ToLower(in.Path)
	for _, r := range e.rules {
		ok, why := r.match(in, lowerPath)
		action := "allow"
		if r.deny {
			action = "deny"
		}
		out = append(out, RuleTrace{Rule: r.Name, Action: action, Matches: ok, Reason: why})
	}
	return out
}

// credentialNames lists every credential the rules may select, sorted.
func (e *engine) credentialNames() map[string][]string {
	out := map[string][]string{}
	for _, r := range e.rules {
		if r.Credential != "" {
			out[r.Credential] = append(out[r.Credential], r.Name)
		}
		for _, c := range r.CredentialChoices {
			out[c] = append(out[c], r.Name)
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

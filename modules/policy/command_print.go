package policy

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// printExplanations writes, for each policy, a one-line verdict first and
// then the details an operator reads to see why: the path the rules saw, the
// caller, each rule in order and the rate limits.
func printExplanations(w io.Writer, list []Explanation) {
	for i, e := range list {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, verdict(e))
		if e.Path != "" {
			line := "  path     " + e.Path
			if e.Product != "" {
				line += " (" + e.Product + ")"
			}
			fmt.Fprintln(w, line)
		}
		fmt.Fprintln(w, "  caller   "+caller(e))
		if e.ClientIP != "" {
			fmt.Fprintln(w, "  client   "+e.ClientIP)
		}
		if len(e.Rules) > 0 {
			fmt.Fprintln(w, "  rules, in order:")
			for _, r := range e.Rules {
				mark, why := "no ", ": "+r.Reason
				if r.Matches {
					mark, why = "YES", ""
				}
				fmt.Fprintf(w, "    %s %s (%s)%s\n", mark, r.Rule, r.Action, why)
			}
		}
		if len(e.RateLimits) > 0 {
			fmt.Fprintln(w, "  rate limits: "+strings.Join(e.RateLimits, ", "))
		}
	}
}

// verdict is the one line that answers "would this request pass?".
func verdict(e Explanation) string {
	d := e.Decision
	switch {
	case d == nil:
		return fmt.Sprintf("REFUSE (%d %s) by policy %q: %s", e.Status, e.Error, e.Policy, e.Reason)
	case d.Allow:
		s := fmt.Sprintf("ALLOW by rule %q of policy %q", d.Rule, e.Policy)
		if d.Credential != "" {
			s += ", injecting credential " + d.Credential
		}
		return s
	case d.Rule != "":
		return fmt.Sprintf("DENY (%d %s) by rule %q of policy %q: %s", d.Status, d.Error, d.Rule, e.Policy, d.Reason)
	default:
		return fmt.Sprintf("DENY (%d %s) by policy %q: %s", d.Status, d.Error, e.Policy, d.Reason)
	}
}

func caller(e Explanation) string {
	id := e.Identity
	if id == nil {
		return "anonymous (no identity given)"
	}
	s := id.User
	if s == "" {
		s = id.Subject
	}
	if s == "" {
		s = "(no user)"
	}
	if id.Authenticator != "" {
		s += " via " + id.Authenticator
	}
	if len(id.Groups) > 0 {
		s += ", groups " + strings.Join(id.Groups, " ")
	}
	if len(id.Scopes) > 0 {
		s += ", scopes " + strings.Join(id.Scopes, " ")
	}
	for _, k := range slices.Sorted(maps.Keys(id.Labels)) {
		s += ", " + k + "=" + id.Labels[k]
	}
	return s
}

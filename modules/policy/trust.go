package policy

import (
	"fmt"
	"slices"
	"strings"
)

// checkIdentityTrust ties identity conditions to authenticators. A group
// name, a user name or a claim value means something only for the identity
// provider that issued it: `groups jira-readers` written for the corporate
// IdP would otherwise also match a partner issuer's token that carries a
// group of that name. So when the atlasgate app defines several
// authenticators, a rule that matches users, subjects, groups, scopes,
// claims or labels must name the authenticators it trusts; and every name a
// rule lists must be defined (a typo would make the rule never match).
// authenticators is nil when there is no app to check against (unit tests).
func checkIdentityTrust(rules []*rule, authenticators []string) error {
	if authenticators == nil {
		return nil
	}
	for _, r := range rules {
		for _, a := range r.Authenticators {
			if !slices.Contains(authenticators, a) {
				return fmt.Errorf("rule %q: authenticator %q is not defined in the atlasgate app (defined: %s)",
					r.Name, a, orNone(authenticators))
			}
		}
		if len(authenticators) < 2 || len(r.Authenticators) > 0 {
			continue
		}
		if conds := r.identityConditions(); len(conds) > 0 {
			return fmt.Errorf("rule %q: it matches %s, and several authenticators are defined (%s): add `authenticator <name>...` "+
				"naming the ones whose %s it trusts, or an identity from another would match too",
				r.Name, strings.Join(conds, ", "), strings.Join(authenticators, ", "), strings.Join(conds, "/"))
		}
	}
	return nil
}

// identityConditions names the rule's conditions on who the caller is.
func (c *rule) identityConditions() []string {
	var out []string
	for _, x := range []struct {
		name string
		set  bool
	}{
		{"users", len(c.Users) > 0}, {"subjects", len(c.Subjects) > 0}, {"groups", len(c.Groups) > 0},
		{"scopes", len(c.Scopes) > 0}, {"claims", len(c.Claims) > 0}, {"labels", len(c.Labels) > 0},
	} {
		if x.set {
			out = append(out, x.name)
		}
	}
	return out
}

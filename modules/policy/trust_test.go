package policy

import (
	"strings"
	"testing"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// A rule for the corporate IdP's jira-readers must not match a partner
// issuer's token with a group of that name: with several authenticators, a
// rule with identity conditions that names none is refused at load.
func TestIdentityConditionsTiedToAuthenticators(t *testing.T) {
	cases := []struct {
		name  string
		rule  Rule
		authn []string
		err   string // "" for accepted
	}{
		{"groups, several authenticators", Rule{Name: "readers", Groups: []string{"jira-readers"}, Credential: "c"}, []string{"corp", "partner"}, `rule "readers": it matches groups, and several authenticators are defined (corp, partner)`},
		{"claims and users", Rule{Name: "r", Users: []string{"bob"}, Claims: map[string][]string{"ref": {"main"}}, Credential: "c"}, []string{"a", "b"}, "it matches users, claims"},
		{"labels", Rule{Name: "r", Labels: map[string][]string{"team": {"x"}}, Credential: "c"}, []string{"a", "b"}, "it matches labels"},
		{"named", Rule{Name: "r", Groups: []string{"jira-readers"}, Authenticators: []string{"corp"}, Credential: "c"}, []string{"corp", "partner"}, ""},
		{"one authenticator", Rule{Name: "r", Groups: []string{"jira-readers"}, Credential: "c"}, []string{"corp"}, ""},
		{"no identity condition", Rule{Name: "r", Paths: []string{"/rest/*"}, Credential: "c"}, []string{"corp", "partner"}, ""},
		{"unknown authenticator", Rule{Name: "r", Groups: []string{"g"}, Authenticators: []string{"crop"}, Credential: "c"}, []string{"corp", "partner"}, `authenticator "crop" is not defined in the atlasgate app (defined: corp, partner)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := newEngine([]Rule{c.rule})
			if err != nil {
				t.Fatal(err)
			}
			err = checkIdentityTrust(e.rules, c.authn)
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("got %v, want %q", err, c.err)
			}
		})
	}

	// Once named, the partner's identity with the same group no longer matches.
	e, _ := newEngine([]Rule{{Name: "readers", Groups: []string{"jira-readers"}, Authenticators: []string{"corp"}, Credential: "c"}})
	partner := &Input{Identity: &authn.Identity{Authenticator: "partner", User: "p", Groups: []string{"jira-readers"}}, Method: "GET", Path: "/"}
	if d := e.decide(partner); d.Allow {
		t.Error("the partner's token matched the corporate rule")
	}
}

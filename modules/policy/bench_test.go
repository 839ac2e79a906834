package policy

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// BenchmarkDecide decides for 10,000 identities against 1,000 rules: half name
// users (10 each), half name groups; a few open rules sit at the end. The
// index keeps the cost near that of the handful of candidate rules.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			var rules []Rule
			for i := 0; i < n; i++ {
				r := Rule{Name: fmt.Sprintf("r%d", i), Products: []string{"jira"}, Paths: []string{fmt.Sprintf("/rest/api/3/issue/P%d-*", i%50), fmt.Sprintf("/rest/api/3/search/r%d", i)}, Credential: "c"}
				if i%2 == 0 {
					for u := 0; u < 10; u++ {
						r.Users = append(r.Users, fmt.Sprintf("user%d", (i*10+u)%10000))
					}
				} else {
					r.Groups = []string{fmt.Sprintf("group%d", i%500)}
				}
				rules = append(rules, r)
			}
			rules = append(rules, Rule{Name: "read-all", ReadOnly: true, Products: []string{"confluence"}, Credential: "c"})
			e, err := newEngine(rules)
			if err != nil {
				b.Fatal(err)
			}
			ids := make([]*Input, 10000)
			for i := range ids {
				ids[i] = &Input{
					Identity: &authn.Identity{User: fmt.Sprintf("user%d", i), Groups: []string{fmt.Sprintf("group%d", i%500), "everyone"}},
					Method:   "GET", Path: fmt.Sprintf("/rest/api/3/issue/P%d-1", i%50), Product: ProductJira, Header: http.Header{},
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			allowed := 0
			for i := 0; i < b.N; i++ {
				if e.decide(ids[i%len(ids)]).Allow {
					allowed++
				}
			}
			_ = allowed
		})
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`atlasgate_policy main {
		rule jira-readers {
			allow
			users alice bob
			groups dev ops
			scopes read:jira
			claim repository acme/widgets acme/gadgets
			label team=payments team=search
			authenticator github
			methods GET HEAD
			read_only
			product jira
			paths /rest/api/3/issue/* /rest/api/3/search/*
			host jira.example.com
			source 10.0.0.0/8 192.0.2.7
			time Mon-Fri 08:00-18:00 Europe/Berlin
			time Sat
			credential jira-bot
			credential_from_header X-Atlasgate-Credential jira-a jira-b
			rate 10/s burst 20
		}
		rule no-admin {
			deny
			paths /rest/api/3/admin*
		}
		identity_rate 100/m
		credential_rate jira-bot 100/s burst 150
		trusted_proxies 10.0.0.0/8
		upstream_hold_back 2m
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if err := h.setup(nil); err != nil {
		t.Fatal(err)
	}
	r := h.Rules[0]
	got := fmt.Sprintf("%s %s %v %v %v %v %v %v %v %v %t %v %v %v %v %+v %s %s %v %+v",
		h.Name, r.Name, r.Users, r.Groups, r.Scopes, r.Claims, r.Labels, r.Authenticators, r.Methods, r.Products, r.ReadOnly,
		r.Paths, r.Hosts, r.Sources, len(r.Times), r.Times[0], r.Credential, r.CredentialHeader, r.CredentialChoices, *r.Rate)
	want := "main jira-readers [alice bob] [dev ops] [read:jira] map[repository:[acme/widgets acme/gadgets]] map[team:[payments search]] [github] [GET HEAD] [jira] true [/rest/api/3/issue/* /rest/api/3/search/*] [jira.example.com] [10.0.0.0/8 192.0.2.7] 2 {Days:Mon-Fri Start:08:00 End:18:00 TimeZone:Europe/Berlin} jira-bot X-Atlasgate-Credential [jira-a jira-b] {Requests:10 Per:1000000000 Burst:20}"
	if got != want {
		t.Errorf("parsed\n%s\nwant\n%s", got, want)
	}
	if h.Rules[1].Action != "deny" || h.IdentityRate.Requests != 100 || h.CredentialRates["jira-bot"].Burst != 150 ||
		h.TrustedProxies[0] != "10.0.0.0/8" || h.holdBack.Minutes() != 2 {
		t.Errorf("policy options: %+v", h)
	}
	for _, bad := range []string{
		"atlasgate_policy {\n rule\n}",
		"atlasgate_policy { rule r { frobnicate } }",
		"atlasgate_policy { rule r { label team } }",
		"atlasgate_policy { rule r { rate 10/s bursty 3 } }",
		"atlasgate_policy { rule r { time Mon 08:00-18:00 Europe/Berlin extra } }",
		"atlasgate_policy { nope }",
		"atlasgate_policy { upstream_hold_back soon }",
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("accepted: %s", bad)
		}
	}
}

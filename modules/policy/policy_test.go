package policy

import (
	"context"
	"encoding/json"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/atlasgate/atlasgate/modules/authhandler"
	"github.com/atlasgate/atlasgate/modules/authn"
	"github.com/atlasgate/atlasgate/modules/proxy"
)

// A Wednesday, 10:30 in Berlin (CEST).
var wed1030 = time.Date(2025, 6, 11, 8, 30, 0, 0, time.UTC)

func TestRuleMatching(t *testing.T) {
	alice := &authn.Identity{Authenticator: "oidc", Kind: "jwt", User: "alice", Subject: "sub-a",
		Groups: []string{"dev"}, Scopes: []string{"read:jira", "write:jira"},
		Labels: map[string]string{"team": "payments"},
		Claims: map[string]any{"repository": "acme/widgets", "aud": []any{"gw", "x"}, "admin": true}}
	get := Input{Identity: alice, Method: "GET", Host: "gw.example.com", Path: "/rest/api/3/issue/X-1",
		Product: ProductJira, ClientIP: netip.MustParseAddr("10.1.2.3"), Time: wed1030}
	with := func(f func(*Input)) Input { in := get; f(&in); return in }
	cases := []struct {
		name string
		rule Rule
		in   Input
		want bool
		why  string
	}{
		{"no conditions", Rule{}, get, true, ""},
		{"user", Rule{Users: []string{"bob", "alice"}}, get, true, ""},
		{"other user", Rule{Users: []string{"bob"}}, get, false, "user not listed"},
		{"subject", Rule{Subjects: []string{"sub-a"}}, get, true, ""},
		{"group", Rule{Groups: []string{"ops", "dev"}}, get, true, ""},
		{"no group", Rule{Groups: []string{"ops"}}, get, false, "no listed group"},
		{"all scopes", Rule{Scopes: []string{"read:jira", "write:jira"}}, get, true, ""},
		{"missing scope", Rule{Scopes: []string{"read:jira", "admin"}}, get, false, "scope admin missing"},
		{"claim string", Rule{Claims: map[string][]string{"repository": {"acme/widgets"}}}, get, true, ""},
		{"claim list", Rule{Claims: map[string][]string{"aud": {"gw"}}}, get, true, ""},
		{"claim bool", Rule{Claims: map[string][]string{"admin": {"true"}}}, get, true, ""},
		{"claim mismatch", Rule{Claims: map[string][]string{"repository": {"acme/other"}}}, get, false, "claim repository does not match"},
		{"claim absent", Rule{Claims: map[string][]string{"nope": {"x"}}}, get, false, "claim nope does not match"},
		{"label", Rule{Labels: map[string][]string{"team": {"payments"}}}, get, true, ""},
		{"label mismatch", Rule{Labels: map[string][]string{"team": {"search"}}}, get, false, "label team does not match"},
		{"authenticator", Rule{Authenticators: []string{"oidc"}}, get, true, ""},
		{"other authenticator", Rule{Authenticators: []string{"keys"}}, get, false, "authenticator oidc not listed"},
		{"anonymous vs identity rule", Rule{Users: []string{"alice"}}, with(func(in *Input) { in.Identity = nil }), false, "the request is not authenticated"},
		{"anonymous, open rule", Rule{Paths: []string{"/rest/*"}}, with(func(in *Input) { in.Identity = nil }), true, ""},
		{"method", Rule{Methods: []string{"get", "HEAD"}}, get, true, ""},
		{"other method", Rule{Methods: []string{"POST"}}, get, false, "method GET not listed"},
		{"read only GET", Rule{ReadOnly: true}, get, true, ""},
		{"read only POST", Rule{ReadOnly: true}, with(func(in *Input) { in.Method = "POST" }), false, "read_only: method POST writes"},
		{"read only OPTIONS", Rule{ReadOnly: true}, with(func(in *Input) { in.Method = "OPTIONS" }), true, ""},
		{"product", Rule{Products: []string{"Jira"}}, get, true, ""},
		{"other product", Rule{Products: []string{"confluence"}}, get, false, "product jira not listed"},
		{"unknown product", Rule{Products: []string{"jira"}}, with(func(in *Input) { in.Product = "" }), false, "product unknown not listed"},
		{"host", Rule{Hosts: []string{"GW.example.com"}}, get, true, ""},
		{"other host", Rule{Hosts: []string{"jira.example.com"}}, get, false, "host not listed"},
		{"path", Rule{Paths: []string{"/rest/api/3/search*", "/rest/api/3/issue/*"}}, get, true, ""},
		{"path case trick", Rule{Paths: []string{"/rest/api/3/issue/*"}}, with(func(in *Input) { in.Path = "/REST/Api/3/ISSUE/X-1" }), true, ""},
		{"other path", Rule{Paths: []string{"/rest/api/3/search*"}}, get, false, "path not listed"},
		{"source", Rule{Sources: []string{"10.0.0.0/8"}}, get, true, ""},
		{"source address", Rule{Sources: []string{"10.1.2.3"}}, get, true, ""},
		{"other source", Rule{Sources: []string{"192.168.0.0/16"}}, get, false, "client address not in source networks"},
		{"office hours", Rule{Times: []TimeWindow{{Days: "Mon-Fri", Start: "08:00", End: "18:00", TimeZone: "Europe/Berlin"}}}, get, true, ""},
		{"office hours in UTC misses", Rule{Times: []TimeWindow{{Days: "Mon-Fri", Start: "09:00", End: "18:00"}}}, get, false, "outside the time windows"},
		{"weekend", Rule{Times: []TimeWindow{{Days: "Sat,Sun", TimeZone: "Europe/Berlin"}}}, get, false, "outside the time windows"},
		{"night shift after midnight", Rule{Times: []TimeWindow{{Days: "Tue", Start: "22:00", End: "11:00", TimeZone: "Europe/Berlin"}}}, get, true, ""},
		{"night shift, wrong day", Rule{Times: []TimeWindow{{Days: "Wed", Start: "22:00", End: "11:00", TimeZone: "Europe/Berlin"}}}, get, false, "outside the time windows"},
		{"wrapping day range", Rule{Times: []TimeWindow{{Days: "Sat-Wed"}}}, get, true, ""},
		{"all conditions", Rule{Users: []string{"alice"}, Groups: []string{"dev"}, Methods: []string{"GET"}, Products: []string{"jira"},
			Paths: []string{"/rest/api/3/*"}, Sources: []string{"10.0.0.0/8"}, Times: []TimeWindow{{Days: "*"}}}, get, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.rule.Name = "r"
			r, err := compileRule(c.rule, 0)
			if err != nil {
				t.Fatal(err)
			}
			got, why := r.match(&c.in, strings.ToLower(c.in.Path))
			if got != c.want || why != c.why {
				t.Errorf("match = %t %q, want %t %q", got, why, c.want, c.why)
			}
		})
	}
}

func TestDecideFirstMatchWins(t *testing.T) {
	e, err := newEngine([]Rule{
		{Name: "block-writes-by-bots", Action: "deny", Groups: []string{"bots"}, Methods: []string{"POST", "PUT", "DELETE"}},
		{Name: "alice-admin", Users: []string{"alice"}, Credential: "jira-admin"},
		{Name: "devs-read", Groups: []string{"dev", "bots"}, ReadOnly: true, Credential: "jira-read"},
		{Name: "team-bots", Groups: []string{"bots"}, Credential: "jira-a", CredentialHeader: "X-Atlasgate-Credential", CredentialChoices: []string{"jira-a", "jira-b"}},
		{Name: "public-status", Paths: []string{"/status"}, Credential: "status"},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := func(user string, groups ...string) *authn.Identity {
		return &authn.Identity{Authenticator: "a", User: user, Groups: groups}
	}
	cases := []struct {
		name       string
		id         *authn.Identity
		method     string
		path       string
		header     http.Header
		allow      bool
		rule, cred string
		code       string
	}{
		{"user rule", id("alice", "dev"), "POST", "/x", nil, true, "alice-admin", "jira-admin", ""},
		{"group rule", id("bob", "dev"), "GET", "/x", nil, true, "devs-read", "jira-read", ""},
		{"group rule, write refused", id("bob", "dev"), "POST", "/x", nil, false, "", "", "no_rule_matched"},
		{"deny rule first", id("bot1", "bots"), "POST", "/x", nil, false, "block-writes-by-bots", "", "access_denied"},
		{"bots read via group rule", id("bot1", "bots"), "GET", "/x", nil, true, "devs-read", "jira-read", ""},
		{"credential from header", id("bot1", "bots"), "PATCH", "/x", http.Header{"X-Atlasgate-Credential": {"jira-b"}}, true, "team-bots", "jira-b", ""},
		{"credential header default", id("bot1", "bots"), "PATCH", "/x", http.Header{}, true, "team-bots", "jira-a", ""},
		{"credential header not permitted", id("bot1", "bots"), "PATCH", "/x", http.Header{"X-Atlasgate-Credential": {"jira-admin"}}, false, "team-bots", "", "credential_not_permitted"},
		{"open rule", id("carol"), "GET", "/status", nil, true, "public-status", "status", ""},
		{"anonymous open rule", nil, "GET", "/status", nil, true, "public-status", "status", ""},
		{"no rule", id("carol"), "GET", "/x", nil, false, "", "", "no_rule_matched"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.header == nil {
				c.header = http.Header{}
			}
			in := &Input{Identity: c.id, Method: c.method, Path: c.path, Header: c.header}
			d := e.decide(in)
			if d.Allow != c.allow || d.Rule != c.rule || d.Credential != c.cred || d.Error != c.code {
				t.Errorf("decide = %+v", d)
			}
			// The index never changes the outcome: the first matching rule
			// in the full trace decides.
			first := ""
			for _, tr := range e.trace(in) {
				if tr.Matches {
					first = tr.Rule
					break
				}
			}
			if first != d.Rule {
				t.Errorf("trace's first match %q, decision's rule %q", first, d.Rule)
			}
		})
	}
}

func TestConfigErrorsNameTheRule(t *testing.T) {
	cases := []struct {
		name  string
		rules []Rule
		want  string
	}{
		{"bad cidr", []Rule{{Name: "office", Sources: []string{"10.0.0.0/33"}}}, `rule "office": source: invalid CIDR "10.0.0.0/33"`},
		{"bad address", []Rule{{Name: "office", Sources: []string{"10.0.0"}}}, `rule "office": source: invalid IP address or CIDR`},
		{"identical rules", []Rule{{Name: "a", Users: []string{"x", "y"}, Credential: "c"}, {Name: "b", Users: []string{"y", "x"}, Credential: "d"}},
			`rule "b" is unreachable: rule "a" before it has the same conditions`},
		{"catch-all first", []Rule{{Name: "all", Credential: "c"}, {Name: "later", Users: []string{"x"}}}, `rule "later" is unreachable: rule "all" before it`},
		{"duplicate name", []Rule{{Name: "a", Users: []string{"x"}}, {Name: "a", Users: []string{"y"}}}, `rule "a": the name is used twice`},
		{"bad zone", []Rule{{Name: "tz", Times: []TimeWindow{{TimeZone: "Mars/Olympus"}}}}, `rule "tz": time: time zone "Mars/Olympus"`},
		{"bad days", []Rule{{Name: "d", Times: []TimeWindow{{Days: "Funday"}}}}, `rule "d": time: days "Funday"`},
		{"bad product", []Rule{{Name: "p", Products: []string{"trello"}}}, `rule "p": product "trello"`},
		{"deny with credential", []Rule{{Name: "d", Action: "deny", Credential: "c"}}, `rule "d": a deny rule takes no credential`},
		{"bad action", []Rule{{Name: "x", Action: "maybe"}}, `rule "x": action "maybe"`},
		{"no name", []Rule{{}}, `rule #1: name ""`},
	}
	for _, c := range cases {
		_, err := newEngine(c.rules)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	h := &Handler{Rules: []Rule{{Name: "a"}}, TrustedProxies: []string{"nope"}}
	if err := h.setup(nil); err == nil || !strings.Contains(err.Error(), "trusted_proxies") {
		t.Errorf("bad trusted proxy: %v", err)
	}
}

func TestClientIP(t *testing.T) {
	trusted, _ := parsePrefixes([]string{"10.0.0.0/8"})
	cases := []struct {
		remote, xff, want string
	}{
		{"192.0.2.1:1234", "", "192.0.2.1"},
		{"192.0.2.1:1234", "203.0.113.9", "192.0.2.1"},           // untrusted peer: header ignored
		{"10.0.0.1:1234", "203.0.113.9", "203.0.113.9"},          // trusted peer
		{"10.0.0.1:1234", "1.1.1.1, 203.0.113.9", "203.0.113.9"}, // left part is the client's to forge
		{"10.0.0.1:1234", "203.0.113.9, 10.0.0.7", "203.0.113.9"},
		{"10.0.0.1:1234", "garbage", "10.0.0.1"},
		{"[::ffff:10.0.0.1]:1", "", "10.0.0.1"},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.xff != "" {
			h.Set("X-Forwarded-For", c.xff)
		}
		if got := clientIP(c.remote, h, trusted); got.String() != c.want {
			t.Errorf("clientIP(%s, %q) = %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

// testHandler builds a provisioned handler without a Caddy context; its clock
// is the returned pointer.
func testHandler(t *testing.T, h *Handler) (*Handler, *observer.ObservedLogs, *time.Time) {
	t.Helper()
	if err := h.setup(nil); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	h.logger, h.audit, h.limiter = zap.NewNop(), zap.New(core).Named(AuditLoggerName), newLimiter()
	clk := wed1030
	t.Cleanup(gclock.Set(func() time.Time { return clk }))
	return h, logs, &clk
}

type served struct {
	w       *httptest.ResponseRecorder
	reached *http.Request
	repl    *caddy.Replacer
}

func serve(t *testing.T, h *Handler, id *authn.Identity, method, target string, hdr http.Header) served {
	t.Helper()
	repl := caddy.NewReplacer()
	ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	r := httptest.NewRequest(method, target, nil).WithContext(ctx)
	r.RemoteAddr = "192.0.2.10:5555"
	for k, v := range hdr {
		r.Header[k] = v
	}
	if id != nil {
		caddyhttp.SetVar(ctx, authhandler.IdentityVar, id)
	}
	s := served{w: httptest.NewRecorder(), repl: repl}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		s.reached = r
		w.WriteHeader(http.StatusOK)
		return nil
	})
	if err := h.ServeHTTP(s.w, r, next); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServeHTTP(t *testing.T) {
	h, logs, _ := testHandler(t, &Handler{Rules: []Rule{
		{Name: "no-admin", Action: "deny", Paths: []string{"/rest/api/3/admin*"}},
		{Name: "devs", Groups: []string{"dev"}, Paths: []string{"/rest/api/3/issue/*"}, Credential: "jira-bot"},
	}})
	dev := &authn.Identity{Authenticator: "oidc", Kind: "jwt", User: "alice", Groups: []string{"dev"}}

	s := serve(t, h, dev, "GET", "/rest/api/3/project/../issue/%2e/X-1", nil)
	if s.reached == nil {
		t.Fatalf("allowed request did not go on: %d %s", s.w.Code, s.w.Body)
	}
	if s.reached.URL.Path != "/rest/api/3/issue/X-1" || s.reached.URL.EscapedPath() != "/rest/api/3/issue/X-1" {
		t.Errorf("forwarded path %q (%q), want the canonical path", s.reached.URL.Path, s.reached.URL.EscapedPath())
	}
	if got, _ := s.repl.GetString(CredentialPlaceholder); got != "jira-bot" {
		t.Errorf("credential placeholder = %q", got)
	}
	if got := caddyhttp.GetVar(s.reached.Context(), proxy.HoldBackVar); got != DefaultHoldBack {
		t.Errorf("hold-back var = %v", got)
	}
	ev := logs.TakeAll()
	if len(ev) != 1 {
		t.Fatalf("%d audit events", len(ev))
	}
	f := ev[0].ContextMap()
	want := map[string]any{"decision": "allow", "rule": "devs", "credential": "jira-bot", "user": "alice", "provider": "oidc",
		"status": int64(200), "path": "/rest/api/3/issue/X-1", "product": "jira", "policy": "default", "event": "policy.decision"}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("audit %s = %#v, want %#v", k, f[k], v)
		}
	}
	for _, k := range []string{"request_id", "duration", "reason", "client_ip", "method"} {
		if _, ok := f[k]; !ok {
			t.Errorf("audit event lacks %s", k)
		}
	}
	if ev[0].LoggerName != AuditLoggerName {
		t.Errorf("logger %q", ev[0].LoggerName)
	}

	for _, c := range []struct {
		name, target string
		id           *authn.Identity
		status       int
		code, rule   string
	}{
		{"deny rule", "/rest/api/3/issue/../admin/x", dev, 403, "access_denied", "no-admin"},
		{"no rule", "/rest/api/3/myself", dev, 403, "no_rule_matched", "no rule matched"},
		{"anonymous", "/rest/api/3/issue/X-1", nil, 403, "no_rule_matched", "no rule matched"},
		{"encoded slash", "/rest/api/3/issue%2f..%2f..%2fadmin", dev, 400, "invalid_path", ""},
		{"matrix", "/rest/api/3/issue/X-1;/../../admin", dev, 400, "invalid_path", ""},
	} {
		s := serve(t, h, c.id, "GET", c.target, nil)
		if s.reached != nil || s.w.Code != c.status {
			t.Errorf("%s: status %d, reached %t", c.name, s.w.Code, s.reached != nil)
			continue
		}
		var body map[string]string
		if err := json.Unmarshal(s.w.Body.Bytes(), &body); err != nil || body["error"] != c.code || body["message"] == "" || body["rule"] != c.rule {
			t.Errorf("%s: body %s", c.name, s.w.Body)
		}
		if c.status == 403 && body["reason"] == "" {
			t.Errorf("%s: no reason: %s", c.name, s.w.Body)
		}
		ev := logs.TakeAll()
		if len(ev) != 1 || ev[0].ContextMap()["status"] != int64(c.status) {
			t.Errorf("%s: audit events %v", c.name, ev)
		}
	}
}

func TestRateLimits(t *testing.T) {
	h, logs, clk := testHandler(t, &Handler{
		Rules: []Rule{
			{Name: "devs", Groups: []string{"dev"}, Credential: "jira-bot", Rate: &Rate{Requests: 2, Per: caddy.Duration(time.Second)}},
			{Name: "others", Credential: "shared"},
		},
		CredentialRates: map[string]Rate{"shared": {Requests: 3, Per: caddy.Duration(time.Minute)}},
	})
	alice := &authn.Identity{Authenticator: "a", User: "alice", Groups: []string{"dev"}}
	bob := &authn.Identity{Authenticator: "a", User: "bob", Groups: []string{"dev"}}
	code := func(id *authn.Identity) (int, http.Header, string) {
		s := serve(t, h, id, "GET", "/rest/api/3/myself", nil)
		return s.w.Code, s.w.Header(), s.w.Body.String()
	}
	for i := 0; i < 2; i++ {
		if c, _, b := code(alice); c != 200 {
			t.Fatalf("request %d: %d %s", i, c, b)
		}
	}
	c, hdr, body := code(alice)
	if c != 429 || hdr.Get("Retry-After") != "1" || !strings.Contains(body, `"error":"rate_limited"`) || !strings.Contains(body, `"rule":"devs"`) {
		t.Fatalf("third request: %d Retry-After=%q %s", c, hdr.Get("Retry-After"), body)
	}
	// Another identity has its own bucket.
	if c, _, b := code(bob); c != 200 {
		t.Errorf("bob limited by alice's traffic: %d %s", c, b)
	}
	*clk = clk.Add(500 * time.Millisecond)
	if c, _, _ := code(alice); c != 200 {
		t.Errorf("after half a second (one token back): %d", c)
	}
	if c, _, _ := code(alice); c != 429 {
		t.Errorf("bucket should be empty again: %d", c)
	}

	// Per credential: shared by every caller.
	for i, u := range []string{"c1", "c2", "c3"} {
		if c, _, b := code(&authn.Identity{User: u}); c != 200 {
			t.Fatalf("shared credential request %d: %d %s", i, c, b)
		}
	}
	c, hdr, body = code(&authn.Identity{User: "c4"})
	if c != 429 || hdr.Get("Retry-After") != "20" || !strings.Contains(body, `"credential":"shared"`) {
		t.Errorf("credential limit: %d Retry-After=%q %s", c, hdr.Get("Retry-After"), body)
	}
	var limited int
	for _, e := range logs.All() {
		if e.ContextMap()["decision"] == "rate_limited" {
			limited++
		}
	}
	if limited != 3 {
		t.Errorf("%d rate_limited audit events, want 3", limited)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]string{"10/s": "10/1s burst 10", "100/m": "100/1m0s burst 100", "5/30s": "5/30s burst 5", "1000/h": "1000/1h0m0s burst 1000"} {
		r, err := ParseRate(in)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := r.compile()
		if c.text != want {
			t.Errorf("ParseRate(%q) = %s", in, c.text)
		}
	}
	for _, bad := range []string{"10", "x/s", "0/s", "10/fortnight", "-1/s"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

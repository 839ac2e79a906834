package opaque

import (
	"context"
	"errors"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// provision provisions m with a quiet logger.
func provision(t *testing.T, m caddy.Provisioner) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := m.Provision(ctx)
	if err == nil {
		switch v := m.(type) {
		case *Introspection:
			v.checker.logger = zap.NewNop()
		case *Userinfo:
			v.checker.logger = zap.NewNop()
		}
	}
	return err
}

func mustProvision(t *testing.T, m caddy.Provisioner) {
	t.Helper()
	if err := provision(t, m); err != nil {
		t.Fatalf("provision: %v", err)
	}
}

// clock replaces the package clock with one the test moves.
type clock struct{ t time.Time }

func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func fakeClock(t *testing.T) *clock {
	c := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	t.Cleanup(gclock.Set(func() time.Time { return c.t }))
	return c
}

// idp is a fake identity provider endpoint on 127.0.0.1 that counts calls.
type idp struct {
	*httptest.Server
	calls atomic.Int64
}

func newIDP(t testing.TB, h http.HandlerFunc) *idp {
	t.Helper()
	p := &idp{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.calls.Add(1)
		h(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func jsonReply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func bearer(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://gateway.test/rest/api/3/myself", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// wantStatus checks that err is an *authn.Error with the given status.
func wantStatus(t *testing.T, err error, status int) *authn.Error {
	t.Helper()
	var ae *authn.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v, want an *authn.Error with status %d", err, status)
	}
	if ae.Status != status {
		t.Fatalf("status = %d (%v), want %d", ae.Status, ae, status)
	}
	return ae
}

func TestLookupPath(t *testing.T) {
	doc, err := decodeObject([]byte(`{
		"sub": "u1", "id": 12345678901,
		"data": {"user": {"login": "alice", "teams": [{"name": "dev"}, {"name": "ops"}], "roles": ["a", "b"]}},
		"https://example.com/groups": ["x", "y"],
		"realm_access": {"roles": ["admin"]},
		"list": [["p", "q"], ["r"]],
		"flag": true, "null": null, "obj": {}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want string
		ok   bool
	}{
		{"sub", "u1", true},
		{"id", "12345678901", true},
		{"data.user.login", "alice", true},
		{"data.user.roles.1", "b", true},
		{"data.user.roles.5", "", false},
		{"data.user.missing", "", false},
		{"data.user", "", false},
		{"flag", "true", true},
		{"null", "", false},
		{"obj", "", false},
		{"", "", false},
	} {
		got, ok := stringAt(doc, tc.path)
		if got != tc.want || ok != tc.ok {
			t.Errorf("stringAt(%q) = %q, %v; want %q, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		path string
		want string
	}{
		{"data.user.teams.name", "dev,ops"},
		{"data.user.roles", "a,b"},
		{"https://example.com/groups", "x,y"},
		{"realm_access.roles", "admin"},
		{"sub", "u1"},
		{"list", ""}, // nested arrays are not scalars
		{"missing", ""},
		{"", ""},
	} {
		if got := strings.Join(stringsAt(doc, tc.path), ","); got != tc.want {
			t.Errorf("stringsAt(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
	for _, bad := range []string{`null`, `[1]`, `"x"`, `{`, ``} {
		if _, err := decodeObject([]byte(bad)); err == nil {
			t.Errorf("decodeObject(%q) succeeded", bad)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		raw string
		ok  bool
	}{
		{"https://idp.example.com/introspect", true},
		{"http://127.0.0.1:8080/introspect", true},
		{"http://[::1]:8080/introspect", true},
		{"http://idp.example.com/introspect", false},
		{"http://localhost:8080/introspect", false},
		{"http://10.0.0.1/introspect", false},
		{"ftp://idp.example.com/", false},
		{"https://user:pw@idp.example.com/", false},
		{"/introspect", false},
		{"https://idp.example.com/#frag", false},
	} {
		_, err := parseEndpoint("endpoint", tc.raw)
		if (err == nil) != tc.ok {
			t.Errorf("parseEndpoint(%q) error = %v, want ok=%v", tc.raw, err, tc.ok)
		}
	}
}

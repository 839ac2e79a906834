package integration

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/integration/atlassim"
)

// Bad config fails validation with a message naming the field, and a reload
// that fails keeps the old config serving.
func TestBadConfigIsRejectedWithClearError(t *testing.T) {
	site := sim.URL(atlassim.HostSite)
	cases := []struct {
		name, credential, want string
	}{
		{"literal secret", "api_token {\n site " + site + "\n email a@b.c\n token ATATT3xliteral\n}", "token: must be an {env.NAME} or {file.PATH} placeholder"},
		{"unset variable", "api_token {\n site " + site + "\n email a@b.c\n token {env.IT_NOT_SET_ANYWHERE}\n}", "environment variable IT_NOT_SET_ANYWHERE is not set"},
		{"missing file", "bearer {\n site " + site + "\n token {file./nonexistent/pat}\n}", "token: cannot read file /nonexistent/pat"},
		{"cleartext site", "bearer {\n site http://jira.example.com\n token {env.IT_DC_PAT}\n}", "site: \"http://jira.example.com\" must be an https:// URL"},
		{"Cloud site with a path", "api_token {\n site https://acme.atlassian.net/wiki\n email a@b.c\n token {env.IT_DC_PAT}\n}", `site: "https://acme.atlassian.net/wiki" has a path, but an Atlassian Cloud site has none: write https://acme.atlassian.net`},
		{"missing email", "api_token {\n site " + site + "\n token {env.IT_DC_PAT}\n}", "email: required"},
		{"api_base without scoped", "api_token {\n site " + site + "\n email a@b.c\n token {env.IT_DC_PAT}\n api_base https://api.example.com\n}", "api_base: only applies to scoped tokens"},
		{"missing CA file", "bearer {\n site " + site + "\n token {env.IT_DC_PAT}\n trusted_ca_file /nonexistent/ca.pem\n}", "trusted_ca_files: open /nonexistent/ca.pem"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cf := "{\n atlasgate {\n  credential bad " + c.credential + "\n }\n}\n"
			err := caddy.Validate(mustConfig(t, adapt(t, cf)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
			if !strings.Contains(err.Error(), "bad") {
				t.Errorf("error does not name the credential: %v", err)
			}
			for _, secret := range []string{atlassim.DemoPAT, "ATATT3xliteral"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error holds a secret: %v", err)
				}
			}
		})
	}

	t.Run("unknown credential in handler", func(t *testing.T) {
		cf := "{\n atlasgate {\n  credential jira bearer {\n   site " + site + "\n   token {env.IT_DC_PAT}\n  }\n }\n}\n:0 {\n atlasgate_proxy jria\n}\n"
		err := caddy.Validate(mustConfig(t, adapt(t, cf)))
		if err == nil || !strings.Contains(err.Error(), `credential "jria" is not defined in the atlasgate app (defined: jira)`) {
			t.Fatalf("error = %v", err)
		}
	})

	t.Run("failed reload keeps serving", func(t *testing.T) {
		g := startGateway(t)
		bad := strings.Replace(g.caddyfile(), "token {env.IT_DC_PAT}", "token literal-pat", 1)
		status, msg := g.reload(bad)
		if status != http.StatusBadRequest || !strings.Contains(msg, "token: must be an {env.NAME} or {file.PATH} placeholder") {
			t.Fatalf("reload answered %d: %s", status, msg)
		}
		if strings.Contains(msg, "literal-pat") {
			t.Error("reload error echoes the secret")
		}
		resp, body := g.do(t, request{site: "jira-dc", path: "/rest/api/2/myself"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("after the failed reload: status %d: %s", resp.StatusCode, body)
		}
	})
}

func mustConfig(t testing.TB, js []byte) *caddy.Config {
	t.Helper()
	var cfg caddy.Config
	if err := caddyJSON(js, &cfg); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

// Neither the adapted config nor the admin API ever holds a secret.
func TestSecretsNeverInConfigOrAdminAPI(t *testing.T) {
	g := startGateway(t)
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/config/", g.adminPort))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(cfg), `"atlasgate"`) {
		t.Fatalf("admin config lacks the app: %s", cfg)
	}
	adapted := adapt(t, g.caddyfile())
	for _, secret := range []string{atlassim.DemoAPIToken, atlassim.DemoScopedToken, atlassim.DemoPAT, atlassim.DemoBitbucketAPIToken, atlassim.DemoBitbucketAccessToken} {
		if strings.Contains(string(cfg), secret) {
			t.Errorf("GET /config/ holds a secret")
		}
		if strings.Contains(string(adapted), secret) {
			t.Errorf("adapted config holds a secret")
		}
	}
}

// Operators reload through the admin API while traffic flows: no request may
// fail, and the old config's goroutines must go away.
func TestReloadUnderTraffic(t *testing.T) {
	g := startGateway(t)
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			sites := []string{"jira", "jira-scoped", "jira-dc", "bitbucket-access"}
			paths := []string{"/rest/api/3/myself", "/wiki/api/v2/pages", "/rest/api/2/myself", "/2.0/user"}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (w + i) % len(sites)
				method, body := "GET", ""
				if k == 0 && i%3 == 0 {
					method, body = "PUT", `{"fields":{"summary":"under reload"}}`
				}
				path := paths[k]
				if method == "PUT" {
					path = "/rest/api/3/issue/DEMO-1"
				}
				// A reload closes idle keep-alive connections; a request racing
				// that close fails before the gateway reads it. HTTP clients
				// retry only idempotent requests then, so the PUT carries an
				// Idempotency-Key, as a client that retries writes would.
				hdr := http.Header{"Idempotency-Key": {fmt.Sprintf("w%d-%d", w, i)}}
				resp, b, err := g.try(request{site: sites[k], method: method, path: path, body: body, header: hdr})
				if err != nil || resp.StatusCode >= 300 {
					failed.Add(1)
					if err == nil {
						err = fmt.Errorf("%s %s: status %d: %s", sites[k], path, resp.StatusCode, b)
					}
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}(w)
	}
	for i := 0; i < 6; i++ {
		time.Sleep(150 * time.Millisecond)
		cf := g.caddyfile() + fmt.Sprintf("\n# reload %d\n", i)
		if i%2 == 1 {
			// a real change: one more credential and site
			g.params["ExtraCredentials"] = fmt.Sprintf("\t\tcredential extra%d bearer {\n\t\t\tsite %s\n\t\t\ttoken {env.IT_DC_PAT}\n\t\t\ttrusted_ca_file %s\n\t\t}\n", i, sim.URL(atlassim.HostJiraDC), caFile)
			cf = g.caddyfile()
		}
		if status, msg := g.reload(cf); status != http.StatusOK {
			t.Fatalf("reload %d: %d %s", i, status, msg)
		}
	}
	time.Sleep(150 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed during reloads; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	if ok.Load() < 50 {
		t.Fatalf("only %d requests went through; the test did not exercise reloads under traffic", ok.Load())
	}
	t.Logf("%d requests, 0 failed, across 6 reloads", ok.Load())

	// The cloudId survived the reloads: no new discovery after the first.
	sim.ResetRequests()
	g.do(t, request{site: "jira-scoped", path: "/rest/api/3/myself"})
	for _, r := range sim.RequestsTo(atlassim.HostSite) {
		if r.Path == "/_edge/tenant_info" {
			t.Error("cloudId cache was lost across reloads")
		}
	}

	// Reloading must not accumulate goroutines: take a baseline once traffic
	// has stopped, then reload repeatedly with a little traffic after each.
	settle := func() int {
		http.DefaultClient.CloseIdleConnections()
		noRedirects.CloseIdleConnections()
		time.Sleep(200 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	poke := func() {
		for _, site := range []string{"jira", "jira-scoped", "jira-dc"} {
			if resp, body, err := g.try(request{site: site, path: "/rest/api/3/myself"}); err != nil || resp.StatusCode >= 500 {
				t.Errorf("after reload: %v %s", err, body)
			}
		}
	}
	g.reload(g.caddyfile())
	poke()
	baseline := settle()
	for i := 0; i < 10; i++ {
		if status, msg := g.reload(g.caddyfile() + fmt.Sprintf("\n# idle reload %d\n", i)); status != http.StatusOK {
			t.Fatalf("reload: %d %s", status, msg)
		}
		poke()
	}
	deadline := time.Now().Add(10 * time.Second)
	n := settle()
	for n > baseline+3 && time.Now().Before(deadline) {
		n = settle()
	}
	if n > baseline+3 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines grew from %d to %d over 10 reloads: leak\n%s", baseline, n, buf[:runtime.Stack(buf, true)])
	}
}

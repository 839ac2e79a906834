// Package reload runs the whole gateway — JWT and API-key authentication,
// policy, an API-token, a scoped API-token and an OAuth credential, the console
// — and reloads it through the admin API while traffic flows: no request may
// fail, the OAuth grant, the API keys and the cloudId cache must survive, and
// reloads must not leak goroutines.
package reload

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/credentials"
)

var (
	sim *atlassim.Sim
	dir string
	ca  string
)

func TestMain(m *testing.M) {
	os.Exit(itest.Main(m, itest.Options{
		Sim:  atlassim.Config{Seed: true, AutoConsent: true},
		Name: "reload",
		Env: map[string]string{
			"IT_RELOAD_TOKEN":        atlassim.DemoAPIToken,
			"IT_RELOAD_SCOPED_TOKEN": atlassim.DemoScopedToken,
			"IT_RELOAD_OAUTH_SECRET": atlassim.DemoOAuthClientSecret,
			"IT_RELOAD_KEY":          "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
		},
		Setup: func(h *itest.Harness) error {
			sim, dir, ca = h.Sim, h.Dir, h.CAFile
			return nil
		},
	}))
}

type gateway struct{ port, admin, deadIdP int }

// config renders the gateway; extra is inserted into the policy, so reloads
// can change something real.
func (g gateway) config(extra string) string { return g.configWith(extra, "") }

// configWith also inserts credentials into the atlasgate app: a reload that
// adds one.
func (g gateway) configWith(extra, credentials string) string {
	cb := fmt.Sprintf("http://127.0.0.1:%d/atlasgate/oauth/callback", g.port)
	return fmt.Sprintf(`{
%s	atlasgate {
		encryption_key {env.IT_RELOAD_KEY}
		credential jira api_token {
			site %[2]s
			email %[3]s
			token {env.IT_RELOAD_TOKEN}
			trusted_ca_file %[4]s
		}
		credential jira-scoped api_token {
			site %[2]s
			email %[3]s
			token {env.IT_RELOAD_SCOPED_TOKEN}
			scoped
			api_base %[8]s
			trusted_ca_file %[4]s
		}
%[12]s		credential jira-oauth oauth {
			client_id %[5]s
			client_secret {env.IT_RELOAD_OAUTH_SECRET}
			scopes read:jira-user read:jira-work offline_access
			site %[2]s
			callback_url %[6]s
			authorize_url %[7]s/authorize
			token_url %[7]s/oauth/token
			api_base %[8]s
			trusted_ca_file %[4]s
		}
		authenticator corp jwt {
			issuer http://127.0.0.1:%[9]d
			audience atlasgate
		}
		authenticator keys api_key
	}
}

http://127.0.0.1:%[10]d {
	handle /atlasgate/oauth/* {
		atlasgate_console
	}
	handle {
		atlasgate_auth corp keys
		atlasgate_policy {
%[11]s			rule via-token {
				authenticator keys
				label route=token
				credential jira
			}
			rule via-oauth {
				authenticator keys
				label route=oauth
				credential jira-oauth
			}
			rule via-scoped {
				authenticator keys
				label route=scoped
				credential jira-scoped
			}
		}
		atlasgate_proxy
	}
}
`, itest.GlobalOptions(g.admin, filepath.Join(dir, "storage")), sim.URL(atlassim.HostSite), atlassim.DemoEmail, ca,
		atlassim.DemoOAuthClientID, cb, sim.URL(atlassim.HostAuth), sim.URL(atlassim.HostAPI), g.deadIdP, g.port, extra, credentials)
}

func (g gateway) key(t *testing.T, route string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"owner": "svc-" + route, "labels": map[string]string{"route": route}, "expires_in": "1d"})
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/atlasgate/api-keys/keys", g.admin), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Key string }
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated || out.Key == "" {
		t.Fatalf("creating a key: %d", resp.StatusCode)
	}
	return out.Key
}

func authorize(t *testing.T) {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("atlasgate")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := app.(*atlasgate.App).Credential("jira-oauth")
	cred := c.(*credentials.OAuth)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(sim.CACertPEM())
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get(cred.AuthCodeURL("s"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if err := cred.CompleteAuthorization(context.Background(), loc.Query().Get("code")); err != nil {
		t.Fatal(err)
	}
}

// client is the traffic's client: it retries an idempotent request once when
// the connection failed before any response byte, as the operator guide
// recommends (see itest.RetryingClient for the two causes outside atlasgate).
var client = itest.RetryingClient()

// call sends one request as the holder of key and returns an error unless
// the gateway answered with want.
func call(port int, key, method, path, body string, header http.Header, want int) error {
	req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), strings.NewReader(body))
	if body == "" {
		req.Body = http.NoBody
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	return nil
}

func get(port int, key string) error {
	return call(port, key, http.MethodGet, "/rest/api/3/myself", "", nil, http.StatusOK)
}

// settledGoroutines closes the client's idle connections and returns the
// goroutine count once it has stopped falling (the closed connections'
// goroutines have ended).
func settledGoroutines() int {
	client.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	low, still := runtime.NumGoroutine(), 0
	itest.Eventually(5*time.Second, func() bool {
		if n := runtime.NumGoroutine(); n < low {
			low, still = n, 0
		} else {
			still++
		}
		return still >= 20
	})
	return low
}

func TestWholeGatewayReloadsUnderTraffic(t *testing.T) {
	g := gateway{port: itest.FreePort(t), admin: itest.FreePort(t), deadIdP: itest.FreePort(t)}
	sim.AddRedirectURI(atlassim.DemoOAuthClientID, fmt.Sprintf("http://127.0.0.1:%d/atlasgate/oauth/callback", g.port))
	itest.MustLoad(t, g.config(""))
	authorize(t)
	keys := []string{g.key(t, "token"), g.key(t, "oauth"), g.key(t, "scoped")}
	for _, k := range keys {
		if err := get(g.port, k); err != nil {
			t.Fatalf("before reloads: %v", err)
		}
	}

	// Six workers: GETs through each credential, and a PUT (not idempotent
	// by method) carrying an Idempotency-Key, as a client that retries
	// writes sends it.
	retriedBefore := itest.Retried()
	var ok, failed atomic.Int64
	var first atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if k := (w + i) % 4; k < len(keys) {
					err = get(g.port, keys[k])
				} else {
					err = call(g.port, keys[0], http.MethodPut, "/rest/api/3/issue/DEMO-1", `{"fields":{"summary":"under reload"}}`,
						http.Header{"Idempotency-Key": {fmt.Sprintf("w%d-%d", w, i)}}, http.StatusNoContent)
				}
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}(w)
	}
	// Each reload waits until traffic has gone through the config before it.
	flowed := func(since int64) {
		t.Helper()
		if !itest.Eventually(30*time.Second, func() bool { return ok.Load() >= since+30 || failed.Load() > 0 }) {
			t.Errorf("no traffic went through: %d requests", ok.Load()-since)
		}
	}
	for i := 0; i < 6; i++ {
		flowed(ok.Load())
		extra := fmt.Sprintf("\t\t\trule unused-%d {\n\t\t\t\tauthenticator corp\n\t\t\t\tusers nobody-%d\n\t\t\t\tcredential jira\n\t\t\t}\n", i, i)
		creds := ""
		if i%2 == 1 { // a reload that adds a credential
			creds = fmt.Sprintf("\t\tcredential extra%d bearer {\n\t\t\tsite %s\n\t\t\ttoken {env.IT_RELOAD_TOKEN}\n\t\t\ttrusted_ca_file %s\n\t\t}\n", i, sim.URL(atlassim.HostJiraDC), ca)
		}
		if code, msg := itest.Reload(g.admin, g.configWith(extra, creds)); code != 200 {
			t.Fatalf("reload %d: %d %s", i, code, msg)
		}
	}
	flowed(ok.Load())
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed across 6 reloads; first: %v", failed.Load(), failed.Load()+ok.Load(), first.Load())
	}
	t.Logf("%d requests through authentication, policy, API-token, scoped and OAuth credentials across 6 reloads, none failed (%d sent twice after a connection failed before any response byte)", ok.Load(), itest.Retried()-retriedBefore)

	// The cloudId of the scoped credential survived the reloads: no new
	// discovery.
	sim.ResetRequests()
	if err := get(g.port, keys[2]); err != nil {
		t.Fatal(err)
	}
	for _, r := range sim.RequestsTo(atlassim.HostSite) {
		if r.Path == "/_edge/tenant_info" {
			t.Error("the cloudId cache was lost across reloads")
		}
	}

	// Reloads leak no goroutines (JWKS refreshers, OAuth maintenance, proxies).
	itest.Reload(g.admin, g.config(""))
	for _, k := range keys {
		get(g.port, k)
	}
	baseline := settledGoroutines()
	for i := 0; i < 10; i++ {
		if code, msg := itest.Reload(g.admin, g.config(fmt.Sprintf("\t\t\trule idle-%d {\n\t\t\t\tauthenticator corp\n\t\t\t\tusers nobody\n\t\t\t\tcredential jira\n\t\t\t}\n", i))); code != 200 {
			t.Fatalf("idle reload: %d %s", code, msg)
		}
		for _, k := range keys {
			if err := get(g.port, k); err != nil {
				t.Fatalf("after idle reload %d: %v", i, err)
			}
		}
	}
	var n int
	if !itest.Eventually(10*time.Second, func() bool { n = settledGoroutines(); return n <= baseline+3 }) {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines grew from %d to %d over 10 reloads\n%s", baseline, n, buf[:runtime.Stack(buf, true)])
	}
}

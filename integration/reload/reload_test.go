// Package reload runs the whole gateway — JWT and API-key authentication,
// policy, an API-token and an OAuth credential, the console — and reloads it
// through the admin API while traffic flows: no request may fail, the OAuth
// grant and API keys must survive, and reloads must not leak goroutines.
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

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	if sim, err = atlassim.Start(atlassim.Config{Seed: true, AutoConsent: true, Record: new(bool)}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer sim.Close()
	dir, _ = os.MkdirTemp("", "atlasgate-reload-")
	defer os.RemoveAll(dir)
	ca = filepath.Join(dir, "ca.pem")
	sim.WriteCAFile(ca)
	os.Setenv("IT_RELOAD_TOKEN", atlassim.DemoAPIToken)
	os.Setenv("IT_RELOAD_OAUTH_SECRET", atlassim.DemoOAuthClientSecret)
	os.Setenv("IT_RELOAD_KEY", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
	defer caddy.Stop()
	return m.Run()
}

type gateway struct{ port, admin, deadIdP int }

// config renders the gateway; extra is inserted into the policy, so reloads
// can change something real.
func (g gateway) config(extra string) string {
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
		credential jira-oauth oauth {
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
		}
		atlasgate_proxy
	}
}
`, itest.GlobalOptions(g.admin, filepath.Join(dir, "storage")), sim.URL(atlassim.HostSite), atlassim.DemoEmail, ca,
		atlassim.DemoOAuthClientID, cb, sim.URL(atlassim.HostAuth), sim.URL(atlassim.HostAPI), g.deadIdP, g.port, extra)
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

func get(port int, key string) (int, error) {
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/rest/api/3/myself", port), nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestWholeGatewayReloadsUnderTraffic(t *testing.T) {
	g := gateway{port: itest.FreePort(t), admin: itest.FreePort(t), deadIdP: itest.FreePort(t)}
	sim.AddRedirectURI(atlassim.DemoOAuthClientID, fmt.Sprintf("http://127.0.0.1:%d/atlasgate/oauth/callback", g.port))
	itest.MustLoad(t, g.config(""))
	authorize(t)
	keys := []string{g.key(t, "token"), g.key(t, "oauth")}
	for _, k := range keys {
		if status, err := get(g.port, k); status != 200 {
			t.Fatalf("before reloads: %d %v", status, err)
		}
	}

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
				status, err := get(g.port, keys[(w+i)%2])
				if status != 200 {
					failed.Add(1)
					first.CompareAndSwap(nil, fmt.Sprintf("status %d, %v", status, err))
					continue
				}
				ok.Add(1)
			}
		}(w)
	}
	for i := 0; i < 6; i++ {
		time.Sleep(200 * time.Millisecond)
		extra := fmt.Sprintf("\t\t\trule unused-%d {\n\t\t\t\tauthenticator corp\n\t\t\t\tusers nobody-%d\n\t\t\t\tcredential jira\n\t\t\t}\n", i, i)
		if code, msg := itest.Reload(g.admin, g.config(extra)); code != 200 {
			t.Fatalf("reload %d: %d %s", i, code, msg)
		}
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed across 6 reloads; first: %v", failed.Load(), failed.Load()+ok.Load(), first.Load())
	}
	if ok.Load() < 50 {
		t.Fatalf("only %d requests went through", ok.Load())
	}
	t.Logf("%d requests through authentication, policy, API-token and OAuth credentials across 6 reloads, none failed", ok.Load())

	// Reloads leak no goroutines (JWKS refreshers, OAuth maintenance, proxies).
	settle := func() int {
		http.DefaultClient.CloseIdleConnections()
		time.Sleep(300 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	itest.Reload(g.admin, g.config(""))
	get(g.port, keys[0])
	get(g.port, keys[1])
	baseline := settle()
	for i := 0; i < 10; i++ {
		if code, msg := itest.Reload(g.admin, g.config(fmt.Sprintf("\t\t\trule idle-%d {\n\t\t\t\tauthenticator corp\n\t\t\t\tusers nobody\n\t\t\t\tcredential jira\n\t\t\t}\n", i))); code != 200 {
			t.Fatalf("idle reload: %d %s", code, msg)
		}
		for _, k := range keys {
			if status, err := get(g.port, k); status != 200 {
				t.Fatalf("after idle reload %d: %d %v", i, status, err)
			}
		}
	}
	n := settle()
	for deadline := time.Now().Add(10 * time.Second); n > baseline+3 && time.Now().Before(deadline); {
		n = settle()
	}
	if n > baseline+3 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines grew from %d to %d over 10 reloads\n%s", baseline, n, buf[:runtime.Stack(buf, true)])
	}
}

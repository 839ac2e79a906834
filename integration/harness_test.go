package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"golang.org/x/crypto/bcrypt"

	_ "github.com/atlasgate/atlasgate"
	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
)

// The suite shares one simulator; each test loads the gateway config it needs
// into the in-process Caddy (the same code as the binary, with our modules).
var (
	sim        *atlassim.Sim
	workDir    string
	caFile     string
	clientHash string
)

const (
	clientUser     = "app"
	clientPassword = "it-client-password"
	// The tokens reach the gateway only through these environment variables.
	envAPIToken    = "IT_ATLASSIAN_API_TOKEN"
	envScopedToken = "IT_ATLASSIAN_SCOPED_TOKEN"
	envBBToken     = "IT_BITBUCKET_API_TOKEN"
	envBBAccess    = "IT_BITBUCKET_ACCESS_TOKEN"
	envPAT         = "IT_DC_PAT"
)

func TestMain(m *testing.M) {
	os.Exit(itest.Main(m, itest.Options{
		Sim:    atlassim.Config{Seed: true},
		Name:   "it",
		CAFile: "atlassim-ca.pem",
		Env: map[string]string{
			envAPIToken:    atlassim.DemoAPIToken,
			envScopedToken: atlassim.DemoScopedToken,
			envBBToken:     atlassim.DemoBitbucketAPIToken,
			envBBAccess:    atlassim.DemoBitbucketAccessToken,
			envPAT:         atlassim.DemoPAT,
		},
		Setup: func(h *itest.Harness) error {
			sim, workDir, caFile = h.Sim, h.Dir, h.CAFile
			// A cheap bcrypt cost keeps the temporary inbound basic_auth out
			// of the way.
			b, _ := bcrypt.GenerateFromPassword([]byte(clientPassword), bcrypt.MinCost)
			clientHash = string(b)
			return nil
		},
	}))
}

// gatewayConfig is the Caddyfile the tests load. Each credential gets a site on
// the one gateway listener, chosen by Host (e.g. jira.test).
const gatewayConfig = `{
	admin 127.0.0.1:{{.AdminPort}}
	persist_config off
	log {
		level ERROR
	}
	storage file_system {{.Dir}}/storage
	default_bind 127.0.0.1
	servers {
		listener_wrappers {
			atlasgate_handover
			tls
		}
	}
	atlasgate {
		credential jira api_token {
			site {{.Site}}
			email {{.Email}}
			token {env.IT_ATLASSIAN_API_TOKEN}
			trusted_ca_file {{.CA}}
		}
		credential jira-scoped api_token {
			site {{.Site}}
			email {{.Email}}
			token {env.IT_ATLASSIAN_SCOPED_TOKEN}
			scoped
			api_base {{.API}}
			trusted_ca_file {{.CA}}
		}
		credential bitbucket api_token {
			site {{.Bitbucket}}
			email {{.Email}}
			token {env.IT_BITBUCKET_API_TOKEN}
			trusted_ca_file {{.CA}}
		}
		credential bitbucket-access bearer {
			site {{.Bitbucket}}
			token {env.IT_BITBUCKET_ACCESS_TOKEN}
			trusted_ca_file {{.CA}}
		}
		credential jira-dc bearer {
			site {{.JiraDC}}
			token {env.IT_DC_PAT}
			trusted_ca_file {{.CA}}
		}
		credential confluence-dc bearer {
			site {{.ConfluenceDC}}
			token {env.IT_DC_PAT}
			trusted_ca_file {{.CA}}
		}
		credential bitbucket-dc bearer {
			site {{.BitbucketDC}}
			token {env.IT_DC_PAT}
			trusted_ca_file {{.CA}}
		}
		credential unreachable api_token {
			site https://127.0.0.1:{{.DeadPort}}
			email {{.Email}}
			token {env.IT_ATLASSIAN_SCOPED_TOKEN}
			scoped
			api_base {{.API}}
			trusted_ca_file {{.CA}}
		}
		credential dead bearer {
			site https://127.0.0.1:{{.DeadPort}}
			token {env.IT_DC_PAT}
		}
{{.ExtraCredentials}}	}
}

(client) {
	basic_auth {
		{{.User}} {{.Hash}}
	}
}

{{range .Sites}}http://{{.}}.test:{{$.Port}} {
	import client
	atlasgate_proxy {{.}}
}

{{end}}http://mounted.test:{{.Port}} {
	handle_path /atlassian/* {
		import client
		atlasgate_proxy jira
	}
}

http://dynamic.test:{{.Port}} {
	import client
	atlasgate_proxy {http.request.header.X-Test-Credential}
}
`

var credentialSites = []string{"jira", "jira-scoped", "bitbucket", "bitbucket-access", "jira-dc", "confluence-dc", "bitbucket-dc", "unreachable", "dead"}

// gateway is a loaded gateway config.
type gateway struct {
	port, adminPort int
	params          map[string]any
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newGateway(t testing.TB) *gateway {
	g := &gateway{port: freePort(t), adminPort: freePort(t)}
	g.params = map[string]any{
		"AdminPort": g.adminPort, "Port": g.port, "Dir": workDir, "CA": caFile,
		"Site": sim.URL(atlassim.HostSite), "API": sim.URL(atlassim.HostAPI),
		"Bitbucket": sim.URL(atlassim.HostBitbucket), "JiraDC": sim.URL(atlassim.HostJiraDC),
		"ConfluenceDC": sim.URL(atlassim.HostConfluenceDC), "BitbucketDC": sim.URL(atlassim.HostBitbucketDC),
		"DeadPort": freePort(t), "Email": atlassim.DemoEmail, "User": clientUser, "Hash": clientHash,
		"Sites": credentialSites, "ExtraCredentials": "",
	}
	return g
}

// startGateway loads the default config and fails the test if it does not load.
func startGateway(t testing.TB) *gateway {
	t.Helper()
	g := newGateway(t)
	if err := g.load(); err != nil {
		t.Fatalf("loading gateway config: %v", err)
	}
	return g
}

// caddyfile renders the config with the current params.
func (g *gateway) caddyfile() string {
	var b strings.Builder
	template.Must(template.New("cf").Parse(gatewayConfig)).Execute(&b, g.params)
	return b.String()
}

// adapt turns a Caddyfile into JSON config.
func adapt(t testing.TB, cf string) []byte {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, cf)
	}
	return out
}

// load loads the config into the running Caddy, as `caddy run` would.
func (g *gateway) load() error {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(g.caddyfile()), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return err
	}
	return caddy.Load(out, true)
}

// reload posts new Caddyfile config to the admin API, as `caddy reload` does.
func (g *gateway) reload(cf string) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/load", g.adminPort), strings.NewReader(cf))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       30 * time.Second,
}

// request describes a client call to the gateway.
type request struct {
	site, method, path string
	body               string
	header             http.Header
	noAuth             bool
}

func (g *gateway) do(t testing.TB, r request) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := g.try(r)
	if err != nil {
		t.Fatalf("%s %s via %s: %v", r.method, r.path, r.site, err)
	}
	return resp, body
}

func (g *gateway) try(r request) (*http.Response, []byte, error) {
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, fmt.Sprintf("http://127.0.0.1:%d%s", g.port, r.path), body)
	if err != nil {
		return nil, nil, err
	}
	req.Host = fmt.Sprintf("%s.test:%d", r.site, g.port)
	if !r.noAuth {
		req.SetBasicAuth(clientUser, clientPassword)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// simClient trusts the simulator's CA, like a client following a redirect.
func simClient() *http.Client {
	pool := x509Pool()
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// lastTo returns the last request the simulator received on a virtual host.
func lastTo(t testing.TB, host string) atlassim.Recorded {
	t.Helper()
	reqs := sim.RequestsTo(host)
	if len(reqs) == 0 {
		t.Fatalf("the simulator's %s host received no request", host)
	}
	return reqs[len(reqs)-1]
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func hostOf(rawURL string) string {
	return strings.TrimPrefix(rawURL, "https://")
}

func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, b)
	}
	return m
}

func mustContain(t testing.TB, haystack []byte, needles ...string) {
	t.Helper()
	for _, n := range needles {
		if !bytes.Contains(haystack, []byte(n)) {
			t.Errorf("expected %q in %s", n, haystack)
		}
	}
}

func x509Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(sim.CACertPEM())
	return pool
}

func caddyJSON(b []byte, v any) error { return json.Unmarshal(b, v) }

func adaptWithWarnings(cf string) ([]byte, []caddyconfig.Warning, error) {
	return caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
}

// Package apikeys tests the api_key and client_cert authenticators in the real
// in-process Caddy: keys issued through the admin API and the CLI, used through
// atlasgate_auth + atlasgate_proxy against the Atlassian simulator, revoked
// there and on a second "replica" sharing the storage; and SPIFFE client
// certificates verified by Caddy's client_auth.
package apikeys

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
)

var (
	sim     *atlassim.Sim
	workDir string
	gw      *gateway
	pki     *testPKI
)

const envAPIToken = "IT_APIKEYS_ATLASSIAN_TOKEN"

func TestMain(m *testing.M) {
	os.Exit(itest.Main(m, itest.Options{
		Sim:  atlassim.Config{Seed: true},
		Name: "apikeys",
		Env:  map[string]string{envAPIToken: atlassim.DemoAPIToken},
		Setup: func(h *itest.Harness) (err error) {
			sim, workDir = h.Sim, h.Dir
			if pki, err = newTestPKI(workDir); err != nil {
				return fmt.Errorf("client PKI: %w", err)
			}
			gw, err = startGateway()
			return err
		},
	}))
}

// gatewayConfig has one key-authenticated site on plain HTTP and one
// certificate-authenticated site on HTTPS with client_auth.
const gatewayConfig = `{
{{.Global}}	skip_install_trust
	auto_https disable_redirects
	atlasgate {
		credential jira api_token {
			site {{.Site}}
			email {{.Email}}
			token {env.` + envAPIToken + `}
			trusted_ca_file {{.SimCA}}
		}
		authenticator keys api_key {
			max_lifetime 30d
			default_lifetime 7d
			header X-API-Key
		}
		authenticator mtls client_cert {
			trust_domain example.org
		}
	}
}

http://127.0.0.1:{{.Port}} {
	header >X-Atlasgate-User {http.auth.user.id}
	atlasgate_auth keys
	atlasgate_proxy jira
}

https://localhost:{{.TLSPort}} {
	tls internal {
		client_auth {
			mode require_and_verify
			trust_pool file {{.ClientCA}}
		}
	}
	header >X-Atlasgate-User {http.auth.user.id}
	atlasgate_auth mtls
	atlasgate_proxy jira
}
`

type gateway struct {
	port, tlsPort, adminPort int
	storage                  string
}

func startGateway() (*gateway, error) {
	var ports [3]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	g := &gateway{port: ports[0], tlsPort: ports[1], adminPort: ports[2], storage: filepath.Join(workDir, "storage")}
	var b strings.Builder
	err := template.Must(template.New("cf").Parse(gatewayConfig)).Execute(&b, map[string]any{
		"Global": itest.GlobalOptions(g.adminPort, g.storage) +
			"\tlog audit {\n\t\toutput file " + filepath.Join(workDir, "audit.log") + "\n\t\tinclude atlasgate.audit\n\t}\n",
		"Port": g.port, "TLSPort": g.tlsPort,
		"Site": sim.URL(atlassim.HostSite), "Email": atlassim.DemoEmail,
		"SimCA": pki.simCA, "ClientCA": pki.caFile,
	})
	if err != nil {
		return nil, err
	}
	if err := itest.Load(b.String()); err != nil {
		return nil, fmt.Errorf("loading gateway config: %v\n%s", err, b.String())
	}
	return g, nil
}

// call sends GET path to the key site with the given headers.
func (g *gateway) call(t *testing.T, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/rest/api/3/myself", g.port), nil)
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, http.DefaultClient, req)
}

func bearer(key string) http.Header { return http.Header{"Authorization": {"Bearer " + key}} }

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// admin calls the admin API.
func (g *gateway) admin(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", g.adminPort, path), rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, b := do(t, http.DefaultClient, req)
	return resp.StatusCode, b
}

// lastAtSim returns the last request the simulator's site received.
func lastAtSim(t *testing.T) atlassim.Recorded {
	t.Helper()
	reqs := sim.RequestsTo(atlassim.HostSite)
	if len(reqs) == 0 {
		t.Fatal("the simulator received no request")
	}
	return reqs[len(reqs)-1]
}

// noKeyUpstream fails if key appears anywhere in what the simulator received.
func noKeyUpstream(t *testing.T, rec atlassim.Recorded, key string) {
	t.Helper()
	for name, values := range rec.Header {
		for _, v := range values {
			if strings.Contains(v, key) || strings.Contains(v, key[4:]) {
				t.Errorf("the API key reached Atlassian in %s", name)
			}
		}
	}
	if strings.Contains(rec.RawQuery, key) || bytes.Contains(rec.Body, []byte(key)) {
		t.Error("the API key reached Atlassian")
	}
}

// tlsClient dials 127.0.0.1 and names the site `localhost` in SNI and Host
// (Go sends no SNI for an IP, and Caddy requires SNI to match Host on sites
// with client_auth).
func tlsClient(cert *tls.Certificate, roots *x509.CertPool) *http.Client {
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

// Package policy tests atlasgate_policy end to end: the real in-process Caddy
// with atlasgate_auth, the policy and atlasgate_proxy, in front of the Atlassian
// simulator, which records what actually reached it.
package policy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
	"github.com/atlasgate/atlasgate/modules/authn"
)

var (
	sim     *atlassim.Sim
	workDir string
	caFile  string
	gw      gateway
)

func TestMain(m *testing.M) {
	os.Exit(itest.Main(m, itest.Options{
		Sim:    atlassim.Config{Seed: true},
		Name:   "policy-it",
		CAFile: "atlassim-ca.pem",
		Env:    map[string]string{"IT_ATLASSIAN_API_TOKEN": atlassim.DemoAPIToken},
		Setup: func(h *itest.Harness) error {
			sim, workDir, caFile = h.Sim, h.Dir, h.CAFile
			return nil
		},
	}))
}

// testHeader is a test-only authenticator (never in the shipped binary): it
// trusts X-Test-User and X-Test-Groups.
type testHeader struct{}

func init() { caddy.RegisterModule(testHeader{}) }

func (testHeader) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "atlasgate.authn.test_header", New: func() caddy.Module { return new(testHeader) }}
}

func (testHeader) Authenticate(r *http.Request) (*authn.Identity, error) {
	u := r.Header.Get("X-Test-User")
	if u == "" {
		return nil, authn.ErrNoCredential
	}
	id := &authn.Identity{Kind: "test", User: u}
	if g := r.Header.Get("X-Test-Groups"); g != "" {
		id.Groups = strings.Split(g, ",")
	}
	return id, nil
}

func (*testHeader) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	return nil
}

const config = `{
{{.Globals}}	atlasgate {
		authenticator tester test_header
		credential jira api_token {
			site {{.Site}}
			email {{.Email}}
			token {env.IT_ATLASSIAN_API_TOKEN}
			trusted_ca_file {{.CA}}
		}
		credential jira-held api_token {
			site {{.Site}}
			email {{.Email}}
			token {env.IT_ATLASSIAN_API_TOKEN}
			trusted_ca_file {{.CA}}
		}
		credential jira-team-b api_token {
			site {{.Site}}
			email {{.Email}}
			token {env.IT_ATLASSIAN_API_TOKEN}
			trusted_ca_file {{.CA}}
		}
	}
}

http://127.0.0.1:{{.Port}} {
	atlasgate_auth tester
	atlasgate_policy {
		rule no-admin {
			deny
			paths /rest/api/3/admin*
		}
		rule ops-not-myself {
			deny
			users ops
			paths /rest/api/3/myself
		}
		rule ops {
			users ops
			credential jira
		}
		rule devs {
			groups dev
			paths /rest/api/3/issue/*
			credential jira
			credential_from_header X-Atlasgate-Credential jira jira-team-b
		}
		rule limited {
			users limited-1 limited-2
			product jira
			credential jira
			rate 2/m
		}
		rule held {
			users held
			credential jira-held
		}
	}
	atlasgate_proxy
}
`

type gateway struct {
	port, adminPort int
}

var loadOnce sync.Once

// start loads the gateway config once for the whole package.
func start(t *testing.T) *gateway {
	t.Helper()
	loadOnce.Do(func() {
		gw = gateway{port: itest.FreePort(t), adminPort: itest.FreePort(t)}
		var b strings.Builder
		template.Must(template.New("cf").Parse(config)).Execute(&b, map[string]any{
			"Globals": itest.GlobalOptions(gw.adminPort, filepath.Join(workDir, "storage")) +
				"\tlog audit {\n\t\toutput file " + auditFile() + "\n\t\tinclude atlasgate.audit\n\t}\n",
			"Port": gw.port, "Site": sim.URL(atlassim.HostSite), "Email": atlassim.DemoEmail, "CA": caFile,
		})
		itest.MustLoad(t, b.String())
	})
	if gw.port == 0 {
		t.Fatal("gateway did not load")
	}
	return &gw
}

// raw sends a request line exactly as given, so that no client library cleans
// the path first, and returns the response with its body read.
func (g *gateway) raw(t *testing.T, method, target string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", g.port), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n", method, target, g.port)
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&body)
	return resp, body.String()
}

type authnIdentity = authn.Identity

// auditFile is where the test config routes the audit logger.
func auditFile() string { return filepath.Join(workDir, "audit.log") }

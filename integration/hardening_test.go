package integration

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/integration/atlassim"
)

// rawSend writes a request exactly as given (request line, headers, body) to
// the gateway, so that no client library cleans it first.
func (g *gateway) rawSend(t *testing.T, wire string) (*http.Response, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", g.port), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte(wire)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", strings.SplitN(wire, "\r\n", 2)[0], err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp, b.String()
}

// head is the start of a raw request to a credential's site, with the
// client's own basic auth.
func (g *gateway) head(method, target, site string) string {
	return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s.test:%d\r\nConnection: close\r\nAuthorization: %s\r\n",
		method, target, site, g.port, basic(clientUser, clientPassword))
}

// The request half of the attack table, through a gateway with no access
// policy: atlasgate_proxy alone refuses what could leak the injected
// credential or change what the request means at Atlassian, and nothing of it
// reaches Atlassian.
func TestProxyRefusesDangerousRequests(t *testing.T) {
	g := startGateway(t)
	cases := []struct {
		name, site, method, target, extra string
		status                            int
		code                              string
	}{
		{"TRACE echoes headers", "jira", "TRACE", "/rest/api/3/myself", "", 405, "method_not_allowed"},
		{"TRACK", "jira", "TRACK", "/rest/api/3/myself", "", 405, "method_not_allowed"},
		{"TRACE to Data Center", "jira-dc", "TRACE", "/rest/api/2/myself", "", 405, "method_not_allowed"},
		{"X-HTTP-Method-Override", "jira", "GET", "/rest/api/3/issue/DEMO-1", "X-HTTP-Method-Override: DELETE\r\n", 400, "method_override"},
		{"X-HTTP-Method", "jira", "GET", "/rest/api/3/issue/DEMO-1", "X-HTTP-Method: DELETE\r\n", 400, "method_override"},
		{"X-Method-Override", "jira", "GET", "/rest/api/3/issue/DEMO-1", "X-Method-Override: DELETE\r\n", 400, "method_override"},
		{"_method parameter", "jira", "GET", "/rest/api/3/issue/DEMO-1?_method=DELETE", "", 400, "method_override"},
		{"dot-dot out of the pinned /ex/ prefix", "jira-scoped", "GET", "/wiki/../../../confluence/" + atlassim.DemoCloudID + "/wiki/api/v2/pages", "", 400, "invalid_path"},
		{"dot-dot above the root", "jira-dc", "GET", "/../rest/api/2/myself", "", 400, "invalid_path"},
		{"encoded dot-dot above the root", "jira-dc", "GET", "/%2e%2e/rest/api/2/myself", "", 400, "invalid_path"},
		{"encoded slash", "jira", "GET", "/rest/api/3/issue/..%2fmyself", "", 400, "invalid_path"},
		{"fullwidth dot-dot", "jira", "GET", "/rest/api/3/issue/%EF%BC%8E%EF%BC%8E/myself", "", 400, "invalid_path"},
		{"two-dot leader", "jira", "GET", "/rest/api/3/issue/%E2%80%A5/myself", "", 400, "invalid_path"},
		{"fullwidth solidus", "jira", "GET", "/rest/api/3/issue%EF%BC%8Fmyself", "", 400, "invalid_path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim.ResetRequests()
			resp, body := g.rawSend(t, g.head(c.method, c.target, c.site)+c.extra+"\r\n")
			if resp.StatusCode != c.status || !strings.Contains(body, `"`+c.code+`"`) {
				t.Fatalf("%s %s: %d %s; want %d %s", c.method, c.target, resp.StatusCode, body, c.status, c.code)
			}
			if c.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			if got := sim.Requests(); len(got) != 0 {
				t.Fatalf("reached Atlassian: %s %s", got[0].Method, got[0].RawPath)
			}
		})
	}

	// CONNECT has its own request-target form; it is refused all the same.
	sim.ResetRequests()
	resp, body := g.rawSend(t, fmt.Sprintf("CONNECT jira.test:%d HTTP/1.1\r\nHost: jira.test:%d\r\nAuthorization: %s\r\nConnection: close\r\n\r\n",
		g.port, g.port, basic(clientUser, clientPassword)))
	if resp.StatusCode == http.StatusOK || len(sim.Requests()) != 0 {
		t.Errorf("CONNECT: %d %s, %d requests reached Atlassian", resp.StatusCode, body, len(sim.Requests()))
	}

	// A path with dot segments that stays in bounds goes up in its canonical form.
	sim.ResetRequests()
	resp, body = g.rawSend(t, g.head("GET", "/rest/api/3/issue/../myself", "jira-scoped")+"\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("in-bounds dot segments: %d %s", resp.StatusCode, body)
	}
	if got, want := lastTo(t, atlassim.HostAPI).RawPath, "/ex/jira/"+sim.CloudID()+"/rest/api/3/myself"; got != want {
		t.Errorf("Atlassian received %s, want %s", got, want)
	}
}

// Credentials the client put where stripping used to miss them: `;`-separated
// query pairs, a urlencoded form body (Data Center's Seraph reads
// os_username/os_password there), and request trailers.
func TestClientCredentialsStrippedEverywhere(t *testing.T) {
	g := startGateway(t)

	sim.ResetRequests()
	resp, body := g.rawSend(t, g.head("GET", "/rest/api/2/myself?os_username=mallory;os_password=x;expand=groups", "jira-dc")+"\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	rec := lastTo(t, atlassim.HostJiraDC)
	if strings.Contains(rec.RawQuery, "os_") || rec.RawQuery != "expand=groups" {
		t.Errorf("query at Atlassian: %q, want expand=groups", rec.RawQuery)
	}

	sim.ResetRequests()
	form := "os_username=mallory&os_password=x&os_authType=basic&summary=a+b"
	resp, body = g.rawSend(t, g.head("POST", "/rest/api/2/issue", "jira-dc")+
		fmt.Sprintf("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(form), form))
	if resp.StatusCode == http.StatusBadRequest && strings.Contains(body, `"error"`) && len(sim.Requests()) == 0 {
		t.Fatalf("form refused: %s", body)
	}
	rec = lastTo(t, atlassim.HostJiraDC)
	if string(rec.Body) != "summary=a+b" {
		t.Errorf("form body at Atlassian: %q, want summary=a+b", rec.Body)
	}
	if rec.Principal != "" && rec.AuthKind != "bearer" {
		t.Errorf("Atlassian authenticated the request as %q with %q", rec.Principal, rec.AuthKind)
	}

	sim.ResetRequests()
	chunked := "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\nTrailer: Authorization, X-Client-Trailer\r\n\r\n" +
		"2\r\n{}\r\n0\r\nAuthorization: Basic bWFsbG9yeTp4\r\nX-Client-Trailer: y\r\n\r\n"
	resp, body = g.rawSend(t, g.head("POST", "/rest/api/3/search/jql", "jira")+chunked)
	if len(sim.Requests()) != 1 {
		t.Fatalf("chunked request with trailers did not reach Atlassian: %d %s", resp.StatusCode, body)
	}
	rec = lastTo(t, atlassim.HostSite)
	if len(rec.Trailer) != 0 {
		t.Errorf("trailers reached Atlassian: %v", rec.Trailer)
	}
	if got := rec.Header.Get("Authorization"); got != basic(atlassim.DemoEmail, atlassim.DemoAPIToken) {
		t.Errorf("Authorization at Atlassian = %q", got)
	}
}

// With `log_credentials` and DEBUG logging, Caddy logs the upstream request of
// every round trip with its headers in clear. The injected credential is not
// in it: it goes into a copy of the request that Caddy never sees.
func TestInjectedCredentialNotInDebugLog(t *testing.T) {
	g := newGateway(t)
	logFile := filepath.Join(t.TempDir(), "debug.log")
	cf := strings.Replace(g.caddyfile(), "\tlog {\n\t\tlevel ERROR\n\t}\n",
		"\tlog {\n\t\tlevel DEBUG\n\t\toutput file "+logFile+"\n\t\tformat json\n\t}\n", 1)
	cf = strings.Replace(cf, "\tservers {\n", "\tservers {\n\t\tlog_credentials\n", 1)
	if !strings.Contains(cf, "log_credentials") {
		t.Fatal("config template changed: no global log block to replace")
	}
	cf = strings.Replace(cf, "\tatlasgate_proxy jira\n}", "\tlog\n\tatlasgate_proxy jira\n}", 1)
	if err := loadCaddyfile(cf); err != nil {
		t.Fatal(err)
	}
	for _, site := range []string{"jira", "jira-dc"} {
		path := "/rest/api/3/myself"
		if site == "jira-dc" {
			path = "/rest/api/2/myself"
		}
		resp, body := g.do(t, request{site: site, path: path})
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", site, resp.StatusCode, body)
		}
	}
	// Loading the quiet default config again flushes and closes the debug log.
	if err := g.load(); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), `"msg":"upstream roundtrip"`); n < 2 {
		t.Fatalf("%d upstream roundtrip entries in the debug log; the test would prove nothing:\n%s", n, log)
	}
	if !strings.Contains(string(log), basic(clientUser, clientPassword)) {
		t.Error("log_credentials is not in effect (the client's own Authorization is not logged); the test would prove nothing")
	}
	for _, secret := range []string{
		atlassim.DemoAPIToken, basic(atlassim.DemoEmail, atlassim.DemoAPIToken)[len("Basic "):], atlassim.DemoPAT,
	} {
		if strings.Contains(string(log), secret) {
			t.Errorf("the injected credential is in the debug log")
		}
	}
}

func loadCaddyfile(cf string) error {
	out, _, err := adaptWithWarnings(cf)
	if err != nil {
		return err
	}
	return caddy.Load(out, true)
}

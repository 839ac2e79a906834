// Command atlasdemo runs the atlasgate demo (`make demo`): the bundled Atlassian
// simulator on 127.0.0.1:9441-9448 (9448 is its OAuth authorization server,
// with the real consent page), a JWT issuer standing in for an identity
// provider on 127.0.0.1:9449, and the gateway (the Caddy binary given with
// -caddy) with caddyfiles/demo.Caddyfile, then prints curl lines and CLI
// commands that work and the steps of the OAuth Authorize flow. No Atlassian
// account is needed. Ctrl-C stops everything.
//
// The simulator's fake demo tokens reach the gateway the way real ones would:
// through environment variables named by {env.*} placeholders in the Caddyfile.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/atlasgate/atlasgate/cmd/internal/preflight"
	"github.com/atlasgate/atlasgate/integration/atlassim"
)

// gatewayAddrs are the demo gateway's listeners and admin API. Caddy listens
// with SO_REUSEPORT: a gateway already on these ports (an earlier demo, `make
// run`) would share them silently, so the demo checks first.
var gatewayAddrs []string

func init() {
	for p := 8080; p <= 8086; p++ {
		gatewayAddrs = append(gatewayAddrs, fmt.Sprintf("127.0.0.1:%d", p), fmt.Sprintf("[::1]:%d", p))
	}
	gatewayAddrs = append(gatewayAddrs, "localhost:2019")
}

var hosts = []string{atlassim.HostSite, atlassim.HostAPI, atlassim.HostMedia, atlassim.HostBitbucket,
	atlassim.HostJiraDC, atlassim.HostConfluenceDC, atlassim.HostBitbucketDC, atlassim.HostAuth}

// demoEncryptionKey encrypts the demo's OAuth token sets in .demo/storage. It
// is a DEMO key, public in this source file: a real deployment generates its
// own (`openssl rand -base64 32`) and keeps it secret.
const demoEncryptionKey = "ZGVtby1rZXktYXRsYXNnYXRlLW5vdC1hLXNlY3JldCE="

func main() {
	caddyBin := flag.String("caddy", "bin/caddy", "the atlasgate Caddy `binary`")
	config := flag.String("config", "caddyfiles/demo.Caddyfile", "the demo `Caddyfile`")
	dir := flag.String("dir", ".demo", "working `directory` for the CA file and storage")
	flag.Parse()
	logger := log.New(os.Stderr, "atlasdemo: ", 0)

	// Before touching .demo: a running demo keeps its state.
	if err := preflight.FreeAddrs(gatewayAddrs...); err != nil {
		logger.Fatal(err)
	}
	// The simulator starts empty each time, so a grant stored by an earlier
	// demo would only be refused: start the OAuth demo unauthorized.
	if err := os.RemoveAll(filepath.Join(*dir, "storage", "atlasgate", "tokens")); err != nil {
		logger.Fatal(err)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		logger.Fatal(err)
	}
	iss, err := startIssuer()
	if err != nil {
		logger.Fatalf("%v (is another demo running?)", err)
	}
	defer iss.Close()
	for _, u := range []struct {
		name, file string
		groups     []string
	}{
		{"alice", "alice.jwt", []string{"jira-editors"}},
		{"bob", "bob.jwt", nil},
	} {
		tok, err := iss.token(u.name, u.groups...)
		if err == nil {
			err = os.WriteFile(filepath.Join(*dir, u.file), []byte(tok+"\n"), 0o600)
		}
		if err != nil {
			logger.Fatal(err)
		}
	}
	// AutoConsent stays off: the Authorize flow shows the simulator's real
	// consent page, with Accept and Deny.
	cfg := atlassim.Config{Seed: true, Addrs: map[string]string{}}
	for i, h := range hosts {
		cfg.Addrs[h] = fmt.Sprintf("127.0.0.1:%d", 9441+i)
	}
	simLog := log.New(os.Stderr, "atlassim: ", log.Ltime)
	cfg.Logf = simLog.Printf
	sim, err := atlassim.Start(cfg)
	if err != nil {
		logger.Fatalf("starting the Atlassian simulator: %v (is another demo running?)", err)
	}
	defer sim.Close()
	if err := sim.WriteCAFile(filepath.Join(*dir, "atlassim-ca.pem")); err != nil {
		logger.Fatal(err)
	}

	cmd := exec.Command(*caddyBin, "run", "--config", *config, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"ATLASGATE_DEMO_API_TOKEN="+atlassim.DemoAPIToken,
		"ATLASGATE_DEMO_SCOPED_TOKEN="+atlassim.DemoScopedToken,
		"ATLASGATE_DEMO_BITBUCKET_TOKEN="+atlassim.DemoBitbucketAPIToken,
		"ATLASGATE_DEMO_PAT="+atlassim.DemoPAT,
		"ATLASGATE_DEMO_ENCRYPTION_KEY="+demoEncryptionKey,
		"ATLASGATE_DEMO_OAUTH_CLIENT_SECRET="+atlassim.DemoOAuthClientSecret,
	)
	if err := cmd.Start(); err != nil {
		logger.Fatalf("starting %s: %v (run `make build` first)", *caddyBin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)

	if err := waitListening("127.0.0.1:8086", 30*time.Second, exited); err != nil {
		logger.Printf("the gateway did not start: %v", err)
		_ = cmd.Process.Signal(os.Interrupt)
		sim.Close()
		iss.Close()
		os.Exit(1)
	}
	printUsage()

	select {
	case s := <-sig:
		logger.Printf("%s: stopping the gateway and the simulator", s)
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	case err := <-exited:
		logger.Printf("the gateway exited: %v", err)
		sim.Close()
		iss.Close()
		os.Exit(1)
	}
}

// waitListening waits until addr accepts connections or the gateway exits.
func waitListening(addr string, timeout time.Duration, exited <-chan error) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s after %s", addr, timeout)
}

func printUsage() {
	auth := "-u app:demo-password"
	lines := []struct{ what, cmd string }{
		{"Jira Cloud, classic API token injected (you are Alice now)", "curl " + auth + " http://localhost:8080/rest/api/3/myself"},
		{"an issue, and an edit with a JSON body", "curl " + auth + " http://localhost:8080/rest/api/3/issue/DEMO-1"},
		{"", "curl " + auth + ` -X PUT -H 'Content-Type: application/json' -d '{"fields":{"summary":"Edited via atlasgate"}}' http://localhost:8080/rest/api/3/issue/DEMO-1`},
		{"Confluence pages with a scoped token (routed to /ex/confluence/<cloudId>)", "curl " + auth + " http://localhost:8081/wiki/api/v2/pages"},
		{"an attachment: a 303 to the media host, passed on untouched, no credential", "curl -i " + auth + " http://localhost:8080/rest/api/3/attachment/content/10001"},
		{"Bitbucket Cloud with an API token", "curl " + auth + " http://localhost:8082/2.0/repositories/acme"},
		{"Jira Data Center with a personal access token", "curl " + auth + " http://localhost:8083/rest/api/2/myself"},
		{"Bitbucket Data Center pull requests", "curl " + auth + " http://localhost:8084/rest/api/1.0/dashboard/pull-requests"},
		{"what a client without gateway credentials gets", "curl -i http://localhost:8080/rest/api/3/myself"},
	}
	var b strings.Builder
	b.WriteString("\natlasgate demo is running: the gateway on localhost:8080-8086, the Atlassian simulator on 127.0.0.1:9441-9448,\n")
	b.WriteString("a JWT issuer (standing in for your identity provider) on http://127.0.0.1:9449.\n")
	b.WriteString("The client holds no Atlassian secret: the gateway injects it.\n\n")
	b.WriteString("Each kind of credential, behind basic_auth (user app, password demo-password):\n\n")
	writeLines(&b, lines)
	b.WriteString(`
The gateway as it is meant to run (:8086): atlasgate_auth checks the caller's token or API key, the policy
decides. .demo/alice.jwt is a token of the demo issuer for alice (group jira-editors), .demo/bob.jwt one for bob:

`)
	bearer := func(f string) string { return `-H "Authorization: Bearer $(cat .demo/` + f + `)"` }
	writeLines(&b, []struct{ what, cmd string }{
		{"alice reads and writes (rule editors)", "curl " + bearer("alice.jwt") + " http://localhost:8086/rest/api/3/myself"},
		{"bob only reads (rule readers): his edit is refused by the policy (403)", "curl -i " + bearer("bob.jwt") + ` -X PUT -H 'Content-Type: application/json' -d '{"fields":{"summary":"x"}}' http://localhost:8086/rest/api/3/issue/DEMO-1`},
		{"what the gateway makes of a token: the verdict, then each authenticator", "bin/caddy atlasgate-test-token < .demo/bob.jwt"},
		{"which rule decides, and why the others do not match", "bin/caddy atlasgate-explain --token-stdin PUT /rest/api/3/issue/DEMO-1 < .demo/bob.jwt"},
		{"", "bin/caddy atlasgate-explain --user carol --authenticator-name keys --label purpose=search GET '/rest/api/3/search/jql?jql=project=DEMO'"},
		{"an API key for a search job (shown once), then used", "KEY=$(bin/caddy atlasgate-api-key create --authenticator keys --owner search-job --label purpose=search --expires-in 1d)"},
		{"", `curl -H "Authorization: Bearer $KEY" 'http://localhost:8086/rest/api/3/search/jql?jql=project=DEMO'`},
		{"", "bin/caddy atlasgate-api-key list --authenticator keys"},
		{"the credentials and their states", "bin/caddy atlasgate-credentials"},
	})
	b.WriteString(`
OAuth 2.0 (3LO) — the gateway acts as the account that authorizes it:
  1. open http://localhost:8080/atlasgate/oauth/ (user app, password demo-password)
  2. click Authorize next to jira-oauth; your browser warns about the
     simulator's self-made certificate on 127.0.0.1:9448 — accept it
     (it is the local simulator) — then click Accept on the consent page
  3. back on the console: "Authorized"; then
       curl -u app:demo-password http://localhost:8085/rest/api/3/myself
     Before step 2 the same curl answers 503 naming the console.
  States without a browser: bin/caddy atlasgate-credentials
`)
	b.WriteString("\nThe simulator logs each request it receives (who it authenticated). Ctrl-C stops everything.\n\n")
	fmt.Print(b.String())
}

func writeLines(b *strings.Builder, lines []struct{ what, cmd string }) {
	for _, l := range lines {
		if l.what != "" {
			b.WriteString("  # " + l.what + "\n")
		}
		b.WriteString("  " + l.cmd + "\n")
	}
}

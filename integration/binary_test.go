package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
)

// caddyBinary returns the atlasgate Caddy binary (see itest.CaddyBinary).
func caddyBinary(t *testing.T) string { return itest.CaddyBinary(t, workDir) }

// caddyCmd runs the binary with a clean environment plus env.
func caddyCmd(t *testing.T, dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(caddyBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + workDir, "XDG_DATA_HOME=" + filepath.Join(workDir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(workDir, "config")}, env...)
	return cmd
}

func TestBinaryListsAtlasgateModules(t *testing.T) {
	out, err := caddyCmd(t, workDir, nil, "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, m := range []string{"atlasgate", "atlasgate.credentials.api_token", "atlasgate.credentials.bearer", "http.handlers.atlasgate_proxy", "http.handlers.reverse_proxy"} {
		if !bytes.Contains(out, []byte("\n"+m+"\n")) {
			t.Errorf("list-modules lacks %s", m)
		}
	}
}

// Secret values the Caddyfiles in caddyfiles/ read from the environment; none
// may show up in `caddy adapt` output.
var caddyfileEnv = map[string]string{
	"ATLASSIAN_SITE":                     "https://acme.atlassian.net",
	"ATLASSIAN_EMAIL":                    "bot@example.com",
	"ATLASSIAN_API_TOKEN":                "ATATT3xSECRET-prod-token",
	"ATLASGATE_CLIENT_USER":              "app",
	"ATLASGATE_CLIENT_PASSWORD_HASH":     clientHashForEnv(),
	"ATLASGATE_DEMO_API_TOKEN":           "ATATT3xSECRET-demo",
	"ATLASGATE_DEMO_SCOPED_TOKEN":        "ATATT3xSECRET-scoped",
	"ATLASGATE_DEMO_BITBUCKET_TOKEN":     "ATATT3xSECRET-bb",
	"ATLASGATE_DEMO_PAT":                 "SECRET-pat",
	"ATLASGATE_DEMO_ENCRYPTION_KEY":      "ZGVtby1rZXktYXRsYXNnYXRlLW5vdC1hLXNlY3JldCE=",
	"ATLASGATE_DEMO_OAUTH_CLIENT_SECRET": "SECRET-oauth-client",
	// caddyfiles/production.Caddyfile
	"ATLASGATE_DOMAIN":              "gateway.example.com",
	"ATLASGATE_STORAGE":             "storage",
	"ATLASGATE_AUDIT_LOG":           "audit.log",
	"ATLASGATE_ENCRYPTION_KEY":      "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
	"ATLASSIAN_OAUTH_CLIENT_ID":     "prod-client-id",
	"ATLASSIAN_OAUTH_CLIENT_SECRET": "SECRET-prod-oauth",
	"ENTRA_TENANT_ID":               "11111111-2222-3333-4444-555555555555",
	"ENTRA_AUDIENCE":                "22222222-3333-4444-5555-666666666666",
	"ATLASGATE_ADMIN_USER":          "admin",
	"ATLASGATE_ADMIN_PASSWORD_HASH": clientHashForEnv(),
}

func clientHashForEnv() string {
	h, _ := bcrypt.GenerateFromPassword([]byte(clientPassword), bcrypt.MinCost)
	return string(h)
}

// Every Caddyfile we ship adapts and validates with the real binary.
func TestEveryShippedCaddyfileValidates(t *testing.T) {
	files, _ := filepath.Glob("../caddyfiles/*")
	if len(files) < 2 {
		t.Fatalf("expected the shipped Caddyfiles, found %v", files)
	}
	// The demo Caddyfile names .demo/atlassim-ca.pem relative to its working dir.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".demo"), 0o700)
	os.WriteFile(filepath.Join(dir, ".demo", "atlassim-ca.pem"), sim.CACertPEM(), 0o600)
	var env []string
	for k, v := range caddyfileEnv {
		env = append(env, k+"="+v)
	}
	for _, f := range files {
		abs, _ := filepath.Abs(f)
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := caddyCmd(t, dir, env, "adapt", "--config", abs, "--adapter", "caddyfile").Output()
			if err != nil {
				t.Fatalf("adapt: %v: %s", err, out)
			}
			for k, v := range caddyfileEnv {
				if strings.Contains(k, "TOKEN") || strings.Contains(k, "PAT") || strings.Contains(k, "SECRET") || strings.Contains(k, "KEY") {
					if bytes.Contains(out, []byte(v)) {
						t.Errorf("adapted config holds the value of %s", k)
					}
				}
			}
			if out, err := caddyCmd(t, dir, env, "validate", "--config", abs, "--adapter", "caddyfile").CombinedOutput(); err != nil {
				t.Fatalf("validate: %v: %s", err, out)
			}
		})
	}
}

// `make run` with a variable missing stops at start-up, naming it.
func TestMissingVariableStopsStartup(t *testing.T) {
	for _, missing := range []string{"ATLASSIAN_SITE", "ATLASSIAN_EMAIL", "ATLASSIAN_API_TOKEN"} {
		t.Run(missing, func(t *testing.T) {
			env := []string{"CADDY_ADMIN=127.0.0.1:0", fmt.Sprintf("ATLASGATE_ADDRESS=http://127.0.0.1:%d", freePort(t))}
			for k, v := range caddyfileEnv {
				if k != missing {
					env = append(env, k+"="+v)
				}
			}
			cmd := caddyCmd(t, workDir, env, "run", "--config", absPath("../caddyfiles/Caddyfile"), "--adapter", "caddyfile")
			cmd.WaitDelay = 30 * time.Second
			timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
			defer timer.Stop()
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatal("caddy run started without the variable")
			}
			if !bytes.Contains(out, []byte("environment variable "+missing+" is not set")) {
				t.Errorf("start-up error does not name %s:\n%s", missing, out)
			}
		})
	}
}

// The production Caddyfile, run by the binary as `make run` does, in front of
// the simulator (trusted through SSL_CERT_FILE, as a corporate CA would be);
// reloaded with the CLI; stopped cleanly with SIGINT.
func TestBinaryRunsProductionCaddyfile(t *testing.T) {
	port, admin := freePort(t), freePort(t)
	env := []string{
		"SSL_CERT_FILE=" + caFile,
		fmt.Sprintf("CADDY_ADMIN=127.0.0.1:%d", admin),
		fmt.Sprintf("ATLASGATE_ADDRESS=http://127.0.0.1:%d", port),
		"ATLASSIAN_SITE=" + sim.URL(atlassim.HostSite),
		"ATLASSIAN_EMAIL=" + atlassim.DemoEmail,
		"ATLASSIAN_API_TOKEN=" + atlassim.DemoAPIToken,
		"ATLASGATE_CLIENT_USER=" + clientUser,
		"ATLASGATE_CLIENT_PASSWORD_HASH=" + clientHash,
	}
	var logs syncBuffer
	cmd := caddyCmd(t, workDir, env, "run", "--config", absPath("../caddyfiles/Caddyfile"), "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()

	url := fmt.Sprintf("http://127.0.0.1:%d/rest/api/3/myself", port)
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		req.SetBasicAuth(clientUser, clientPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	var status int
	var body string
	itest.Eventually(20*time.Second, func() bool { status, body = get(); return status != 0 })
	if status != 200 || !strings.Contains(body, atlassim.DemoAccountID) {
		t.Fatalf("status %d: %s\nlogs:\n%s", status, body, logs.String())
	}

	reload := caddyCmd(t, workDir, env, "reload", "--config", absPath("../caddyfiles/Caddyfile"), "--adapter", "caddyfile", "--address", fmt.Sprintf("127.0.0.1:%d", admin), "--force")
	if out, err := reload.CombinedOutput(); err != nil {
		t.Fatalf("caddy reload: %v: %s", err, out)
	}
	if status, body := get(); status != 200 {
		t.Fatalf("after reload: status %d: %s", status, body)
	}
	if strings.Contains(logs.String(), atlassim.DemoAPIToken) {
		t.Error("the gateway logged the API token")
	}

	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("caddy did not exit cleanly on SIGINT: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("caddy did not stop on SIGINT")
	}
}

func absPath(p string) string {
	a, _ := filepath.Abs(p)
	return a
}

// syncBuffer is a bytes.Buffer a child process may write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

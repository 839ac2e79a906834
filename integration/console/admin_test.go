package console

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/atlasgate/atlasgate/integration/itest"
	"github.com/atlasgate/atlasgate/modules/console"
)

func adminGet(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", gw.admin, path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func accessToken(t *testing.T) string {
	t.Helper()
	mgr, err := credential(t).Manager(t.Context())
	if err != nil || mgr.Cached() == nil {
		t.Fatalf("no cached token: %v", err)
	}
	return mgr.Cached().AccessToken
}

func TestAdminCredentials(t *testing.T) {
	authorizeOverHTTP(t)
	status, body := adminGet(t, "/atlasgate/credentials")
	var list []console.CredentialStatus
	if err := json.Unmarshal([]byte(body), &list); status != 200 || err != nil {
		t.Fatalf("GET /atlasgate/credentials: %d %v %s", status, err, body)
	}
	if len(list) != 2 || list[0].Name != "jira" || list[0].Type != "oauth" || list[0].OAuth == nil ||
		list[0].OAuth.State != "ready" || list[0].OAuth.CloudID != sim.CloudID() ||
		list[1].Name != "jira-dc" || list[1].Type != "bearer" || list[1].OAuth != nil {
		t.Fatalf("credentials: %s", body)
	}
	if strings.Contains(body, accessToken(t)) || strings.Contains(body, "refresh_token") {
		t.Fatal("the admin API returns a token")
	}
	if status, _ := adminPost(t, "/atlasgate/credentials"); status != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", status)
	}
}

func adminPost(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d%s", gw.admin, path), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMetrics(t *testing.T) {
	authorizeOverHTTP(t)
	_, body := adminGet(t, "/metrics")
	for _, want := range []string{
		`atlasgate_credential_state{credential="jira",state="ready"} 1`,
		`atlasgate_credential_state{credential="jira",state="needs_reauthorization"} 0`,
		`atlasgate_credential_grant_expiry_timestamp_seconds{credential="jira"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, `atlasgate_credential_state{credential="jira-dc"`) {
		t.Error("a state for a bearer credential")
	}
}

// caddyBinary returns the atlasgate Caddy binary (see itest.CaddyBinary).
func caddyBinary(t *testing.T) string { return itest.CaddyBinary(t, dir) }

func TestCLI(t *testing.T) {
	authorizeOverHTTP(t)
	bin := caddyBinary(t)
	addr := fmt.Sprintf("127.0.0.1:%d", gw.admin)
	out, err := exec.Command(bin, "atlasgate-credentials", "--address", addr).CombinedOutput()
	if err != nil {
		t.Fatalf("atlasgate-credentials: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.Contains(lines[1], "jira") || !strings.Contains(lines[1], "oauth") || !strings.Contains(lines[1], "ready") ||
		!strings.Contains(lines[2], "jira-dc") || !strings.Contains(lines[2], "bearer") {
		t.Fatalf("table:\n%s", out)
	}
	out, err = exec.Command(bin, "atlasgate-credentials", "--address", addr, "--json").Output()
	var list []console.CredentialStatus
	if err != nil || json.Unmarshal(out, &list) != nil || len(list) != 2 || list[0].State() != "ready" {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if strings.Contains(string(out), accessToken(t)) {
		t.Fatal("the CLI prints a token")
	}
}

package apikeys

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/atlasgate/atlasgate/integration/itest"
)

// caddyBinary returns the atlasgate Caddy binary (see itest.CaddyBinary).
func caddyBinary(t *testing.T) string { return itest.CaddyBinary(t, workDir) }

// cli runs `caddy atlasgate-api-key <args>` against the gateway's admin API
// (given through CADDY_ADMIN, the documented default of --address).
func cli(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(caddyBinary(t), append([]string{"atlasgate-api-key"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + workDir, fmt.Sprintf("CADDY_ADMIN=127.0.0.1:%d", gw.adminPort)}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := cli(t, args...)
	if err != nil {
		t.Fatalf("caddy atlasgate-api-key %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func TestCLI(t *testing.T) {
	// create prints the key alone on stdout.
	key := strings.TrimSpace(mustCLI(t, "create", "--authenticator", "keys", "--owner", "cli-bot",
		"--description", "made by the CLI", "--label", "team=platform", "--label", "env=test",
		"--group", "deployers", "--expires-in", "3d"))
	if !strings.HasPrefix(key, "agk_") || len(key) != 42 {
		t.Fatalf("create printed %q", key)
	}
	resp, body := gw.call(t, bearer(key))
	wantStatus(t, resp, body, http.StatusOK)
	if got := resp.Header.Get("X-Atlasgate-User"); got != "cli-bot" {
		t.Errorf("{http.auth.user.id} = %q", got)
	}
	id := key[4:12]

	// list, as a table and as JSON, never with the key.
	table := mustCLI(t, "list", "--authenticator", "keys")
	if !strings.Contains(table, id) || !strings.Contains(table, "cli-bot") || strings.Contains(table, key[12:]) {
		t.Errorf("list:\n%s", table)
	}
	var keys []map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, "list", "--authenticator", "keys", "--json")), &keys); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range keys {
		if k["id"] == id {
			found = true
			if k["labels"].(map[string]any)["team"] != "platform" || k["description"] != "made by the CLI" {
				t.Errorf("listed %v", k)
			}
		}
		if _, ok := k["key"]; ok {
			t.Error("list shows a key")
		}
	}
	if !found {
		t.Errorf("list --json lacks %s", id)
	}

	// rotate: a new key works, the old one is refused at once.
	newKey := strings.TrimSpace(mustCLI(t, "rotate", "--authenticator", "keys", "--expires-in", "1d", id))
	if !strings.HasPrefix(newKey, "agk_") || newKey == key {
		t.Fatalf("rotate printed %q", newKey)
	}
	resp, body = gw.call(t, bearer(key))
	wantStatus(t, resp, body, http.StatusUnauthorized)
	resp, body = gw.call(t, bearer(newKey))
	wantStatus(t, resp, body, http.StatusOK)

	// revoke.
	if out := mustCLI(t, "revoke", "--authenticator", "keys", newKey[4:12]); !strings.Contains(out, "revoked") {
		t.Errorf("revoke printed %q", out)
	}
	resp, body = gw.call(t, bearer(newKey))
	wantStatus(t, resp, body, http.StatusUnauthorized)

	// Errors reach the user.
	_, errOut, err := cli(t, "create", "--authenticator", "keys", "--owner", "o", "--expires-in", "400d")
	if err == nil || !strings.Contains(errOut, "exceeds max_lifetime") {
		t.Errorf("create beyond max_lifetime: %v %s", err, errOut)
	}
	_, errOut, err = cli(t, "list")
	if err == nil || !strings.Contains(errOut, "--authenticator is required") {
		t.Errorf("list without --authenticator: %v %s", err, errOut)
	}
	// --address overrides CADDY_ADMIN.
	_, _, err = cli(t, "list", "--authenticator", "keys", "--address", "127.0.0.1:1")
	if err == nil {
		t.Error("--address was ignored")
	}

	// The help documents every flag.
	help, _, _ := cli(t, "--help")
	for _, f := range []string{"--address", "--authenticator", "--owner", "--description", "--label", "--group", "--expires-in", "--grace-period", "--json", "CADDY_ADMIN"} {
		if !strings.Contains(help, f) {
			t.Errorf("help lacks %s", f)
		}
	}
}

package integration

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// The atlasgate-* commands fail alike: one plain "Error: …" line on stderr
// (no JSON log line with the admin API's JSON escaped in it), nothing on
// stdout, exit status 1; and their --help points at atlasgate's docs.
func TestCLIErrorsAreOnePlainLine(t *testing.T) {
	g := startGateway(t) // credentials, but no authenticator and no policy
	admin := fmt.Sprintf("127.0.0.1:%d", g.adminPort)
	unreachable := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"atlasgate-test-token", "--address", admin, "--token", "x"},
			"Error: no authenticators configured: add `authenticator <name> <type>` to the global atlasgate block (docs/authentication.md)"},
		{[]string{"atlasgate-test-token", "--address", admin, "--token", "x", "--authenticator", "nope"},
			`Error: authenticator "nope" is not defined (defined: none)`},
		{[]string{"atlasgate-explain", "--address", admin, "--user", "u", "GET", "/rest/api/3/myself"},
			"Error: no atlasgate_policy in the running config"},
		{[]string{"atlasgate-api-key", "list", "--address", admin, "--authenticator", "keys"},
			`Error: authenticator "keys" is not configured (api_key authenticators: none)`},
		{[]string{"atlasgate-credentials", "--address", unreachable},
			"Error: cannot reach the gateway's admin API at " + unreachable + ": is the gateway running? (set --address or CADDY_ADMIN to its admin address)"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[:2], " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := caddyCmd(t, workDir, nil, c.args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", err)
			}
			got := strings.TrimSuffix(stderr.String(), "\n")
			if strings.Contains(got, "\n") || !strings.HasPrefix(got, c.want) || strings.Contains(got, `\"`) {
				t.Errorf("stderr = %q, want one line starting %q", got, c.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q", stdout.String())
			}
		})
	}

	for cmd, doc := range map[string]string{"atlasgate-test-token": "authentication.md", "atlasgate-explain": "policy.md",
		"atlasgate-api-key": "authentication.md", "atlasgate-credentials": "console.md"} {
		out, err := caddyCmd(t, workDir, nil, cmd, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --help: %v", cmd, err)
		}
		if strings.Contains(string(out), "caddyserver.com") || !strings.Contains(string(out), "https://github.com/atlasgate/atlasgate/blob/main/docs/"+doc) {
			t.Errorf("%s --help does not point at docs/%s:\n%s", cmd, doc, out)
		}
	}
}

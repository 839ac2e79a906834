package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/integration/atlassim"
)

// sdkModules is the node_modules with the SDKs (`make sdk-deps` installs
// them from the npm registry into .cache/sdk).
func sdkModules(t *testing.T) string {
	dir := os.Getenv("ATLASGATE_SDK_NODE_MODULES")
	if dir == "" {
		dir, _ = filepath.Abs("../.cache/sdk/node_modules")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	for _, pkg := range []string{"jira.js", "confluence.js", "bitbucket"} {
		if _, err := os.Stat(filepath.Join(dir, pkg)); err != nil {
			t.Skipf("%s not installed in %s: run make sdk-deps", pkg, dir)
		}
	}
	return dir
}

// The SDK matrix: jira.js and the bitbucket package, unchanged, against the
// gateway: their own placeholder Authorization, the caller's gateway API key
// in X-Atlasgate-Token; Bitbucket pagination follows the SDK's own `next`
// and `previous`, and Jira's `self` leads back to the gateway.
func TestSDKMatrix(t *testing.T) {
	modules := sdkModules(t)
	g := newGateway(t)
	g.params["ExtraCredentials"] = "\t\tauthenticator keys api_key {\n\t\t\theader X-Atlasgate-Token\n\t\t}\n"
	jiraPort, bbPort := freePort(t), freePort(t)
	cf := g.caddyfile() + fmt.Sprintf(`
http://127.0.0.1:%d {
	atlasgate_auth keys
	atlasgate_proxy jira
}

http://127.0.0.1:%d {
	atlasgate_auth keys
	atlasgate_proxy bitbucket
}
`, jiraPort, bbPort)
	if err := caddy.Load(adapt(t, cf), true); err != nil {
		t.Fatalf("loading the gateway: %v", err)
	}
	key := createAPIKey(t, g)

	sim.ResetRequests()
	cmd := exec.Command("node", "sdk/matrix.cjs")
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules,
		"SDK_GATEWAY_TOKEN="+key,
		fmt.Sprintf("SDK_JIRA_URL=http://127.0.0.1:%d", jiraPort),
		fmt.Sprintf("SDK_BITBUCKET_URL=http://127.0.0.1:%d", bbPort),
		"SDK_WORKSPACE="+atlassim.DemoWorkspace,
		"SDK_ATTACHMENT_ID="+atlassim.DemoAttachmentID,
		"SDK_ATTACHMENT_CONTENT=attachment bytes served by the media host\n",
		// The media host's certificate (Atlassian's is publicly trusted).
		"NODE_EXTRA_CA_CERTS="+caFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			Name   string `json:"name"`
			OK     bool   `json:"ok"`
			Detail any    `json:"detail"`
		}
		if json.Unmarshal([]byte(line), &r) != nil {
			continue
		}
		if !r.OK {
			t.Errorf("%s: %v", r.Name, r.Detail)
		} else {
			t.Logf("%s: %v", r.Name, r.Detail)
		}
	}
	if err != nil {
		t.Fatalf("SDK matrix: %v\n%s\n%s", err, out, stderr.String())
	}
	// The SDK followed the 303 itself: no Atlassian credential went to the
	// media host. (The custom header did: HTTP clients drop Authorization and
	// Proxy-Authorization on a redirect to another host, not custom headers;
	// authentication.md says so.)
	media := sim.RequestsTo(atlassim.HostMedia)
	if len(media) != 1 || media[0].Header.Get("Authorization") != "" {
		t.Errorf("media host: %d requests, Authorization %q", len(media), func() string {
			if len(media) == 0 {
				return ""
			}
			return media[0].Header.Get("Authorization")
		}())
	} else {
		t.Logf("headers at the media host: %v", keysOf(media[0].Header))
	}
	// Neither the placeholder nor the gateway key reached Atlassian.
	for _, host := range []string{atlassim.HostSite, atlassim.HostBitbucket} {
		reqs := sim.RequestsTo(host)
		if len(reqs) == 0 {
			t.Errorf("no request reached %s", host)
		}
		for _, rec := range reqs {
			if rec.Principal == "" || rec.Header.Get("X-Atlasgate-Token") != "" || strings.Contains(fmt.Sprint(rec.Header), key) {
				t.Errorf("%s %s: principal %q, headers %v", host, rec.Path, rec.Principal, rec.Header)
			}
		}
	}
}

func createAPIKey(t *testing.T, g *gateway) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/atlasgate/api-keys/keys", g.adminPort),
		strings.NewReader(`{"owner":"sdk-matrix"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var k struct{ Key string }
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &k) != nil || k.Key == "" {
		t.Fatalf("creating an API key: %d %s", resp.StatusCode, b)
	}
	return k.Key
}

func keysOf(h http.Header) []string {
	var out []string
	for k := range h {
		out = append(out, k)
	}
	return out
}

package jwtauth

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
)

// This file sorts before jwtauth_test.go, whose last step stops the OP.

// rotationConfig keeps the default jwks_refresh (5m): only the OP's
// Cache-Control can make the gateway drop a withdrawn key within the test.
const rotationConfig = `{
%s
	atlasgate {
		credential jira api_token {
			site %s
			email %s
			token {env.%s}
			trusted_ca_file %s
		}
		authenticator op jwt {
			preset oidc %s
			audience atlasgate
			jwks_min_refetch 1s
		}
	}
}

http://127.0.0.1:%d {
	atlasgate_auth op
	atlasgate_proxy jira
}
`

// The OP rotates its signing key and later withdraws the old one, announcing
// `Cache-Control: max-age=1` on its JWKS: the gateway accepts tokens of the new
// key as soon as its refetch limit allows, and stops accepting tokens of the
// withdrawn key — also one it had verified and cached — within the OP's cache
// lifetime (bounded by jwks_min_refetch), not after jwks_refresh.
func TestJWKSRotationFollowsTheOP(t *testing.T) {
	idp.jwksCacheControl.Store("public, max-age=1")
	defer idp.jwksCacheControl.Store("")
	port, adminPort := itest.FreePort(t), itest.FreePort(t)
	itest.MustLoad(t, fmt.Sprintf(rotationConfig, itest.GlobalOptions(adminPort, filepath.Join(workDir, "storage")),
		sim.URL(atlassim.HostSite), atlassim.DemoEmail, envAPIToken, caFile, idp.issuer, port))
	g := gateway{port: port, adminPort: adminPort}

	old := token(t, "app")
	expectOK(t, g, old)

	idp.storage.rotate()
	fresh := token(t, "app")
	status, body := waitFor(t, g, fresh, http.StatusOK)
	if status != http.StatusOK {
		t.Fatalf("token of the new key never accepted: %d %s", status, body)
	}
	expectOK(t, g, old) // still published

	idp.storage.retire()
	status, body = waitFor(t, g, old, http.StatusUnauthorized)
	if status != http.StatusUnauthorized || !strings.Contains(body, "token signing key unknown") {
		t.Fatalf("token of the withdrawn key: %d %s", status, body)
	}
	expectOK(t, g, fresh)
}

// waitFor sends the token until the gateway answers want (the JWKS refresh
// runs in the background on real time) or 30 s have passed; it returns the
// last answer.
func waitFor(t *testing.T, g gateway, tok string, want int) (int, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body := g.get(t, tok)
		if resp.StatusCode == want || time.Now().After(deadline) {
			return resp.StatusCode, body
		}
		// Poll, not synchronise: the next try is what observes the change.
		<-time.After(100 * time.Millisecond)
	}
}

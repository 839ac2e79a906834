package replicas

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

// ccGateway serves the demo service account on port and the same account
// with a wrong secret on badPort, through the in-process Caddy.
func ccGateway(t *testing.T) (port, badPort int) {
	t.Helper()
	port, badPort, admin := itest.FreePort(t), itest.FreePort(t), itest.FreePort(t)
	cred := func(name, secretVar string) string {
		return fmt.Sprintf(`		credential %s client_credentials {
			token_url %s/oauth/token
			client_id %s
			client_secret {env.%s}
			site %s
			routing ex
			api_base %s
			trusted_ca_file %s
		}
`, name, sim.URL(atlassim.HostAuth), atlassim.DemoServiceAccountClientID, secretVar,
			sim.URL(atlassim.HostSite), sim.URL(atlassim.HostAPI), ca)
	}
	itest.MustLoad(t, fmt.Sprintf(`{
%s	atlasgate {
%s%s	}
}

http://127.0.0.1:%d {
	atlasgate_proxy svc
}

http://127.0.0.1:%d {
	atlasgate_proxy svc-bad
}
`, itest.GlobalOptions(admin, filepath.Join(dir, "cc-storage")), cred("svc", "IT_SA_SECRET"), cred("svc-bad", "IT_SA_BAD_SECRET"), port, badPort))
	return port, badPort
}

func TestClientCredentialsServiceAccount(t *testing.T) {
	port, badPort := ccGateway(t)
	sim.ResetTokenCalls()
	sim.ResetRequests()

	// A service account reaches Jira through api.atlassian.com/ex with a
	// Bearer token it obtained with its client credentials.
	status, body := get(port, "/rest/api/3/myself")
	if status != 200 || body["accountId"] != atlassim.DemoServiceAccountID {
		t.Fatalf("myself: %d %v", status, body)
	}
	rec := sim.RequestsTo(atlassim.HostAPI)
	if len(rec) != 1 || rec[0].Path != "/ex/jira/"+sim.CloudID()+"/rest/api/3/myself" || rec[0].AuthKind != "bearer" ||
		rec[0].Principal != atlassim.DemoServiceAccountID {
		t.Fatalf("reached Atlassian as %+v", rec)
	}
	if c := tokenCalls("client_credentials"); c["issued"] != 1 || total(c) != 1 {
		t.Fatalf("token calls: %v", c)
	}

	// The token is reused across requests and products.
	for i := 0; i < 5; i++ {
		if status, body := get(port, "/rest/api/3/issue/DEMO-1"); status != 200 {
			t.Fatalf("request %d: %d %v", i, status, body)
		}
	}
	if status, body := get(port, "/wiki/api/v2/pages"); status != 200 {
		t.Fatalf("confluence: %d %v", status, body)
	}
	if c := tokenCalls("client_credentials"); total(c) != 1 {
		t.Fatalf("token calls after 6 more requests: %v, want the first token reused", c)
	}

	// Renewed ahead of expiry (refresh_before 5m), on the simulator's clock.
	advance(54 * time.Minute)
	get(port, "/rest/api/3/myself")
	if c := tokenCalls("client_credentials"); total(c) != 1 {
		t.Fatalf("renewed with 6 minutes left: %v", c)
	}
	// Inside refresh_before the request is served with the still-valid token
	// at once and the engine renews it in the background: wait for that.
	advance(2 * time.Minute)
	if status, _ := get(port, "/rest/api/3/myself"); status != 200 ||
		!itest.Eventually(10*time.Second, func() bool { return total(tokenCalls("client_credentials")) == 2 }) {
		t.Fatalf("with 4 minutes left: %d, %v", status, tokenCalls("client_credentials"))
	}
	// Past expiry: a new token, no failure.
	advance(2 * time.Hour)
	if status, _ := get(port, "/rest/api/3/myself"); status != 200 || total(tokenCalls("client_credentials")) != 3 {
		t.Fatalf("after expiry: %d, %v", status, tokenCalls("client_credentials"))
	}

	// Atlassian drops the token before its expiry: one new token and a
	// replay, the client sees a 200.
	advance(time.Minute)
	sim.RevokeGrant(atlassim.DemoServiceAccountClientID, atlassim.DemoServiceAccountID)
	sim.ResetRequests()
	if status, body := get(port, "/rest/api/3/myself"); status != 200 {
		t.Fatalf("after the upstream 401: %d %v", status, body)
	}
	if reqs := sim.RequestsTo(atlassim.HostAPI); len(reqs) != 2 || reqs[0].Status != 401 || reqs[1].Status != 200 {
		t.Fatalf("Atlassian saw %d requests, want a 401 then a 200", len(reqs))
	}
	if n := total(tokenCalls("client_credentials")); n != 4 {
		t.Fatalf("token calls = %d, want 4", n)
	}

	// The token endpoint failing while no valid token is cached: 503 JSON
	// naming the credential and the cause, never the endpoint's body.
	advance(2 * time.Hour)
	sim.FailTokenEndpoint(1, http.StatusInternalServerError)
	status, body = get(port, "/rest/api/3/myself")
	if status != http.StatusServiceUnavailable || body["error"] != "credential_unavailable" || body["credential"] != "svc" ||
		!strings.Contains(fmt.Sprint(body["message"]), "the token endpoint failed") || body["remedy"] == nil {
		t.Fatalf("token endpoint down: %d %v", status, body)
	}
	if strings.Contains(fmt.Sprint(body), "Simulated failure") {
		t.Errorf("the answer carries the token endpoint's body: %v", body)
	}
	// It recovers on its own once the endpoint does (after a short pause in
	// which requests do not hammer it).
	advance(6 * time.Second)
	if status, body := get(port, "/rest/api/3/myself"); status != 200 {
		t.Fatalf("after recovery: %d %v", status, body)
	}

	// A wrong secret: 503 saying the client credentials were rejected.
	status, body = get(badPort, "/rest/api/3/myself")
	if status != http.StatusServiceUnavailable || body["credential"] != "svc-bad" ||
		!strings.Contains(fmt.Sprint(body["message"]), "rejected the client credentials") {
		t.Fatalf("wrong secret: %d %v", status, body)
	}
	if strings.Contains(fmt.Sprint(body), "not-the-secret") {
		t.Errorf("the answer carries the secret: %v", body)
	}
}

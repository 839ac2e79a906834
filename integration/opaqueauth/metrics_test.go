package opaqueauth

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Operators see authentications by authenticator and outcome, cache hits and
// identity-provider call latency in Caddy's metrics.
func TestAuthenticationMetrics(t *testing.T) {
	tok := token(t, "app")
	for i := 0; i < 2; i++ { // a miss (one introspection call), then a hit
		if a := gw.get(t, sites[0], tok); a.status != http.StatusOK {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", gw.adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`atlasgate_authentications_total{authenticator="`,
		`outcome="success"`,
		`atlasgate_authn_cache_lookups_total{kind="introspection",result="hit"}`,
		`atlasgate_authn_cache_lookups_total{kind="introspection",result="miss"}`,
		`atlasgate_authn_idp_request_duration_seconds_count{kind="introspection",outcome="ok"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

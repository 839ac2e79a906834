package apikeys

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
	"github.com/atlasgate/atlasgate/modules/authn/apikey"
)

type issued struct {
	Key     string    `json:"key"`
	ID      string    `json:"id"`
	Owner   string    `json:"owner"`
	Status  string    `json:"status"`
	Expires time.Time `json:"expires"`
}

func (g *gateway) createKey(t *testing.T, req map[string]any) issued {
	t.Helper()
	status, body := g.admin(t, http.MethodPost, "/atlasgate/api-keys/keys", req)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	var out issued
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func wantStatus(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
}

// A key issued through the admin API reaches Atlassian as the gateway's
// credential, never as itself; revoking it refuses the very next request.
func TestKeyThroughAdminAPI(t *testing.T) {
	k := gw.createKey(t, map[string]any{
		"owner": "deploy-bot", "description": "integration", "labels": map[string]string{"team": "platform"},
		"groups": []string{"deployers"}, "expires_in": "2d",
	})
	if !strings.HasPrefix(k.Key, "agk_") || len(k.Key) != 42 || k.Owner != "deploy-bot" || k.Status != "active" {
		t.Fatalf("issued %+v", k)
	}
	if d := time.Until(k.Expires); d < 47*time.Hour || d > 48*time.Hour {
		t.Errorf("expires in %s, want 2d", d)
	}

	for name, h := range map[string]http.Header{
		"bearer":         bearer(k.Key),
		"basic password": {"Authorization": {"Basic " + basic("anything", k.Key)}},
		"X-API-Key":      {"X-Api-Key": {k.Key}},
	} {
		t.Run(name, func(t *testing.T) {
			sim.ResetRequests()
			resp, body := gw.call(t, h)
			wantStatus(t, resp, body, http.StatusOK)
			if got := resp.Header.Get("X-Atlasgate-User"); got != "deploy-bot" {
				t.Errorf("{http.auth.user.id} = %q", got)
			}
			rec := lastAtSim(t)
			if rec.Principal != atlassim.DemoAccountID {
				t.Errorf("Atlassian saw principal %q", rec.Principal)
			}
			noKeyUpstream(t, rec, k.Key)
		})
	}

	// The list shows the key's metadata, never the key or its hash.
	status, body := gw.admin(t, http.MethodGet, "/atlasgate/api-keys/keys", nil)
	if status != http.StatusOK || !strings.Contains(string(body), k.ID) ||
		strings.Contains(string(body), k.Key[12:]) || strings.Contains(string(body), `"hash"`) {
		t.Fatalf("list: %d %s", status, body)
	}

	status, body = gw.admin(t, http.MethodDelete, "/atlasgate/api-keys/keys/"+k.ID, nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"status":"revoked"`) {
		t.Fatalf("revoke: %d %s", status, body)
	}
	resp, body := gw.call(t, bearer(k.Key))
	wantStatus(t, resp, body, http.StatusUnauthorized)
	if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) ||
		!strings.Contains(string(body), "API key not valid") {
		t.Errorf("401: %s %s", resp.Header.Get("WWW-Authenticate"), body)
	}

	// Both admin actions are in the audit log, without the key.
	audit, _ := os.ReadFile(filepath.Join(workDir, "audit.log"))
	for _, msg := range []string{`"msg":"api key created"`, `"msg":"api key revoked"`} {
		if !strings.Contains(string(audit), msg) || !strings.Contains(string(audit), `"key_id":"`+k.ID+`"`) {
			t.Errorf("audit log lacks %s for key %s:\n%s", msg, k.ID, audit)
		}
	}
	if strings.Contains(string(audit), k.Key) {
		t.Error("the audit log holds the key")
	}
}

// Unknown, forged and malformed keys get the same answer as revoked ones.
func TestRefusedKeysLookAlike(t *testing.T) {
	good := gw.createKey(t, map[string]any{"owner": "o"}).Key
	forged := good[:41] + map[bool]string{true: "B", false: "A"}[good[41] == 'A']
	for name, key := range map[string]string{
		"forged checksum": forged,
		"unknown":         "agk_" + strings.Repeat("0", 32) + "000000",
		"malformed":       "agk_nope",
	} {
		resp, body := gw.call(t, bearer(key))
		wantStatus(t, resp, body, http.StatusUnauthorized)
		if !strings.Contains(string(body), `"message":"API key not valid"`) {
			t.Errorf("%s: %s", name, body)
		}
	}
	// No credential at all.
	resp, body := gw.call(t, nil)
	wantStatus(t, resp, body, http.StatusUnauthorized)
}

func TestAdminAPIErrors(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		want         string
	}{
		{http.MethodPost, "/atlasgate/api-keys/keys", map[string]any{"owner": "o", "expires_in": "31d"}, 400, "exceeds max_lifetime"},
		{http.MethodPost, "/atlasgate/api-keys/keys", map[string]any{"owner": "o", "expires_in": "0s"}, 400, "must be positive"},
		{http.MethodPost, "/atlasgate/api-keys/keys", map[string]any{"owner": "o", "expires": "1d"}, 400, "unknown field"},
		{http.MethodPost, "/atlasgate/api-keys/keys", map[string]any{}, 400, "owner: required"},
		{http.MethodGet, "/atlasgate/api-keys/nope", nil, 404, `authenticator \"nope\" is not configured (api_key authenticators: keys)`},
		{http.MethodGet, "/atlasgate/api-keys/mtls", nil, 400, "not an api_key authenticator"},
		{http.MethodDelete, "/atlasgate/api-keys/keys/AAAAAAAA", nil, 404, "no API key"},
		{http.MethodPut, "/atlasgate/api-keys/keys", nil, 405, "method not allowed"},
	} {
		status, body := gw.admin(t, tc.method, tc.path, tc.body)
		if status != tc.status || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %s: %d %s, want %d %q", tc.method, tc.path, status, body, tc.status, tc.want)
		}
	}
}

// A second replica sharing the storage: keys it issues work on the running
// gateway at once, and keys it revokes stop working there within a second.
func TestSecondReplicaSharingStorage(t *testing.T) {
	replica := openReplica(t)
	ctx := context.Background()
	k, err := replica.Create(ctx, apikey.CreateRequest{Owner: "replica-issued"})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := gw.call(t, bearer(k.Key))
	wantStatus(t, resp, body, http.StatusOK)

	// The gateway now holds the key in its (at most one second) cache.
	if _, err := replica.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	if !itest.Eventually(1500*time.Millisecond, func() bool {
		resp, _ := gw.call(t, bearer(k.Key))
		return resp.StatusCode == http.StatusUnauthorized
	}) {
		t.Fatalf("the gateway still accepts a key revoked %s ago on another replica", time.Since(revoked))
	}
	t.Logf("revocation on another replica honoured after %s", time.Since(revoked).Round(time.Millisecond))
}

// openReplica provisions an api_key authenticator on the gateway's storage
// directory in a context of its own, as another gateway process would.
func openReplica(t *testing.T) *apikey.APIKey {
	t.Helper()
	cfg := &caddy.Config{
		StorageRaw: json.RawMessage(fmt.Sprintf(`{"module":"file_system","root":%q}`, gw.storage)),
		Logging:    &caddy.Logging{Logs: map[string]*caddy.CustomLog{"default": {BaseLog: caddy.BaseLog{Level: "ERROR"}}}},
	}
	ctx, err := caddy.ProvisionContext(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := ctx.LoadModuleByID("atlasgate.authn.api_key", json.RawMessage(`{"max_lifetime":2592000000000000}`))
	if err != nil {
		t.Fatal(err)
	}
	return mod.(*apikey.APIKey)
}

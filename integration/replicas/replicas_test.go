package replicas

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/credentials"
	"github.com/atlasgate/atlasgate/modules/tokenstore"
)

// oauthConfig is the Caddyfile of one gateway with the 3LO credential "jira",
// its token set in the file storage at shared.
func oauthConfig(port, admin int, shared string) string {
	cb := fmt.Sprintf("http://127.0.0.1:%d/atlasgate/oauth/callback", port)
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	log {
		level INFO
	}
	storage file_system %s
	default_bind 127.0.0.1
	atlasgate {
		encryption_key {env.IT_ENCRYPTION_KEY}
		credential jira oauth {
			client_id %s
			client_secret {env.IT_OAUTH_SECRET}
			scopes read:jira-user read:jira-work offline_access
			site %s
			callback_url %s
			authorize_url %s/authorize
			token_url %s/oauth/token
			api_base %s
			trusted_ca_file %s
		}
	}
}

http://127.0.0.1:%d {
	atlasgate_proxy jira
}
`, admin, shared, atlassim.DemoOAuthClientID, sim.URL(atlassim.HostSite), cb,
		sim.URL(atlassim.HostAuth), sim.URL(atlassim.HostAuth), sim.URL(atlassim.HostAPI), ca, port)
}

// authorizeShared creates a storage directory holding an authorized "jira"
// token set: the in-process Caddy runs the consent against the simulator
// (auto-consent) and completes it as the console's callback does, and is
// then stopped so that only the replicas use the grant.
//
// The consent writes to a storage directory of its own, copied (without its
// locks/) to the shared one: certmagic's file storage keeps refreshing, for
// up to 5 seconds after an unlock, whatever lock file then exists under the
// released name — and would keep a crashed replica's lock fresh for ever
// (see TestReplicaKilledMidRefreshAfterPeerLocked).
func authorizeShared(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp(dir, t.Name()+"-")
	if err != nil {
		t.Fatal(err)
	}
	authz, shared := filepath.Join(base, "consent"), filepath.Join(base, "shared")
	port, admin := itest.FreePort(t), itest.FreePort(t)
	sim.AddRedirectURI(atlassim.DemoOAuthClientID, fmt.Sprintf("http://127.0.0.1:%d/atlasgate/oauth/callback", port))
	itest.MustLoad(t, oauthConfig(port, admin, authz))
	defer func() {
		caddy.Stop()
		if err := os.CopyFS(shared, os.DirFS(authz)); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(shared, "locks"))
	}()
	app, err := caddy.ActiveContext().AppIfConfigured("atlasgate")
	if err != nil {
		t.Fatal(err)
	}
	cred, _ := app.(*atlasgate.App).Credential("jira")
	c := cred.(*credentials.OAuth)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(sim.CACertPEM())
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get(c.AuthCodeURL("state-r"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("code") == "" {
		t.Fatalf("consent: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if err := c.CompleteAuthorization(context.Background(), loc.Query().Get("code")); err != nil {
		t.Fatalf("completing authorization: %v", err)
	}
	return shared
}

// stored reads the token set the replicas share, as any of them would.
func stored(t *testing.T, shared string) *tokenstore.TokenSet {
	t.Helper()
	key, err := tokenstore.ParseKey(encryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	store, err := tokenstore.New(&certmagic.FileStorage{Path: shared}, key)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := store.Load(context.Background(), "oauth-jira")
	if err != nil {
		t.Fatalf("loading the stored token set: %v", err)
	}
	return ts
}

func startPair(t *testing.T, shared string) (a, b *replica) {
	t.Helper()
	binary(t) // build before anything is timed
	for _, name := range []string{"a", "b"} {
		port, admin := itest.FreePort(t), itest.FreePort(t)
		r := startReplica(t, name, port, admin, oauthConfig(port, admin, shared))
		if status, body := get(r.port, "/rest/api/3/myself"); status != 200 || body["accountId"] != atlassim.DemoAccountID {
			t.Fatalf("replica %s: %d %v", name, status, body)
		}
		if name == "a" {
			a = r
		} else {
			b = r
		}
	}
	return a, b
}

// Two gateway processes share the token set. When Atlassian stops accepting
// the access token, both see 401s at once: exactly one refresh happens (the
// other replica adopts its result from storage under the lock), and no
// client request fails.
func TestReplicasRefreshOnce(t *testing.T) {
	shared := authorizeShared(t)
	sim.ResetTokenCalls()
	a, b := startPair(t, shared)
	if n := total(tokenCalls("refresh_token")); n != 0 {
		t.Fatalf("the replicas refreshed %d times at start-up, want 0 (the stored token is valid)", n)
	}
	gen := stored(t, shared).Generation

	for round := 1; round <= 2; round++ {
		sim.ResetTokenCalls()
		sim.Advance(61 * time.Minute) // the access token dies at Atlassian only
		var wg sync.WaitGroup
		var failed atomic.Int64
		start := make(chan struct{})
		for i := 0; i < 40; i++ {
			port := a.port
			if i%2 == 1 {
				port = b.port
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if status, body := get(port, "/rest/api/3/issue/DEMO-1"); status != 200 {
					failed.Add(1)
					t.Logf("round %d: %d %v", round, status, body)
				}
			}()
		}
		close(start)
		wg.Wait()
		calls := tokenCalls("refresh_token")
		if failed.Load() != 0 || calls["issued"] != 1 || total(calls) != 1 {
			t.Fatalf("round %d: %d of 40 requests failed; refresh calls %v (want none failed and one issued)", round, failed.Load(), calls)
		}
		if ts := stored(t, shared); ts.Generation != gen+uint64(round) || ts.State != tokenstore.StateReady {
			t.Fatalf("round %d: stored generation %d state %s, want %d ready", round, ts.Generation, ts.State, gen+uint64(round))
		}
	}
	if sim.GrantRevoked(atlassim.DemoOAuthClientID, atlassim.DemoAccountID) {
		t.Fatal("the grant was revoked")
	}
}

// A replica killed with SIGKILL while its refresh is at Atlassian — it holds
// the storage lock, Atlassian rotates the refresh token, the answer goes
// nowhere — leaves storage with the previous refresh token, which Atlassian
// still accepts within its reuse leeway: the other replica refreshes with it
// once the dead replica's lock goes stale, nothing is revoked, and the killed
// replica serves again at once after a restart.
func TestReplicaKilledMidRefresh(t *testing.T) {
	shared := authorizeShared(t)
	a, b := startPair(t, shared)
	before := stored(t, shared)

	sim.ResetTokenCalls()
	hold := sim.HoldTokenEndpoint()
	defer hold.Release()
	sim.Advance(61 * time.Minute)
	go get(a.port, "/rest/api/3/myself") // dies with a
	select {
	case <-hold.Arrived():
	case <-time.After(20 * time.Second):
		t.Fatal("replica a sent no refresh")
	}
	a.kill()
	hold.Release()
	// Atlassian processes the refresh of the dead replica; wait until it has.
	if !itest.Eventually(10*time.Second, func() bool { return tokenCalls("refresh_token")["issued"] == 1 }) {
		t.Fatalf("the held refresh was not processed: %v", tokenCalls("refresh_token"))
	}

	// Storage still holds a usable grant: the previous set, ready.
	ts := stored(t, shared)
	if ts.State != tokenstore.StateReady || ts.Generation != before.Generation || ts.RefreshToken != before.RefreshToken {
		t.Fatalf("after the crash: state %s generation %d (before %d), refresh token kept: %v",
			ts.State, ts.Generation, before.Generation, ts.RefreshToken == before.RefreshToken)
	}

	// The surviving replica serves: it waits out the dead replica's lock,
	// then refreshes with the stored refresh token inside the leeway.
	t0 := time.Now()
	if status, body := get(b.port, "/rest/api/3/myself"); status != 200 {
		t.Fatalf("replica b after the crash: %d %v", status, body)
	}
	t.Logf("replica b served after %v (the dead replica's lock had to go stale)", time.Since(t0).Round(time.Millisecond))
	calls := tokenCalls("refresh_token")
	if calls["issued"] != 1 || calls["issued_reuse_in_leeway"] != 1 || total(calls) != 2 {
		t.Fatalf("refresh calls %v, want the lost one and one reuse within the leeway", calls)
	}
	if ts := stored(t, shared); ts.State != tokenstore.StateReady || ts.Generation != before.Generation+1 {
		t.Fatalf("after b's refresh: state %s generation %d", ts.State, ts.Generation)
	}

	// The killed replica, restarted, serves at once from storage.
	a.start(t)
	t0 = time.Now()
	if status, body := get(a.port, "/rest/api/3/myself"); status != 200 {
		t.Fatalf("restarted replica a: %d %v", status, body)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("restarted replica a took %v to serve", d)
	}
	if n := total(tokenCalls("refresh_token")); n != 2 {
		t.Errorf("the restart caused a refresh (%d calls)", n)
	}

	// And the grant lives on: the next expiry is one ordinary refresh.
	sim.ResetTokenCalls()
	sim.Advance(61 * time.Minute)
	for _, r := range []*replica{a, b, a, b} {
		if status, body := get(r.port, "/rest/api/3/myself"); status != 200 {
			t.Fatalf("replica %s after the next expiry: %d %v", r.name, status, body)
		}
	}
	if calls := tokenCalls("refresh_token"); calls["issued"] != 1 || total(calls) != 1 {
		t.Fatalf("next expiry: refresh calls %v", calls)
	}
	if sim.GrantRevoked(atlassim.DemoOAuthClientID, atlassim.DemoAccountID) {
		t.Fatal("the grant was revoked")
	}
	if st := stored(t, shared); st.State != tokenstore.StateReady {
		t.Fatalf("state %s: %s", st.State, st.Reason)
	}
}

// The same crash, but the surviving replica held the refresh lock itself
// within the 5 seconds before the crashed one took it (it had just
// refreshed). certmagic's file storage then keeps the dead replica's lock
// file fresh from the survivor's own lock-maintenance goroutine — it
// refreshes whatever file exists under the name, not the lock it created —
// so the lock never goes stale. The refresh manager therefore waits at most
// its lock timeout (20 s) and then refreshes without the lock (safe: storage
// is re-read, and Atlassian accepts a reuse within its leeway): the survivor
// serves again after that wait, and the grant survives.
func TestReplicaKilledMidRefreshAfterPeerLocked(t *testing.T) {
	shared := authorizeShared(t)
	a, b := startPair(t, shared)

	// b refreshes (taking and releasing the lock); a adopts its result.
	sim.Advance(61 * time.Minute)
	for _, r := range []*replica{b, a} {
		if status, body := get(r.port, "/rest/api/3/myself"); status != 200 {
			t.Fatalf("replica %s: %d %v", r.name, status, body)
		}
	}
	// Within seconds, a refreshes and dies in the middle of it.
	hold := sim.HoldTokenEndpoint()
	defer hold.Release()
	sim.Advance(61 * time.Minute)
	go get(a.port, "/rest/api/3/myself")
	select {
	case <-hold.Arrived():
	case <-time.After(20 * time.Second):
		t.Fatal("replica a sent no refresh")
	}
	a.kill()
	hold.Release()

	t0 := time.Now()
	status, body := get(b.port, "/rest/api/3/myself")
	if status != 200 || time.Since(t0) > 40*time.Second {
		t.Fatalf("replica b after the crash: %d after %v: %v", status, time.Since(t0).Round(time.Second), body)
	}
	t.Logf("replica b served again after %v (stuck lock, then the fallback)", time.Since(t0).Round(time.Second))
	if sim.GrantRevoked(atlassim.DemoOAuthClientID, atlassim.DemoAccountID) {
		t.Fatal("the grant was revoked")
	}
	if st := stored(t, shared); st.State != tokenstore.StateReady {
		t.Fatalf("state %s: %s", st.State, st.Reason)
	}
}

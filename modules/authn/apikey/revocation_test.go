package apikey

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/integration/redistest"
	redisstorage "github.com/atlasgate/atlasgate/modules/storage/redis"
)

// redisReplica is an api_key authenticator with its own Redis client, as one
// replica of a cluster would have.
func redisReplica(t *testing.T, addr string, replica int) *APIKey {
	t.Helper()
	st := &redisstorage.Storage{Addresses: []string{addr}, KeyPrefix: "apikey-test", Timeout: caddy.Duration(time.Duration(replica+1) * time.Second)}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := st.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	a := &APIKey{}
	if err := a.setup(ctx, st, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Cleanup(); cancel(); _ = st.Cleanup() })
	return a
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling the condition
	}
}

// A key revoked on one replica is refused by another that still has it in
// its cache: the revocation arrives as a message. The clock stands still, so
// no cache entry expires and polling cannot be what refuses it.
func TestRevocationReachesOtherReplicas(t *testing.T) {
	srv := redistest.Start(t)
	setClock(t)
	a, b := redisReplica(t, srv.Addr, 0), redisReplica(t, srv.Addr, 1)
	waitFor(t, "both replicas subscribed", func() bool { return a.notifier.Subscribed() && b.notifier.Subscribed() })

	issued, err := a.Create(context.Background(), CreateRequest{Owner: "deploy-bot"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*APIKey{a, b} {
		if _, err := r.Authenticate(bearer(issued.Key)); err != nil {
			t.Fatalf("fresh key refused: %v", err)
		}
	}
	if _, err := a.Revoke(context.Background(), issued.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other replica refuses the revoked key", func() bool {
		_, err := b.Authenticate(bearer(issued.Key))
		return err != nil
	})

	// Redis gone: the subscription is down, and cached keys fall back to the
	// short polling lifetime.
	srv.Stop()
	waitFor(t, "subscription marked down", func() bool { return !b.notifier.Subscribed() })
	if b.positiveTTL() != cacheTTL {
		t.Fatalf("cache lifetime %s without a subscription, want %s", b.positiveTTL(), cacheTTL)
	}
}

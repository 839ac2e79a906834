package proxy

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/integration/redistest"
	redisstorage "github.com/atlasgate/atlasgate/modules/storage/redis"
)

// replicaHolds is one replica's hold-backs, following Redis through its own client.
func replicaHolds(t *testing.T, addr string, replica int) *holds {
	t.Helper()
	st := &redisstorage.Storage{Addresses: []string{addr}, KeyPrefix: "holds-test", Timeout: caddy.Duration(time.Duration(replica+1) * time.Second)}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := st.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Cleanup() })
	h := &holds{until: map[string]hold{}}
	h.attachShared(ctx, st, zap.NewNop())
	return h
}

func waitHeld(t *testing.T, h *holds, name string) hold {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if hd, ok := h.get(name, time.Now()); ok {
			return hd
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held on this replica", name)
		}
		time.Sleep(10 * time.Millisecond) // waiting for the shared hold to arrive
	}
}

// A 429 seen by one replica holds the credential back on the others, and on
// a replica that starts (or reconnects) while the hold is in force.
func TestHoldSharedAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replicaHolds(t, srv.Addr, 0), replicaHolds(t, srv.Addr, 1)
	resp := &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"120"}}}
	a.observe("jira", resp, time.Now(), defaultHoldBackMax)

	hd := waitHeld(t, b, "jira")
	if hd.status != http.StatusTooManyRequests || time.Until(hd.until) < 100*time.Second {
		t.Fatalf("replica b holds %+v, want 429 for about 120s", hd)
	}
	if _, ok := b.get("confluence", time.Now()); ok {
		t.Fatal("another credential held")
	}
	late := replicaHolds(t, srv.Addr, 2)
	if hd := waitHeld(t, late, "jira"); hd.status != http.StatusTooManyRequests {
		t.Fatalf("late replica holds %+v", hd)
	}

	// Redis down: a 429 still holds the credential back on the replica that saw it.
	srv.Stop()
	b.observe("confluence", resp, time.Now(), defaultHoldBackMax)
	if _, ok := b.get("confluence", time.Now()); !ok {
		t.Fatal("with Redis down, the replica that saw the 429 does not hold back")
	}
}

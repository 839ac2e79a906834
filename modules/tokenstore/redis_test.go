package tokenstore_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/integration/redistest"
	redisstorage "github.com/atlasgate/atlasgate/modules/storage/redis"
	"github.com/atlasgate/atlasgate/modules/tokenstore"
)

// counting is a token endpoint that rotates refresh tokens and counts calls;
// a refresh with an old refresh token is an error (no reuse leeway), so a
// second refresh of the same generation shows.
type counting struct {
	mu    sync.Mutex
	rt    string
	n     int
	calls atomic.Int64
	now   func() time.Time
}

func (a *counting) refresh(_ context.Context, ts *tokenstore.TokenSet) (*tokenstore.TokenSet, error) {
	a.calls.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	if ts.RefreshToken != a.rt {
		return nil, &tokenstore.GrantError{Description: "Unknown or invalid refresh token."}
	}
	a.n++
	a.rt = fmt.Sprintf("rt-%d", a.n)
	return &tokenstore.TokenSet{AccessToken: fmt.Sprintf("at-%d", a.n), RefreshToken: a.rt, Expiry: a.now().Add(time.Hour), TokenType: "Bearer"}, nil
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// redisStore is one replica's token store on Redis, with its own client;
// the returned storage's Cleanup drops the client like a crash would (held
// locks are neither renewed nor released).
func redisStore(t *testing.T, addr string, replica int) (*tokenstore.Store, *redisstorage.Storage) {
	t.Helper()
	rs := &redisstorage.Storage{Addresses: []string{addr}, KeyPrefix: "tokens-test",
		LockLease: caddy.Duration(time.Second), Timeout: caddy.Duration(time.Duration(replica+1) * time.Second)}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := rs.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Cleanup(); cancel() })
	st, err := tokenstore.New(rs, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return st, rs
}

// Three replicas on one Redis, 500 concurrent requests at expiry spread over
// them: one token call, and every request gets the new token.
func TestRedisReplicasRefreshOnce(t *testing.T) {
	srv := redistest.Start(t)
	c := &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	auth := &counting{rt: "rt-0", now: c.Now}
	var replicas []*tokenstore.Manager
	for i := range 3 {
		st, _ := redisStore(t, srv.Addr, i)
		replicas = append(replicas, &tokenstore.Manager{Store: st, Name: "jira", Refresh: auth.refresh, Now: c.Now})
	}
	if err := replicas[0].Authorize(context.Background(), &tokenstore.TokenSet{AccessToken: "at-0", RefreshToken: "rt-0", Expiry: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c.Advance(61 * time.Minute)
	var wg sync.WaitGroup
	var failed atomic.Int64
	var tokens sync.Map
	for i := range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts, err := replicas[i%3].Token(context.Background())
			if err != nil {
				failed.Add(1)
				return
			}
			tokens.Store(ts.AccessToken, true)
		}()
	}
	wg.Wait()
	if failed.Load() != 0 || auth.calls.Load() != 1 {
		t.Fatalf("500 requests on 3 replicas: %d failed, %d token calls (want 0 and 1)", failed.Load(), auth.calls.Load())
	}
	tokens.Range(func(k, _ any) bool {
		if k != "at-1" {
			t.Errorf("a request got %v", k)
		}
		return true
	})
}

// The replica holding the refresh lock dies: another refreshes as soon as
// the lease (1 s) runs out — not after the lock wait's fallback, which is
// set to an hour here.
func TestRedisCrashedLockHolderFreesRefresh(t *testing.T) {
	srv := redistest.Start(t)
	c := &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	auth := &counting{rt: "rt-0", now: c.Now}
	dead, deadStorage := redisStore(t, srv.Addr, 0)
	live, _ := redisStore(t, srv.Addr, 1)
	m := &tokenstore.Manager{Store: live, Name: "jira", Refresh: auth.refresh, Now: c.Now}
	m.LockTimeout = time.Hour
	if err := m.Authorize(context.Background(), &tokenstore.TokenSet{AccessToken: "at-0", RefreshToken: "rt-0", Expiry: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := dead.Lock(context.Background(), "jira"); err != nil {
		t.Fatal(err)
	}
	_ = deadStorage.Cleanup() // the crash: the client goes, the lock stays until its lease ends

	c.Advance(61 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts, err := m.Token(ctx)
	if err != nil || ts.AccessToken != "at-1" || auth.calls.Load() != 1 {
		t.Fatalf("after the lock holder died: %v %v, %d token calls", ts, err, auth.calls.Load())
	}
}

// Redis goes away: a valid cached token keeps being served; once it has
// expired, callers get an error at once (the credential answers 503), not a
// hang; Redis back (with its data), the grant refreshes — nothing was lost.
func TestRedisRestartKeepsGrant(t *testing.T) {
	srv := redistest.Start(t)
	c := &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	auth := &counting{rt: "rt-0", now: c.Now}
	st, _ := redisStore(t, srv.Addr, 0)
	m := &tokenstore.Manager{Store: st, Name: "jira", Refresh: auth.refresh, Now: c.Now}
	ctx := context.Background()
	if err := m.Authorize(ctx, &tokenstore.TokenSet{AccessToken: "at-0", RefreshToken: "rt-0", Expiry: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ts, err := m.Token(ctx); err != nil || ts.AccessToken != "at-0" {
		t.Fatalf("before: %v %v", ts, err)
	}

	srv.Stop()
	c.Advance(40 * time.Minute) // past the recheck, still valid
	if ts, err := m.Token(ctx); err != nil || ts.AccessToken != "at-0" {
		t.Fatalf("Redis down, token valid: %v %v; want the cached token", ts, err)
	}
	c.Advance(21 * time.Minute) // expired
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if ts, err := m.Token(tctx); err == nil || tctx.Err() != nil {
		t.Fatalf("Redis down, token expired: %v %v; want an error before the deadline", ts, err)
	}
	if auth.calls.Load() != 0 {
		t.Fatalf("%d token calls while the grant could not be read or stored", auth.calls.Load())
	}

	srv.Restart()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ts, err := m.Token(ctx)
		if err == nil {
			if ts.AccessToken != "at-1" || auth.calls.Load() != 1 {
				t.Fatalf("after the restart: %v, %d token calls", ts.AccessToken, auth.calls.Load())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no token 20s after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // waiting for the client to reconnect
	}
}

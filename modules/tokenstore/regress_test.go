package tokenstore

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// Regression tests for the defects of issue 9: each failed on the token
// manager that came before the engine.

func setupFaulty(t *testing.T) (*Store, *faultyStorage, *authServer, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	fs := &faultyStorage{Storage: &certmagic.FileStorage{Path: t.TempDir()}}
	st, err := New(fs, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	srv := &authServer{now: c.Now, leeway: 10 * time.Minute, current: "rt-0", replaced: map[string]time.Time{}}
	m := newManager(st, srv, c)
	if err := m.Authorize(context.Background(), &TokenSet{AccessToken: "at-0", RefreshToken: "rt-0", Expiry: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return st, fs, srv, c
}

// eventually waits (in real time) for cond, which background work makes true.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Defect 1: a refreshed set that could not be stored is retried as a save;
// the older stored copy is never refreshed again, however long storage
// refuses writes, and the access token in memory keeps serving.
func TestFailedSaveIsRetriedNotRefreshedAgain(t *testing.T) {
	st, fs, srv, c := setupFaulty(t)
	m := newManager(st, srv, c)
	ctx := context.Background()
	c.Advance(56 * time.Minute) // inside the refresh window
	fs.set(func(f *faultyStorage) { f.storeErr = errVolumeFull })
	if _, err := m.Token(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refresh-ahead", func() bool { return srv.calls.Load() == 1 })
	eventually(t, "the refreshed set in memory", func() bool { ts := m.Cached(); return ts != nil && ts.AccessToken == "at-1" })
	// Storage refuses writes for longer than Atlassian's reuse leeway.
	for i := 0; i < 30; i++ {
		c.Advance(30 * time.Second)
		ts, err := m.Token(ctx)
		if err != nil || ts.AccessToken != "at-1" {
			t.Fatalf("after %v of refused writes: %v %v; want at-1 served from memory", time.Duration(i+1)*30*time.Second, ts, err)
		}
	}
	fs.set(func(f *faultyStorage) { f.storeErr = nil })
	c.Advance(30 * time.Second)
	m.Token(ctx)
	eventually(t, "the save to succeed", func() bool {
		stored, err := st.Load(ctx, "jira")
		return err == nil && stored.RefreshToken == "rt-1"
	})
	if srv.calls.Load() != 1 || srv.revoked {
		t.Fatalf("%d token calls, revoked=%v; want 1 call and a live grant", srv.calls.Load(), srv.revoked)
	}
	// The next refresh uses the saved token.
	c.Advance(time.Hour)
	if ts, err := newManager(st, srv, c).Token(ctx); err != nil || srv.revoked {
		t.Fatalf("next refresh: %v %v, revoked=%v", ts, err, srv.revoked)
	}
}

// Defect 4: an authorization while storage cannot be read does not restart
// the generations; a replica that remembers a higher one adopts the new grant.
func TestAuthorizeAfterLoadErrorIsAdopted(t *testing.T) {
	st, fs, srv, c := setupFaulty(t)
	ctx := context.Background()
	b := newManager(st, srv, c)
	for i := 0; i < 3; i++ { // b's grant reaches generation 4
		c.Advance(61 * time.Minute)
		if _, err := b.Token(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fs.set(func(f *faultyStorage) { f.loadErr = errUnreachable })
	a := newManager(st, srv, c)
	grant := &TokenSet{AccessToken: "at-new", RefreshToken: "rt-new", Expiry: c.Now().Add(time.Hour)}
	err := a.Authorize(ctx, grant)
	fs.set(func(f *faultyStorage) { f.loadErr = nil })
	if err != nil { // refusing is fine; then the person tries again
		if err := a.Authorize(ctx, grant); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(time.Minute)
	b.Token(ctx)
	eventually(t, "replica b to adopt the new grant", func() bool {
		ts, err := b.Token(ctx)
		return err == nil && ts.AccessToken == "at-new"
	})
}

// Defect 4: a grant deleted and authorized again is adopted by a replica
// that remembers a higher generation of the old grant.
func TestReauthorizedAfterDeleteIsAdopted(t *testing.T) {
	st, _, srv, c := setupFaulty(t)
	ctx := context.Background()
	b := newManager(st, srv, c)
	for i := 0; i < 3; i++ {
		c.Advance(61 * time.Minute)
		if _, err := b.Token(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete(ctx, "jira"); err != nil {
		t.Fatal(err)
	}
	a := newManager(st, srv, c)
	if err := a.Authorize(ctx, &TokenSet{AccessToken: "at-new", RefreshToken: "rt-new", Expiry: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	b.Token(ctx)
	eventually(t, "replica b to adopt the new grant", func() bool {
		ts, err := b.Token(ctx)
		return err == nil && ts.AccessToken == "at-new"
	})
}

// Defect 7: forced refreshes that work are not bounded; a grant whose access
// tokens the server revokes early keeps being served.
func TestSuccessfulForcedRefreshesAreNotBounded(t *testing.T) {
	st, srv, c := setup(t)
	m := newManager(st, srv, c)
	ctx := context.Background()
	for i := 0; i < 6; i++ {
		cur, err := m.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.Advance(5 * time.Second)
		ts, err := m.ForceRefresh(ctx, cur)
		if err != nil {
			t.Fatalf("forced refresh %d of a token the upstream revoked early: %v", i+1, err)
		}
		if ts.AccessToken == cur.AccessToken {
			t.Fatalf("forced refresh %d kept the refused token", i+1)
		}
	}
}

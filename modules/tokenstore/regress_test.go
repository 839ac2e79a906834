package tokenstore

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// Regression tests for the defects of issue 9: each failed on the token
// manager that came before the engine.

func setupFaulty(t *testing.T) (*Store, *faultyStorage, *authServer, *testClock) {
	t.Helper()
	c := &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
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
	m.SaveRetry = 5 * time.Millisecond
	ctx := context.Background()
	m.Token(ctx)
	c.Advance(56 * time.Minute) // inside the refresh window
	// The refresh intent is recorded, then the token set's save fails (and
	// keeps failing).
	fs.set(func(f *faultyStorage) { f.storeErr, f.storeOnly = errVolumeFull, "atlasgate/tokens/" })
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
		ts, err := m.Invalidate(ctx, cur)
		if err != nil {
			t.Fatalf("forced refresh %d of a token the upstream revoked early: %v", i+1, err)
		}
		if ts.AccessToken == cur.AccessToken {
			t.Fatalf("forced refresh %d kept the refused token", i+1)
		}
	}
}

// Defect 2: a process killed while its refresh was at the token endpoint
// leaves an intent; a survivor holding a still-valid token recovers it at
// once with the stored refresh token — inside Atlassian's reuse leeway — not
// an hour later at expiry, which would revoke the family.
func TestOrphanedRefreshIsRecoveredAtOnce(t *testing.T) {
	st, srv, c := setup(t)
	ctx := context.Background()
	survivor := newManager(st, srv, c)
	survivor.OrphanGrace = time.Millisecond
	if _, err := survivor.Token(ctx); err != nil {
		t.Fatal(err)
	}
	// The dead replica recorded its intent, and the server rotated rt-0;
	// the answer died with the process.
	if err := st.saveIntent(ctx, "jira", intent{Generation: 1, At: c.Now(), Owner: "dead-replica"}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.refresh(ctx, &TokenSet{RefreshToken: "rt-0"}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if ts, err := survivor.Token(ctx); err != nil || ts.AccessToken != "at-0" {
		t.Fatalf("survivor: %v %v; want its valid token at once", ts, err)
	}
	eventually(t, "the survivor to recover the refresh", func() bool {
		stored, err := st.Load(ctx, "jira")
		return err == nil && stored.Generation == 2
	})
	c.Advance(2 * time.Hour) // the next refreshes use the recovered token
	if _, err := survivor.Token(ctx); err != nil || srv.revoked {
		t.Fatalf("after recovery: %v, revoked=%v", err, srv.revoked)
	}
	if in, _, _ := st.loadIntent(ctx, "jira"); in != nil {
		t.Errorf("intent left behind: %+v", in)
	}
}

// Defect 3: requests inside the refresh window during a slow refresh neither
// wait nor start a goroutine each.
func TestSlowRefreshNeitherBlocksNorPilesUp(t *testing.T) {
	st, srv, c := setup(t)
	ctx := context.Background()
	release := make(chan struct{})
	var entered atomic.Int64
	m := newManager(st, srv, c)
	m.Refresh = func(ctx context.Context, ts *TokenSet) (*TokenSet, error) {
		entered.Add(1)
		<-release
		return srv.refresh(ctx, ts)
	}
	m.Token(ctx)
	c.Advance(57 * time.Minute)
	before := runtime.NumGoroutine()
	for i := 0; i < 5000; i++ {
		if ts, err := m.Token(ctx); err != nil || ts.AccessToken != "at-0" {
			t.Fatalf("request %d: %v %v", i, ts, err)
		}
	}
	eventually(t, "the background refresh to start", func() bool { return entered.Load() == 1 })
	if n := runtime.NumGoroutine() - before; n > 20 {
		t.Errorf("%d more goroutines during one slow refresh for 5,000 requests", n)
	}
	close(release)
	eventually(t, "the refresh to finish", func() bool { ts, _ := m.Token(ctx); return ts.AccessToken == "at-1" })
	if entered.Load() != 1 {
		t.Errorf("%d refreshes, want 1", entered.Load())
	}
}

// casStorage implements CompareAndSwapper the way a Redis backend would.
type casStorage struct {
	certmagic.Storage
	mu    sync.Mutex
	swaps int
}

func (s *casStorage) CompareAndSwap(ctx context.Context, key string, old, value []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.HasPrefix(key, "atlasgate/tokens/") {
		s.swaps++
	}
	cur, err := s.Storage.Load(ctx, key)
	if err != nil {
		cur = nil
	}
	if (cur == nil) != (old == nil) || !bytes.Equal(cur, old) {
		return false, nil
	}
	return true, s.Storage.Store(ctx, key, value)
}

// Saves compare and set on the exact bytes last read: through the storage's
// CompareAndSwap when it has one; a writer with a stale base loses.
func TestSavesCompareAndSwap(t *testing.T) {
	c := &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	cs := &casStorage{Storage: &certmagic.FileStorage{Path: t.TempDir()}}
	st, _ := New(cs, bytes.Repeat([]byte{7}, 32))
	srv := &authServer{now: c.Now, leeway: 10 * time.Minute, current: "rt-0", replaced: map[string]time.Time{}}
	ctx := context.Background()
	m := newManager(st, srv, c)
	if err := m.Authorize(ctx, &TokenSet{AccessToken: "at-0", RefreshToken: "rt-0", Expiry: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c.Advance(61 * time.Minute)
	if ts, err := m.Token(ctx); err != nil || ts.AccessToken != "at-1" {
		t.Fatalf("%v %v", ts, err)
	}
	if cs.swaps != 2 {
		t.Errorf("%d compare-and-swaps, want 2 (authorize, refresh)", cs.swaps)
	}
	_, raw, _ := st.read(ctx, "jira")
	if _, err := st.swap(ctx, "jira", raw, &TokenSet{AccessToken: "x", Generation: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.swap(ctx, "jira", raw, &TokenSet{AccessToken: "y", Generation: 3}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a write on a stale base: %v, want ErrConflict", err)
	}
	plain := &Store{storage: cs.Storage, aead: st.aead, keyID: st.keyID, prefix: st.prefix} // locks and re-reads instead
	if _, err := plain.swap(ctx, "jira", raw, &TokenSet{AccessToken: "z"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a write on a stale base without CompareAndSwap: %v, want ErrConflict", err)
	}
}

// Defect 5: with storage unreachable, a valid access token keeps being
// served; once it expires (or a refresh is forced) the error says storage,
// and no token is refreshed that could not be stored.
func TestStorageUnreachable(t *testing.T) {
	st, fs, srv, c := setupFaulty(t)
	ctx := context.Background()
	m := newManager(st, srv, c)
	cur, err := m.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fs.set(func(f *faultyStorage) {
		f.loadErr, f.storeErr, f.lockErr = errUnreachable, errUnreachable, errUnreachable
	})
	c.Advance(40 * time.Minute)
	if ts, err := m.Token(ctx); err != nil || ts.AccessToken != "at-0" {
		t.Fatalf("valid token while storage is down: %v %v", ts, err)
	}
	if _, err := m.Invalidate(ctx, cur); !errors.Is(err, ErrUnreadable) {
		t.Fatalf("forced refresh while storage is down: %v, want ErrUnreadable", err)
	}
	c.Advance(21 * time.Minute)
	if ts, err := m.Token(ctx); !errors.Is(err, ErrUnreadable) {
		t.Fatalf("expired token while storage is down: %+v %v, want ErrUnreadable", ts, err)
	}
	if srv.calls.Load() != 0 {
		t.Fatalf("%d token calls while storage was down, want 0", srv.calls.Load())
	}
	fs.set(func(f *faultyStorage) { f.loadErr, f.storeErr, f.lockErr = nil, nil, nil })
	c.Advance(2 * time.Minute) // past the back-off
	if ts, err := m.Token(ctx); err != nil || ts.AccessToken != "at-1" || srv.revoked {
		t.Fatalf("storage back: %v %v revoked=%v", ts, err, srv.revoked)
	}
}

// A slow storage and a lock that cannot be had (held by a dead peer) delay a
// refresh but neither lose it nor duplicate it.
func TestSlowStorageAndDeadLockHolder(t *testing.T) {
	st, fs, srv, c := setupFaulty(t)
	ctx := context.Background()
	m := newManager(st, srv, c)
	m.LockTimeout = 50 * time.Millisecond
	fs.set(func(f *faultyStorage) { f.slow, f.lockErr = 5*time.Millisecond, errors.New("lock held by a dead peer") })
	c.Advance(61 * time.Minute)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ts, err := m.Token(ctx); err != nil || ts.AccessToken != "at-1" {
				t.Errorf("%v %v", ts, err)
			}
		}()
	}
	wg.Wait()
	stored, err := st.Load(ctx, "jira")
	if err != nil || stored.RefreshToken != "rt-1" || srv.calls.Load() != 1 {
		t.Fatalf("stored %v %v after %d token calls", stored, err, srv.calls.Load())
	}
}

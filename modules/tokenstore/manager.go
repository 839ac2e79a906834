package tokenstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// RefreshFunc exchanges ts.RefreshToken at the authorization server. It
// returns a *GrantError when the server rejects the grant (invalid_grant) and
// any other error for failures that may pass (network, 5xx). The returned set
// needs only the token fields; the Manager carries the rest over.
type RefreshFunc func(ctx context.Context, ts *TokenSet) (*TokenSet, error)

// GrantError is the authorization server's invalid_grant: the refresh token is
// dead (revoked, expired, or reused after rotation).
type GrantError struct{ Description string }

func (e *GrantError) Error() string { return "invalid_grant: " + e.Description }

// ReauthError means the grant is gone: a person must authorize again.
type ReauthError struct{ Reason string }

func (e *ReauthError) Error() string { return "needs reauthorization: " + e.Reason }

// ErrUnauthorized means no one has authorized the credential yet.
var ErrUnauthorized = errors.New("not authorized yet")

// Manager hands out usable access tokens for one stored grant and refreshes
// them with this protocol, safe across goroutines and replicas:
//
//  1. in process, one refresh at a time (single-flight);
//  2. take the storage lock;
//  3. re-read storage: if another replica stored a newer generation that is
//     usable, adopt it and stop;
//  4. refresh; keep the old refresh token when the response has none;
//  5. store the new set with the next generation before unlocking.
//
// On invalid_grant it re-reads storage first — a newer generation means it
// lost a race, not that the grant is dead — and only then records
// needs_reauthorization and stops refreshing. A crash between 4 and 5 leaves
// the previous refresh token in storage, which Atlassian still accepts within
// its reuse leeway; the next start refreshes with it at once.
type Manager struct {
	Store   *Store
	Name    string
	Refresh RefreshFunc
	// Skew: refresh when the access token has less than this left. Default 5m.
	Skew time.Duration
	// Recheck: re-read storage when the cached set was read longer ago than
	// this, so a refresh by another replica is seen well within Atlassian's
	// 10-minute reuse leeway. Default 30s.
	Recheck time.Duration
	// LockTimeout bounds the wait for the storage lock, after which the
	// refresh goes on without it. Default 20s (a live holder refreshes in
	// well under that; certmagic file locks go stale after 10s).
	LockTimeout time.Duration
	Now         func() time.Time
	Logger      *zap.Logger

	mu       sync.Mutex
	cur      *TokenSet
	checked  time.Time
	failedAt time.Time // last refresh that failed for a passing reason
	failErr  error
	forced   []time.Time // recent forced refreshes
	sf       singleflight.Group
}

// maxForcedPerMinute bounds refreshes forced by upstream 401s: a token
// refused for a reason a refresh cannot fix (a missing scope) must not make
// every request call the token endpoint.
const maxForcedPerMinute = 3

// ErrTooManyForced means a forced refresh was refused by that bound.
var ErrTooManyForced = errors.New("too many forced refreshes in the last minute: the upstream refuses fresh tokens too")

func (m *Manager) allowForced() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.now()
	recent := m.forced[:0]
	for _, f := range m.forced {
		if t.Sub(f) < time.Minute {
			recent = append(recent, f)
		}
	}
	m.forced = recent
	if len(m.forced) >= maxForcedPerMinute {
		return false
	}
	m.forced = append(m.forced, t)
	return true
}

// retryAfterFailure spaces refresh attempts after one failed for a passing
// reason (network, 5xx), so that an unreachable authorization server is not
// called by every request.
const retryAfterFailure = 5 * time.Second

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) skew() time.Duration {
	if m.Skew > 0 {
		return m.Skew
	}
	return 5 * time.Minute
}

func (m *Manager) logger() *zap.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return zap.NewNop()
}

// usable reports whether ts can be sent now.
func (m *Manager) usable(ts *TokenSet) bool {
	return ts != nil && ts.State == StateReady && ts.AccessToken != "" && m.now().Add(m.skew()).Before(ts.Expiry)
}

// Cached returns the in-memory copy, which may be stale; for status displays.
func (m *Manager) Cached() *TokenSet {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

func (m *Manager) adopt(ts *TokenSet) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil || ts == nil || ts.Generation >= m.cur.Generation {
		m.cur = ts
	}
	m.checked = m.now()
}

// Token returns a token set whose access token is usable now, refreshing it if
// needed.
func (m *Manager) Token(ctx context.Context) (*TokenSet, error) {
	m.mu.Lock()
	cur, checked := m.cur, m.checked
	m.mu.Unlock()
	recheck := m.Recheck
	if recheck <= 0 {
		recheck = 30 * time.Second
	}
	if m.usable(cur) && m.now().Sub(checked) < recheck {
		return cur, nil
	}
	if cur != nil && cur.State == StateReady && m.now().Before(cur.Expiry) && m.now().Sub(checked) < recheck {
		// Inside the refresh window but still valid: refresh in the
		// background; no request waits for it.
		go m.do(context.WithoutCancel(ctx), "token", 0)
		return cur, nil
	}
	ts, err := m.do(ctx, "token", 0)
	var re *ReauthError
	if err != nil && !errors.Is(err, ErrUnauthorized) && !errors.As(err, &re) &&
		cur != nil && cur.State == StateReady && m.now().Before(cur.Expiry) {
		// A refresh that failed for now (network, 5xx) must not fail requests
		// while the current access token is still valid.
		return cur, nil
	}
	return ts, err
}

// ForceRefresh is for an access token the upstream rejected (401): it
// refreshes unless storage already holds a newer generation than seen.
func (m *Manager) ForceRefresh(ctx context.Context, seen *TokenSet) (*TokenSet, error) {
	return m.do(ctx, fmt.Sprintf("force-%d", seen.Generation), seen.Generation+1)
}

// do runs sync single-flight. minGen > 0 demands a set of at least that
// generation (a forced refresh).
func (m *Manager) do(ctx context.Context, key string, minGen uint64) (*TokenSet, error) {
	v, err, _ := m.sf.Do(key, func() (any, error) {
		// The refresh serves every waiting caller; it must not die with the
		// caller that started it.
		return m.sync(context.WithoutCancel(ctx), minGen)
	})
	if err != nil {
		return nil, err
	}
	return v.(*TokenSet), nil
}

func (m *Manager) good(ts *TokenSet, minGen uint64) bool {
	return m.usable(ts) && ts.Generation >= minGen
}

func (m *Manager) sync(ctx context.Context, minGen uint64) (*TokenSet, error) {
	ts, err := m.Store.Load(ctx, m.Name)
	switch {
	case errors.Is(err, ErrNotFound):
		m.adopt(nil)
		return nil, ErrUnauthorized
	case err != nil:
		return nil, err
	}
	m.adopt(ts)
	if ts.State == StateNeedsReauthorization {
		return nil, &ReauthError{Reason: ts.Reason}
	}
	if m.good(ts, minGen) {
		return ts, nil
	}
	m.mu.Lock()
	failedAt, failErr := m.failedAt, m.failErr
	m.mu.Unlock()
	if failErr != nil && m.now().Sub(failedAt) < retryAfterFailure {
		return nil, failErr
	}

	lockCtx, cancel := context.WithTimeout(ctx, m.lockTimeout())
	defer cancel()
	if err := m.Store.Lock(lockCtx, m.Name); err != nil {
		// A lock that is never released (a replica killed while certmagic's
		// file storage kept its lock file fresh) must not stop refreshing
		// for good. Going on without it is safe: storage is re-read just
		// below, and a concurrent refresh by another replica is a reuse
		// within Atlassian's 10-minute leeway, which yields a valid pair.
		m.logger().Warn("refresh lock not obtained; refreshing without it",
			zap.String("credential", m.Name), zap.Duration("waited", m.lockTimeout()), zap.Error(err))
	} else {
		defer func() {
			if err := m.Store.Unlock(context.WithoutCancel(ctx), m.Name); err != nil {
				m.logger().Error("releasing the refresh lock", zap.String("credential", m.Name), zap.Error(err))
			}
		}()
	}

	// Under the lock, storage is the truth: another replica may have
	// refreshed while we waited.
	if ts, err = m.Store.Load(ctx, m.Name); err != nil {
		return nil, err
	}
	m.adopt(ts)
	if ts.State == StateNeedsReauthorization {
		return nil, &ReauthError{Reason: ts.Reason}
	}
	if m.good(ts, minGen) {
		return ts, nil
	}
	if ts.RefreshToken == "" {
		return nil, m.markDead(ctx, ts, "the access token expired and the grant has no refresh token (was offline_access granted?)")
	}

	if minGen > 0 && m.usable(ts) && !m.allowForced() {
		return nil, ErrTooManyForced
	}
	fresh, err := m.Refresh(ctx, ts)
	var ge *GrantError
	if errors.As(err, &ge) {
		// A newer stored generation means we lost a race (a lock that expired,
		// a replica without locks): the grant is alive.
		if latest, lerr := m.Store.Load(ctx, m.Name); lerr == nil && latest.Generation > ts.Generation {
			m.adopt(latest)
			if m.good(latest, minGen) {
				return latest, nil
			}
		}
		return nil, m.markDead(ctx, ts, "the authorization server rejected the refresh token ("+ge.Description+")")
	}
	if err != nil {
		m.logger().Warn("token refresh failed; will retry", zap.String("credential", m.Name), zap.Error(err))
		err = fmt.Errorf("refreshing: %w", err)
		m.mu.Lock()
		m.failedAt, m.failErr = m.now(), err
		m.mu.Unlock()
		return nil, err
	}
	m.mu.Lock()
	m.failErr = nil
	m.mu.Unlock()

	next := *ts
	next.AccessToken, next.Expiry = fresh.AccessToken, fresh.Expiry
	if fresh.TokenType != "" {
		next.TokenType = fresh.TokenType
	}
	if fresh.RefreshToken != "" {
		next.RefreshToken = fresh.RefreshToken
	} // else: keep the previous one, as Atlassian expects
	if len(fresh.Scopes) > 0 {
		next.Scopes = fresh.Scopes
	}
	next.RefreshedAt = m.now()
	next.Generation = ts.Generation + 1
	next.State, next.Reason = StateReady, ""
	if err := m.save(ctx, &next); err != nil {
		// The new refresh token exists only in memory now. Keep serving it
		// and say so loudly; storage still holds the previous one, which
		// stays valid through the reuse leeway.
		m.logger().Error("storing refreshed token set failed; serving it from memory", zap.String("credential", m.Name), zap.Error(err))
	}
	m.adopt(&next)
	m.logger().Info("token refreshed", zap.String("credential", m.Name), zap.Uint64("generation", next.Generation), zap.Time("expiry", next.Expiry))
	return &next, nil
}

func (m *Manager) lockTimeout() time.Duration {
	if m.LockTimeout > 0 {
		return m.LockTimeout
	}
	return 20 * time.Second
}

// save stores ts, retrying briefly: losing a rotated refresh token is the one
// thing that must not happen.
func (m *Manager) save(ctx context.Context, ts *TokenSet) error {
	var err error
	for i := 0; i < 3; i++ {
		if err = m.Store.Save(ctx, m.Name, ts); err == nil {
			return nil
		}
		time.Sleep(time.Duration(i+1) * 100 * time.Millisecond)
	}
	return err
}

func (m *Manager) markDead(ctx context.Context, ts *TokenSet, reason string) error {
	dead := *ts
	dead.State, dead.Reason = StateNeedsReauthorization, reason
	dead.Generation = ts.Generation + 1
	if err := m.save(ctx, &dead); err != nil {
		m.logger().Error("storing needs_reauthorization failed", zap.String("credential", m.Name), zap.Error(err))
	}
	m.adopt(&dead)
	m.logger().Error("credential needs reauthorization", zap.String("credential", m.Name), zap.String("reason", reason))
	return &ReauthError{Reason: reason}
}

// Authorize stores a freshly granted token set (from the authorization-code
// callback) as the next generation.
func (m *Manager) Authorize(ctx context.Context, ts *TokenSet) error {
	lockCtx, cancel := context.WithTimeout(ctx, m.lockTimeout())
	defer cancel()
	if err := m.Store.Lock(lockCtx, m.Name); err != nil {
		return fmt.Errorf("taking the refresh lock: %w", err)
	}
	defer m.Store.Unlock(context.WithoutCancel(ctx), m.Name)
	var gen uint64
	if old, err := m.Store.Load(ctx, m.Name); err == nil {
		gen = old.Generation
	}
	next := *ts
	next.Generation = gen + 1
	next.State, next.Reason = StateReady, ""
	if next.GrantedAt.IsZero() {
		next.GrantedAt = m.now()
	}
	if next.RefreshedAt.IsZero() {
		next.RefreshedAt = next.GrantedAt
	}
	if err := m.Store.Save(ctx, m.Name, &next); err != nil {
		return err
	}
	m.adopt(&next)
	return nil
}

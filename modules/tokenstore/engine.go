package tokenstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/atlasgate/atlasgate/internal/clock"
)

// Source hands out access tokens, in the spirit of x/oauth2.TokenSource.
// Credentials use nothing else of the engine on the request path.
type Source interface {
	// Token returns a set whose access token may be sent now.
	Token(ctx context.Context) (*TokenSet, error)
	// Invalidate is for an access token the upstream refused (401): it
	// returns a newer set than seen, refreshing if no newer one exists.
	Invalidate(ctx context.Context, seen *TokenSet) (*TokenSet, error)
}

// Backend is where an Engine's token sets come from and where they are kept:
// storage with encryption, generations, locks and intents for 3LO grants
// (StoredBackend), nothing but a token request for client credentials
// (MemoryBackend).
type Backend interface {
	// Read returns the stored set without locking; nil, false, nil when the
	// backend keeps nothing. orphan reports a refresh another process began
	// and never finished (it died at the token endpoint).
	Read(ctx context.Context) (ts *TokenSet, orphan bool, err error)
	// Renew returns a set for which stale is false — one another replica
	// stored, or a refreshed one — and recovers an orphaned refresh. saved is
	// false when a refreshed set could not be stored: the Engine then holds
	// the only copy of its refresh token and calls Save until it is stored.
	// With a *ReauthError it returns the dead set.
	Renew(ctx context.Context, cur *TokenSet, stale func(*TokenSet) bool) (ts *TokenSet, saved bool, err error)
	// Save stores a set that Renew could not; ErrConflict when storage holds
	// another set by now.
	Save(ctx context.Context, ts *TokenSet) error
}

// ErrConflict means storage no longer holds the set a write was based on:
// another replica or an authorization wrote in between.
var ErrConflict = errors.New("the stored token set changed")

// ErrTooManyForced means a forced refresh was refused: the refreshed tokens
// were refused too, so the cause is one a refresh cannot fix (a missing
// scope, a removed permission).
var ErrTooManyForced = errors.New("forced refresh refused: the upstream refused the last freshly refreshed tokens too")

// Engine timings.
const (
	// maxFutilePerMinute bounds forced refreshes whose replay was refused
	// again.
	maxFutilePerMinute = 3
	// retryAfterFailure is the first back-off after a failed refresh; it
	// doubles up to maxBackoff, which stays well inside Atlassian's
	// 10-minute reuse leeway: a refresh whose answer was lost is retried
	// with the same refresh token while that is still accepted.
	retryAfterFailure = 5 * time.Second
	maxBackoff        = 2 * time.Minute
	// negativeTTL is how long "no grant" or "grant dead" is believed
	// without reading storage again.
	negativeTTL = 5 * time.Second
)

// Engine is the one token engine: every OAuth credential gets its tokens from
// one. It owns, whatever the backend:
//
//   - single flight: one refresh at a time, whatever the number of callers;
//   - refresh-ahead in ONE background goroutine per engine, started on
//     demand and gone when idle; no request waits while a valid access token
//     exists;
//   - back-off after failed refreshes;
//   - a bound on futile forced refreshes (the replay was refused again);
//   - a set that could not be stored: it stays the authority in memory, is
//     retried as a save, and is never replaced by refreshing an older stored
//     copy;
//   - states: unauthorized, ready, needs_reauthorization (with a reason).
type Engine struct {
	Name    string
	Backend Backend
	// Skew: refresh when less than this is left of the access token (at
	// most half its lifetime). Default 5m.
	Skew time.Duration
	// Recheck: re-read the backend (in the background) when the last read
	// is older than this, so a refresh by another replica is seen well
	// within Atlassian's reuse leeway. Default 30s.
	Recheck time.Duration
	// SaveRetry spaces the retries of a save that failed. Default 2s.
	SaveRetry time.Duration
	// Context ends the background goroutine. Default: never.
	Context context.Context
	Now     func() time.Time
	Logger  *zap.Logger

	mu       sync.Mutex
	cur      *TokenSet
	curErr   error // ErrUnauthorized or *ReauthError: the answer while no token is usable
	checked  time.Time
	pending  bool // cur could not be stored
	orphan   bool // the backend reported an unfinished refresh
	failErr  error
	failedAt time.Time
	failures int
	futile   []time.Time // replays refused after forced refreshes

	sf       singleflight.Group
	running  atomic.Bool
	refused  atomic.Int64 // forced refreshes refused by the futile bound
	recovers atomic.Int64
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return clock.Now()
}

func (e *Engine) logger() *zap.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return zap.NewNop()
}

func (e *Engine) life() context.Context {
	if e.Context != nil {
		return e.Context
	}
	return context.Background()
}

func orDur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// valid: the access token may be sent now.
func (e *Engine) valid(ts *TokenSet, now time.Time) bool {
	return ts != nil && ts.State == StateReady && ts.AccessToken != "" && now.Before(ts.Expiry)
}

// due: valid but inside the refresh-ahead window.
func (e *Engine) due(ts *TokenSet, now time.Time) bool {
	skew := orDur(e.Skew, 5*time.Minute)
	if !ts.RefreshedAt.IsZero() && ts.Expiry.After(ts.RefreshedAt) {
		skew = min(skew, ts.Expiry.Sub(ts.RefreshedAt)/2)
	}
	return !now.Add(skew).Before(ts.Expiry)
}

// newer reports whether ts should replace than: a later grant (an
// authorization again, after a deletion or a dead grant) or a later
// generation of the same grant.
func newer(ts, than *TokenSet) bool {
	if than == nil {
		return true
	}
	if !ts.GrantedAt.Equal(than.GrantedAt) {
		return ts.GrantedAt.After(than.GrantedAt)
	}
	return ts.Generation > than.Generation
}

// Cached returns the in-memory set, which may be stale; for status displays.
func (e *Engine) Cached() *TokenSet {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur
}

// Unsaved reports whether the engine holds a set that storage does not: it
// must not be dropped (e.g. evicted) until saved.
func (e *Engine) Unsaved() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pending
}

// Refused counts the forced refreshes the futile bound refused.
func (e *Engine) Refused() int64 { return e.refused.Load() }

// Token implements Source.
func (e *Engine) Token(ctx context.Context) (*TokenSet, error) {
	now := e.now()
	e.mu.Lock()
	cur, curErr, checked, pending, orphan := e.cur, e.curErr, e.checked, e.pending, e.orphan
	e.mu.Unlock()
	if e.valid(cur, now) {
		stale := e.Recheck >= 0 && now.Sub(checked) >= orDur(e.Recheck, 30*time.Second)
		if stale || pending || orphan || e.due(cur, now) {
			e.kick() // no request waits while the token is valid
		}
		return cur, nil
	}
	if curErr != nil && !pending && now.Sub(checked) < negativeTTL {
		return nil, curErr
	}
	return e.renew(ctx, 0)
}

// Invalidate implements Source.
func (e *Engine) Invalidate(ctx context.Context, seen *TokenSet) (*TokenSet, error) {
	now := e.now()
	e.mu.Lock()
	if cur := e.cur; e.valid(cur, now) && cur.AccessToken != seen.AccessToken && newer(cur, seen) {
		e.mu.Unlock()
		return cur, nil // refreshed already
	}
	recent := e.futile[:0]
	for _, t := range e.futile {
		if now.Sub(t) < time.Minute {
			recent = append(recent, t)
		}
	}
	e.futile = recent
	bounded := len(recent) >= maxFutilePerMinute
	e.mu.Unlock()
	if bounded {
		e.refused.Add(1)
		e.logger().Warn("forced refresh refused: the last refreshed tokens were refused too",
			zap.String("credential", e.Name), zap.Int("futile_last_minute", len(recent)), zap.Int64("refused_total", e.refused.Load()))
		return nil, ErrTooManyForced
	}
	return e.renew(ctx, seen.Generation+1)
}

// ReplayRefused records that a request replayed with a set from Invalidate
// was refused again: a futile forced refresh.
func (e *Engine) ReplayRefused() {
	e.mu.Lock()
	e.futile = append(e.futile, e.now())
	e.mu.Unlock()
}

// Maintain re-reads the backend, recovers an orphaned refresh, retries an
// unsaved set, and refreshes a grant not refreshed for keepAlive (0: never),
// so that an idle grant stays inside Atlassian's inactivity limit.
func (e *Engine) Maintain(ctx context.Context, keepAlive time.Duration) error {
	ts, err := e.renew(ctx, 0)
	if err != nil {
		var re *ReauthError
		if errors.Is(err, ErrUnauthorized) || errors.As(err, &re) {
			return nil
		}
		return err
	}
	if keepAlive > 0 && e.now().Sub(ts.RefreshedAt) >= keepAlive {
		_, err = e.renew(ctx, ts.Generation+1)
	}
	return err
}

// renew waits for the single flight (or ctx).
func (e *Engine) renew(ctx context.Context, minGen uint64) (*TokenSet, error) {
	key := "renew"
	if minGen > 0 {
		key = "force"
	}
	// The flight serves every waiting caller: it runs on the engine's own
	// context, not on the caller's, which may hang up.
	for attempt := 0; ; attempt++ {
		ch := e.sf.DoChan(key, func() (any, error) { return e.sync(context.WithoutCancel(e.life()), minGen) })
		select {
		case r := <-ch:
			if r.Err != nil {
				return nil, r.Err
			}
			// A flight that began before the caller's time may answer with a
			// token valid then, expired now: one more flight decides.
			ts := r.Val.(*TokenSet)
			if e.valid(ts, e.now()) || attempt > 0 {
				return ts, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// kick starts the background goroutine unless it runs already.
func (e *Engine) kick() {
	if e.running.CompareAndSwap(false, true) {
		go e.work()
	}
}

// work refreshes ahead, re-reads, recovers and retries saves, then ends when
// nothing is left to do. An unsaved set is retried even after the engine's
// context ended (a config reload): it holds the only copy of its refresh
// token.
func (e *Engine) work() {
	defer e.running.Store(false)
	for {
		_, _ = e.renew(context.Background(), 0)
		e.mu.Lock()
		again := e.pending
		e.mu.Unlock()
		if !again {
			return
		}
		t := time.NewTimer(orDur(e.SaveRetry, 2*time.Second))
		<-t.C
	}
}

// adopt makes ts the current set when it is newer (or unconditionally).
func (e *Engine) adopt(ts *TokenSet, force bool) {
	if ts == nil {
		return
	}
	if force || newer(ts, e.cur) {
		e.cur = ts
		e.pending = false
	}
}

// good: usable now, not due, and at least minGen.
func (e *Engine) good(ts *TokenSet, now time.Time, minGen uint64) bool {
	return e.valid(ts, now) && !e.due(ts, now) && ts.Generation >= minGen
}

// sync is the flight: save a pending set, honour the back-off, re-read, and
// renew through the backend when needed.
func (e *Engine) sync(ctx context.Context, minGen uint64) (*TokenSet, error) {
	now := e.now()
	e.mu.Lock()
	cur, pending := e.cur, e.pending
	e.mu.Unlock()

	if pending {
		// The refreshed set exists only here: store it before anything
		// else, and never refresh again from the older stored copy.
		err := e.Backend.Save(ctx, cur)
		e.mu.Lock()
		switch {
		case err == nil:
			e.pending = false
			e.logger().Info("unsaved token set stored", zap.String("credential", e.Name), zap.Uint64("generation", cur.Generation))
		case errors.Is(err, ErrConflict):
			// Another replica stored a set (it recovered our refresh, or
			// someone authorized again): storage is the truth again.
			e.pending, e.cur = false, nil
			e.logger().Warn("unsaved token set superseded by a stored one", zap.String("credential", e.Name))
		default:
			e.mu.Unlock()
			e.logger().Error("storing the refreshed token set failed; serving it from memory and retrying",
				zap.String("credential", e.Name), zap.Error(err))
			if e.valid(cur, now) {
				return cur, nil
			}
			return nil, err
		}
		e.mu.Unlock()
		if err == nil && e.good(cur, now, minGen) {
			return cur, nil
		}
	}

	stored, orphan, err := e.Backend.Read(ctx)
	e.mu.Lock()
	switch {
	case errors.Is(err, ErrNotFound):
		e.cur, e.curErr, e.checked, e.orphan = nil, ErrUnauthorized, now, false
		e.mu.Unlock()
		return nil, ErrUnauthorized
	case err != nil:
		cur = e.cur
		e.mu.Unlock()
		if e.valid(cur, now) && cur.Generation >= minGen {
			return cur, nil // storage is down; the token in memory still works
		}
		return nil, err
	}
	e.adopt(stored, false)
	e.checked, e.orphan = now, orphan
	cur = e.cur
	if cur != nil && cur.State == StateNeedsReauthorization {
		e.curErr = &ReauthError{Reason: cur.Reason}
		e.mu.Unlock()
		return nil, e.curErr
	}
	if !orphan && e.good(cur, now, minGen) {
		e.curErr = nil
		e.mu.Unlock()
		return cur, nil
	}
	if e.failErr != nil && now.Sub(e.failedAt) < e.backoff() {
		failErr := e.failErr
		e.mu.Unlock()
		if e.valid(cur, now) && cur.Generation >= minGen {
			return cur, nil
		}
		return nil, failErr
	}
	e.mu.Unlock()

	next, saved, err := e.Backend.Renew(ctx, cur, func(ts *TokenSet) bool { return !e.good(ts, e.now(), minGen) })
	e.mu.Lock()
	defer e.mu.Unlock()
	var re *ReauthError
	switch {
	case errors.As(err, &re):
		e.adopt(next, true)
		e.curErr, e.checked, e.failErr = re, e.now(), nil
		return nil, err
	case errors.Is(err, ErrUnauthorized):
		e.cur, e.curErr, e.checked = nil, err, e.now()
		return nil, err
	case err != nil:
		e.failures++
		e.failErr, e.failedAt = err, e.now()
		e.logger().Warn("token refresh failed; will retry", zap.String("credential", e.Name),
			zap.Duration("retry_in", e.backoff()), zap.Error(err))
		if e.valid(e.cur, now) && e.cur.Generation >= minGen {
			return e.cur, nil
		}
		return nil, err
	}
	e.failures, e.failErr, e.curErr, e.orphan = 0, nil, nil, false
	e.adopt(next, true)
	e.checked = e.now()
	if !saved {
		e.pending = true
		e.logger().Error("storing refreshed token set failed; serving it from memory and retrying the save",
			zap.String("credential", e.Name), zap.Uint64("generation", next.Generation))
		e.kick()
	}
	return next, nil
}

// backoff is the wait after the last failure (mu held).
func (e *Engine) backoff() time.Duration {
	d := retryAfterFailure
	for i := 1; i < e.failures && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// Authorize makes a freshly granted set (stored by the backend's own
// Authorize) the current one.
func (e *Engine) Authorized(ts *TokenSet) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.adopt(ts, true)
	e.curErr, e.failErr, e.failures, e.checked = nil, nil, 0, e.now()
}

var _ Source = (*Engine)(nil)

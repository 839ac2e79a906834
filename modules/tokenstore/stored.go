package tokenstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/internal/clock"
)

// RefreshFunc exchanges ts.RefreshToken at the authorization server. It
// returns a *GrantError when the server rejects the grant (invalid_grant) and
// any other error for failures that may pass (network, 5xx). The returned set
// needs only the token fields; the backend carries the rest over.
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

// errPeerRefreshing: another replica is refreshing right now (its intent is
// fresh) and its lock could not be had; its result is read soon.
var errPeerRefreshing = errors.New("another replica is refreshing the token set")

// newInstance identifies a backend in intents: a restarted process (or a
// re-created engine) is another instance and recovers what an earlier one
// left unfinished.
func newInstance() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// StoredBackend keeps one grant encrypted in Caddy storage and refreshes it
// with this protocol, safe across goroutines, replicas and crashes:
//
//  1. take the storage lock (best effort: after LockTimeout, go on without);
//  2. re-read the set and the intent: a usable newer set is adopted;
//  3. an intent on the stored generation left by another process is an
//     orphan (its writer died at the token endpoint): claim it, give a live
//     writer whose save failed OrphanGrace to store its set, then refresh
//     with the stored token at once — Atlassian accepts it for 10 minutes
//     after a rotation;
//  4. record the intent (generation, time, instance) — no refresh token is
//     sent when that write fails: nothing must rotate that cannot be stored;
//  5. refresh; keep the old refresh token when the response has none;
//  6. compare-and-set the next generation on the exact bytes read in 2, then
//     remove the intent. A failed save returns the set unsaved: the Engine
//     serves it from memory and retries it with Save.
//
// On invalid_grant it re-reads first — a newer set means a lost race, not a
// dead grant — and only then records needs_reauthorization, also by
// compare-and-set.
type StoredBackend struct {
	Store   *Store
	Name    string
	Refresh RefreshFunc
	// LockTimeout bounds the wait for the storage lock. Default 20s (a live
	// holder refreshes in well under that; certmagic file locks of a dead
	// holder go stale after 10s).
	LockTimeout time.Duration
	// OrphanAfter is how long an unsaved intent must be left alone (not
	// renewed by its owner) to count as orphaned. Default twice LockTimeout:
	// the owner renews it on every save retry, which may wait LockTimeout
	// for the lock. A refresh intent is orphaned under the lock at once,
	// without it after LockTimeout.
	OrphanAfter time.Duration
	// OrphanGrace is how long a claimed orphan waits for a live writer's
	// save before refreshing. Default 10s.
	OrphanGrace time.Duration
	Now         func() time.Time
	Logger      *zap.Logger

	once     sync.Once
	instance string
	mu       sync.Mutex
	base     []byte // stored bytes an unsaved set replaces; nil when none is unsaved
	// (base of an unsaved set over no stored set cannot happen: a grant is
	// stored by Authorize before it is ever refreshed)
}

func (b *StoredBackend) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return clock.Now()
}

func (b *StoredBackend) logger() *zap.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return zap.NewNop()
}

func (b *StoredBackend) id() string {
	b.once.Do(func() { b.instance = newInstance() })
	return b.instance
}

func (b *StoredBackend) unsaved() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.base != nil
}

// orphaned decides whether in is an unfinished refresh of ts. Under the
// lock, another owner's refresh intent is orphaned at once: a live refresher
// would hold the lock. An owner whose save keeps failing does not hold the
// lock between retries; it marks its intent unsaved and renews it with every
// retry, and only an intent left alone for OrphanAfter is orphaned.
func (b *StoredBackend) orphaned(in *intent, ts *TokenSet, locked bool) bool {
	if in == nil || ts == nil || in.Generation != ts.Generation || ts.State != StateReady {
		return false
	}
	if in.Owner == b.id() {
		return !b.unsaved() // our own: orphaned unless our save is pending
	}
	age, lockTimeout := b.now().Sub(in.At), orDur(b.LockTimeout, 20*time.Second)
	if !in.Unsaved {
		// A live refresher finishes within the lock timeout (its token call
		// times out sooner).
		return locked || age >= lockTimeout
	}
	return age >= orDur(b.OrphanAfter, 2*lockTimeout)
}

// Read implements Backend.
func (b *StoredBackend) Read(ctx context.Context) (*TokenSet, bool, error) {
	ts, _, err := b.Store.read(ctx, b.Name)
	if err != nil {
		return nil, false, err
	}
	in, _, err := b.Store.loadIntent(ctx, b.Name)
	return ts, err == nil && b.orphaned(in, ts, false), nil
}

func (b *StoredBackend) lock(ctx context.Context) (unlock func(), locked bool) {
	lockCtx, cancel := context.WithTimeout(ctx, orDur(b.LockTimeout, 20*time.Second))
	defer cancel()
	if err := b.Store.Lock(lockCtx, b.Name); err != nil {
		// A lock that is never released (a replica killed while certmagic's
		// file storage kept its lock file fresh) must not stop refreshing
		// for good; the re-read, the intent and compare-and-set catch
		// what the lock would have.
		b.logger().Warn("refresh lock not obtained; going on without it",
			zap.String("credential", b.Name), zap.Error(err))
		return func() {}, false
	}
	return func() {
		if err := b.Store.Unlock(context.WithoutCancel(ctx), b.Name); err != nil {
			b.logger().Error("releasing the refresh lock", zap.String("credential", b.Name), zap.Error(err))
		}
	}, true
}

// Renew implements Backend.
func (b *StoredBackend) Renew(ctx context.Context, _ *TokenSet, stale func(*TokenSet) bool) (*TokenSet, bool, error) {
	unlock, locked := b.lock(ctx)
	defer unlock()
	ts, raw, err := b.Store.read(ctx, b.Name)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, false, ErrUnauthorized
	case err != nil:
		return nil, false, err
	case ts.State == StateNeedsReauthorization:
		return ts, false, &ReauthError{Reason: ts.Reason}
	}
	in, inRaw, err := b.Store.loadIntent(ctx, b.Name)
	if err != nil {
		return nil, false, fmt.Errorf("reading the refresh intent of %q: %w", b.Name, err)
	}
	orphan := b.orphaned(in, ts, locked)
	if !orphan && !stale(ts) {
		return ts, true, nil // another replica refreshed while we waited
	}
	if !orphan && in != nil && in.Generation == ts.Generation && in.Owner != b.id() {
		return nil, false, errPeerRefreshing
	}
	if ts.RefreshToken == "" {
		return b.markDead(ctx, ts, raw, "the access token expired and the grant has no refresh token (was offline_access granted?)")
	}
	if orphan && !(in.Owner == b.id() && in.Claim) {
		b.logger().Warn("recovering a refresh another process left unfinished",
			zap.String("credential", b.Name), zap.Uint64("generation", ts.Generation), zap.Time("begun", in.At))
		claimRaw, err := b.Store.swapIntent(ctx, b.Name, inRaw, intent{Generation: ts.Generation, At: b.now(), Owner: b.id(), Claim: true})
		if errors.Is(err, ErrConflict) {
			return nil, false, errPeerRefreshing // another replica claimed it first
		}
		if err != nil {
			return nil, false, fmt.Errorf("claiming an unfinished refresh (storage refuses writes): %w", err)
		}
		inRaw = claimRaw
		// A writer that is alive but could not store its set retries the
		// save meanwhile; its set is newer than anything we would make.
		t := time.NewTimer(orDur(b.OrphanGrace, 10*time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false, ctx.Err()
		case <-t.C:
		}
		latest, latestRaw, err := b.Store.read(ctx, b.Name)
		if err != nil {
			return nil, false, err
		}
		if !bytes.Equal(latestRaw, raw) {
			return latest, true, nil
		}
	}
	if _, err := b.Store.swapIntent(ctx, b.Name, inRaw, intent{Generation: ts.Generation, At: b.now(), Owner: b.id()}); errors.Is(err, ErrConflict) {
		return nil, false, errPeerRefreshing // its owner renewed it, or another replica claimed it
	} else if err != nil {
		return nil, false, fmt.Errorf("recording the refresh intent (storage refuses writes; nothing is refreshed that could not be stored): %w", err)
	}
	fresh, err := b.Refresh(ctx, ts)
	var ge *GrantError
	if errors.As(err, &ge) {
		// A newer stored set means we lost a race (a lock that expired, a
		// replica without locks): the grant is alive.
		if latest, _, lerr := b.Store.read(ctx, b.Name); lerr == nil && newer(latest, ts) {
			b.dropIntent(ctx)
			return latest, true, nil
		}
		return b.markDead(ctx, ts, raw, "the authorization server rejected the refresh token ("+ge.Description+")")
	}
	if err != nil {
		// The refresh token probably did not rotate; if it did, it is
		// retried after the back-off, inside the reuse leeway.
		b.dropIntent(ctx)
		return nil, false, fmt.Errorf("refreshing: %w", err)
	}
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
	next.RefreshedAt = b.now()
	next.Generation = ts.Generation + 1
	next.State, next.Reason = StateReady, ""
	if _, err := b.Store.swap(ctx, b.Name, raw, &next); err != nil {
		// The intent stays, marked unsaved: it tells every replica that the
		// stored refresh token may be spent and that its owner lives.
		b.mu.Lock()
		b.base = raw
		b.mu.Unlock()
		_ = b.Store.saveIntent(ctx, b.Name, intent{Generation: ts.Generation, At: b.now(), Owner: b.id(), Unsaved: true})
		return &next, false, nil
	}
	b.dropIntent(ctx)
	b.logger().Info("token refreshed", zap.String("credential", b.Name), zap.Uint64("generation", next.Generation), zap.Time("expiry", next.Expiry))
	return &next, true, nil
}

// Save implements Backend.
func (b *StoredBackend) Save(ctx context.Context, ts *TokenSet) error {
	b.mu.Lock()
	base := b.base
	b.mu.Unlock()
	// Renew the intent — before waiting for the lock — : it tells the other
	// replicas that its owner lives and will store the newer set, so they
	// must not recover it as orphaned.
	if base != nil {
		_ = b.Store.saveIntent(ctx, b.Name, intent{Generation: envelopeGeneration(base), At: b.now(), Owner: b.id(), Unsaved: true})
	}
	unlock, _ := b.lock(ctx)
	defer unlock()
	_, err := b.Store.swap(ctx, b.Name, base, ts)
	if err == nil || errors.Is(err, ErrConflict) {
		b.mu.Lock()
		b.base = nil
		b.mu.Unlock()
	}
	if err == nil {
		b.dropIntent(ctx)
	}
	return err
}

func (b *StoredBackend) dropIntent(ctx context.Context) {
	if err := b.Store.deleteIntent(ctx, b.Name, b.id()); err != nil {
		b.logger().Warn("removing the refresh intent", zap.String("credential", b.Name), zap.Error(err))
	}
}

// markDead records needs_reauthorization on the exact stored bytes: a newer
// set written meanwhile wins.
func (b *StoredBackend) markDead(ctx context.Context, ts *TokenSet, raw []byte, reason string) (*TokenSet, bool, error) {
	dead := *ts
	dead.State, dead.Reason = StateNeedsReauthorization, reason
	dead.Generation = ts.Generation + 1
	_, err := b.Store.swap(ctx, b.Name, raw, &dead)
	if errors.Is(err, ErrConflict) {
		if latest, _, lerr := b.Store.read(ctx, b.Name); lerr == nil && latest.State == StateReady {
			return latest, true, nil
		}
	} else if err != nil {
		b.logger().Error("storing needs_reauthorization failed", zap.String("credential", b.Name), zap.Error(err))
	}
	b.dropIntent(ctx)
	b.logger().Error("credential needs reauthorization", zap.String("credential", b.Name), zap.String("reason", reason))
	return &dead, false, &ReauthError{Reason: reason}
}

// Authorize stores a freshly granted set (from the authorization-code
// callback) as the next generation, also over a set that no longer decrypts;
// it refuses while storage cannot be read, so that generations never restart.
func (b *StoredBackend) Authorize(ctx context.Context, ts *TokenSet) (*TokenSet, error) {
	lockCtx, cancel := context.WithTimeout(ctx, orDur(b.LockTimeout, 20*time.Second))
	defer cancel()
	if err := b.Store.Lock(lockCtx, b.Name); err != nil {
		return nil, fmt.Errorf("taking the refresh lock: %w", err)
	}
	defer b.Store.Unlock(context.WithoutCancel(ctx), b.Name)
	_, raw, err := b.Store.read(ctx, b.Name)
	if err != nil && raw == nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	next := *ts
	next.Generation = envelopeGeneration(raw) + 1
	next.State, next.Reason = StateReady, ""
	if next.GrantedAt.IsZero() {
		next.GrantedAt = b.now()
	}
	if next.RefreshedAt.IsZero() {
		next.RefreshedAt = next.GrantedAt
	}
	if _, err := b.Store.swap(ctx, b.Name, raw, &next); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.base = nil
	b.mu.Unlock()
	_ = b.Store.deleteIntent(ctx, b.Name, "") // a new grant: whatever was unfinished is moot
	return &next, nil
}

var _ Backend = (*StoredBackend)(nil)

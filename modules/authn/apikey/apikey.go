// Package apikey implements the `api_key` authenticator: keys that the gateway
// itself issues to workloads that have no identity provider, and the admin API
// routes and `caddy atlasgate-api-key` command that manage them.
package apikey

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/singleflight"

	"github.com/atlasgate/atlasgate/modules/authn"
)

func init() {
	caddy.RegisterModule(APIKey{})
}

// Defaults and fixed policies.
const (
	defaultRealm           = "default"
	defaultMaxLifetime     = 365 * 24 * time.Hour
	defaultDefaultLifetime = 90 * 24 * time.Hour

	// cacheTTL bounds how long a verified key is remembered without asking
	// storage again: a key revoked or rotated on any replica sharing the
	// storage stops working everywhere within this time. Failures are never
	// cached.
	cacheTTL = time.Second

	// lastUsedInterval is how often at most the last-used time of a key is
	// written (per key and replica), so that busy keys cause no write storm.
	lastUsedInterval = time.Minute

	// lookupTimeout bounds one storage read on the request path.
	lookupTimeout = 5 * time.Second

	// invalidKey is all a client learns about a refused key: which of
	// unknown, revoked, expired or mistyped it was is logged, not told.
	invalidKey = "API key not valid"
)

// now is the gateway's one clock (internal/clock); tests move it with
// clock.Set.
func now() time.Time { return gclock.Now() }

// equal compares key hashes in constant time (tests count its use).
var equal = subtle.ConstantTimeCompare

var realmName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// APIKey authenticates requests by API keys that the gateway issues (with the
// admin API or `caddy atlasgate-api-key create`). A key is accepted as
// `Authorization: Bearer agk_…` or as the password of HTTP Basic auth (any
// username), and optionally from one more header. Keys are stored as SHA-256
// hashes with their metadata in Caddy's configured storage, so every replica
// sharing that storage accepts the same keys and honours a revocation within a
// second.
//
// The identity of a key: kind `api_key`, user = the key's owner, subject = the
// key id, the key's groups and labels, and its expiry.
type APIKey struct {
	// Realm names the set of keys this authenticator accepts; keys live in
	// storage under `atlasgate/api_keys/<realm>/`. Authenticators with the
	// same realm accept the same keys. Lowercase letters, digits, `.`, `_`
	// and `-`. Default `default`.
	Realm string `json:"realm,omitempty"`

	// MaxLifetime is the longest lifetime a key may be created with; keys
	// without an expiry do not exist. Default 365 days (`365d`).
	MaxLifetime caddy.Duration `json:"max_lifetime,omitempty"`

	// DefaultLifetime is the lifetime of a key created without `expires_in`.
	// At most max_lifetime. Default 90 days (`90d`).
	DefaultLifetime caddy.Duration `json:"default_lifetime,omitempty"`

	// Header is one more request header to take a key from, for clients that
	// cannot set Authorization (e.g. `X-API-Key`, or `Proxy-Authorization`
	// for SDKs that send their own Authorization). Its whole value is the
	// key, unless HeaderScheme is set. Default: none, only
	// `Authorization: Bearer` and the Basic password.
	Header string `json:"header,omitempty"`

	// HeaderScheme is the scheme the header's value starts with (`Bearer`
	// for `Bearer <key>`). Default: `Bearer` for Proxy-Authorization, none
	// for other headers.
	HeaderScheme string `json:"header_scheme,omitempty"`

	store    *store
	cache    *authn.Cache[*Record]
	notifier Notifier // nil: revocations are seen by polling (cacheTTL)
	group    *singleflight.Group
	usage    *usage
	logger   *zap.Logger
	ctx      context.Context
	cancel   context.CancelFunc
}

// usage tracks the last-used writes of one authenticator.
type usage struct {
	mu      sync.Mutex
	touched map[string]time.Time // key id → last time we wrote last_used
	writes  sync.WaitGroup
}

// CaddyModule returns the Caddy module information.
func (APIKey) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "atlasgate.authn.api_key",
		New: func() caddy.Module { return new(APIKey) },
	}
}

// Provision applies the defaults and opens the key store in Caddy storage.
func (a *APIKey) Provision(ctx caddy.Context) error {
	if err := authn.RegisterMetrics(ctx); err != nil {
		return err
	}
	return a.setup(ctx, ctx.Storage(), ctx.Logger())
}

// setup is Provision without a caddy.Context (tests use any storage).
func (a *APIKey) setup(ctx context.Context, s certmagic.Storage, logger *zap.Logger) error {
	if a.Realm == "" {
		a.Realm = defaultRealm
	}
	if a.MaxLifetime == 0 {
		a.MaxLifetime = caddy.Duration(defaultMaxLifetime)
	}
	if a.DefaultLifetime == 0 {
		a.DefaultLifetime = caddy.Duration(min(defaultDefaultLifetime, time.Duration(a.MaxLifetime)))
	}
	a.Header = strings.TrimSpace(a.Header)
	a.logger = logger
	a.store = newStore(s, a.Realm)
	a.cache = authn.NewCache[*Record](0)
	a.cache.SetClock(func() time.Time { return now() })
	a.group = new(singleflight.Group)
	a.usage = &usage{touched: make(map[string]time.Time)}
	a.ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	a.watchRevocations(s)
	return nil
}

// Validate checks the configuration.
func (a *APIKey) Validate() error {
	if !realmName.MatchString(a.Realm) {
		return fmt.Errorf("realm %q: use lowercase letters, digits, '-', '_' and '.', at most 64 characters", a.Realm)
	}
	if a.MaxLifetime <= 0 {
		return fmt.Errorf("max_lifetime must be positive")
	}
	if a.DefaultLifetime <= 0 || a.DefaultLifetime > a.MaxLifetime {
		return fmt.Errorf("default_lifetime %s must be positive and at most max_lifetime %s",
			time.Duration(a.DefaultLifetime), time.Duration(a.MaxLifetime))
	}
	return authn.ValidateHeader("header", a.Header)
}

// Cleanup stops pending last-used writes.
func (a *APIKey) Cleanup() error {
	if a.cancel != nil {
		a.cancel()
		a.usage.writes.Wait()
	}
	return nil
}

// Authenticate implements authn.Authenticator.
func (a *APIKey) Authenticate(r *http.Request) (*authn.Identity, error) {
	key, err := a.credential(r)
	if err != nil {
		return nil, err
	}
	rec, err := a.verify(key)
	if err != nil {
		return nil, err
	}
	return a.identity(rec), nil
}

// credential finds an API key in r: a Bearer token or Basic password with the
// key prefix (other bearer tokens and passwords belong to other
// authenticators), or the value of the configured header.
func (a *APIKey) credential(r *http.Request) (string, error) {
	token, err := authn.BearerToken(r)
	switch {
	case err == nil:
		if looksLikeKey(token) {
			return token, nil
		}
	case errors.Is(err, authn.ErrNoCredential):
		_, password, err := authn.BasicAuth(r)
		if err == nil && looksLikeKey(password) {
			return password, nil
		}
		if err != nil && !errors.Is(err, authn.ErrNoCredential) {
			return "", err
		}
	default:
		return "", err
	}
	if a.Header != "" {
		return authn.HeaderToken(r, a.Header, a.HeaderScheme)
	}
	return "", authn.ErrNoCredential
}

// verify checks key: format and checksum first (no I/O), then the positive
// cache, then storage.
func (a *APIKey) verify(key string) (*Record, error) {
	id, err := parseKey(key)
	if err != nil {
		return nil, a.reject(id, err.Error())
	}
	h := hashKey(key)
	rec, ok := a.cache.Get(h)
	authn.CacheLookup("api_key", ok && rec != nil)
	if ok && rec != nil {
		a.markUsed(id)
		return rec, nil
	}
	// Concurrent requests with the same key share one storage read.
	v, err, _ := a.group.Do(string(h[:]), func() (any, error) {
		ctx, cancel := context.WithTimeout(a.ctx, lookupTimeout)
		defer cancel()
		return a.lookup(ctx, id, h)
	})
	if err != nil {
		return nil, err
	}
	a.markUsed(id)
	return v.(*Record), nil
}

func (a *APIKey) lookup(ctx context.Context, id string, h [32]byte) (*Record, error) {
	rec, err := a.store.load(ctx, id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, a.reject(id, "unknown key id")
	}
	if err != nil {
		a.logger.Error("reading API key from storage", zap.String("key_id", id), zap.Error(err))
		return nil, authn.Unavailable("API keys cannot be checked right now", err)
	}
	// Constant time, so response timing reveals nothing about how much of a
	// guessed key's hash matches.
	if equal(rec.hashBytes(), h[:]) != 1 {
		return nil, a.reject(id, "key does not match the stored hash")
	}
	t := now()
	if rec.Revoked {
		return nil, a.reject(id, "key revoked")
	}
	if !t.Before(rec.Expires) {
		return nil, a.reject(id, "key expired")
	}
	a.cache.Put(h, rec, minTime(t.Add(a.positiveTTL()), rec.Expires))
	return rec, nil
}

// forget drops rec's key from this replica's cache, so that a revocation made
// here takes effect here at once, and announces it when the storage
// broadcasts (other replicas follow at once, or else within cacheTTL). The
// stored hash is the cache key; a nil entry reads as a miss.
func (a *APIKey) forget(rec *Record) {
	if h := rec.hashBytes(); len(h) == 32 {
		a.cache.Put([32]byte(h), nil, now().Add(cacheTTL))
		a.announce(h)
	}
}

// reject logs why a key was refused (with its id, never the key) and returns
// the one answer every client gets.
func (a *APIKey) reject(id, reason string) error {
	if ce := a.logger.Check(zapcore.DebugLevel, "API key rejected"); ce != nil {
		ce.Write(zap.String("realm", a.Realm), zap.String("key_id", id), zap.String("reason", reason))
	}
	return authn.Invalid(invalidKey, nil)
}

// markUsed records the last use of id in storage, at most once per
// lastUsedInterval per key, in the background and best effort.
func (a *APIKey) markUsed(id string) {
	t := now()
	u := a.usage
	u.mu.Lock()
	if last, ok := u.touched[id]; ok && t.Sub(last) < lastUsedInterval {
		u.mu.Unlock()
		return
	}
	if len(u.touched) >= 100000 {
		clear(u.touched) // bounded memory; costs at most one extra write per key
	}
	u.touched[id] = t
	u.writes.Add(1)
	u.mu.Unlock()
	go func() {
		defer u.writes.Done()
		if err := a.store.touch(a.ctx, id, t); err != nil && a.ctx.Err() == nil {
			a.logger.Warn("recording API key use", zap.String("key_id", id), zap.Error(err))
		}
	}()
}

func (a *APIKey) identity(rec *Record) *authn.Identity {
	id := &authn.Identity{
		Kind:      "api_key",
		User:      rec.Owner,
		Subject:   rec.ID,
		Groups:    append([]string(nil), rec.Groups...),
		ExpiresAt: rec.Expires,
		Claims: map[string]any{
			"key_id":  rec.ID,
			"owner":   rec.Owner,
			"realm":   a.Realm,
			"created": rec.Created.UTC().Format(time.RFC3339),
			"expires": rec.Expires.UTC().Format(time.RFC3339),
		},
	}
	if rec.Description != "" {
		id.Claims["description"] = rec.Description
	}
	if len(rec.Labels) > 0 {
		id.Labels = make(map[string]string, len(rec.Labels))
		labels := make(map[string]any, len(rec.Labels))
		for k, v := range rec.Labels {
			id.Labels[k], labels[k] = v, v
		}
		id.Claims["labels"] = labels
	}
	if len(rec.Groups) > 0 {
		groups := make([]any, len(rec.Groups))
		for i, g := range rec.Groups {
			groups[i] = g
		}
		id.Claims["groups"] = groups
	}
	return id
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Interface guards
var (
	_ caddy.Provisioner   = (*APIKey)(nil)
	_ caddy.Validator     = (*APIKey)(nil)
	_ caddy.CleanerUpper  = (*APIKey)(nil)
	_ authn.Authenticator = (*APIKey)(nil)
)

// CredentialHeaders implements authn.HeaderUser: the configured extra header
// carries a gateway key and must not be forwarded.
func (a *APIKey) CredentialHeaders() []string {
	if a.Header == "" {
		return nil
	}
	return []string{a.Header}
}

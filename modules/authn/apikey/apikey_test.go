package apikey

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/modules/authn"
)

// countingStorage counts every storage access.
type countingStorage struct {
	certmagic.Storage
	loads, stores atomic.Int64
	fail          atomic.Bool
}

func (c *countingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	c.loads.Add(1)
	if c.fail.Load() {
		return nil, errors.New("storage down")
	}
	return c.Storage.Load(ctx, key)
}

func (c *countingStorage) Store(ctx context.Context, key string, v []byte) error {
	c.stores.Add(1)
	return c.Storage.Store(ctx, key, v)
}

// clock is an injectable clock.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

func setClock(t testing.TB) *clock {
	c := new(clock)
	c.t.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	t.Cleanup(gclock.Set(c.now))
	return c
}

type fixture struct {
	a     *APIKey
	store *countingStorage
	dir   string
	clock *clock
}

func newFixture(t testing.TB, cfg APIKey) *fixture {
	t.Helper()
	f := &fixture{clock: setClock(t), dir: t.TempDir()}
	f.store = &countingStorage{Storage: &certmagic.FileStorage{Path: f.dir}}
	f.a = f.provision(t, cfg)
	return f
}

// provision sets up another authenticator on the fixture's storage, as a
// second replica would.
func (f *fixture) provision(t testing.TB, cfg APIKey) *APIKey {
	t.Helper()
	a := cfg
	if err := a.setup(context.Background(), f.store, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Cleanup() })
	return &a
}

func (f *fixture) create(t testing.TB, req CreateRequest) *Issued {
	t.Helper()
	issued, err := f.a.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("creating key: %v", err)
	}
	return issued
}

func bearer(key string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+key)
	return r
}

func authErr(t *testing.T, err error, status int) *authn.Error {
	t.Helper()
	var ae *authn.Error
	if !errors.As(err, &ae) {
		t.Fatalf("want *authn.Error %d, got %v", status, err)
	}
	if ae.Status != status {
		t.Fatalf("status %d, want %d (%v)", ae.Status, status, ae)
	}
	return ae
}

func TestKeyFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		key, err := newKey()
		if err != nil {
			t.Fatal(err)
		}
		if len(key) != 42 || !strings.HasPrefix(key, "agk_") {
			t.Fatalf("bad key shape %q", key)
		}
		id, err := parseKey(key)
		if err != nil || id != key[4:12] || !validID(id) {
			t.Fatalf("parseKey(%q) = %q, %v", key, id, err)
		}
		if seen[key] {
			t.Fatal("duplicate key")
		}
		seen[key] = true
	}
	key, _ := newKey()
	flip := func(i int) string {
		b := []byte(key)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	for name, tc := range map[string]struct {
		key  string
		want error
	}{
		"random char changed":   {flip(20), errKeyChecksum},
		"checksum char changed": {flip(40), errKeyChecksum},
		"truncated":             {key[:41], errKeyFormat},
		"wrong prefix":          {"agx_" + key[4:], errKeyFormat},
		"not base62":            {key[:10] + "-" + key[11:], errKeyFormat},
		"empty":                 {"", errKeyFormat},
	} {
		if _, err := parseKey(tc.key); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
	if checksum("agk_") == checksum("agk_0") || len(checksum("")) != 6 {
		t.Error("checksum is not a 6-character CRC")
	}
}

func TestBadChecksumNeverTouchesStorage(t *testing.T) {
	f := newFixture(t, APIKey{})
	good := f.create(t, CreateRequest{Owner: "ci"}).Key
	loads := f.store.loads.Load()
	forged := good[:len(good)-1] + string(base62Digits[(strings.IndexByte(base62Digits, good[len(good)-1])+1)%62])
	for _, k := range []string{forged, "agk_short", "agk_" + strings.Repeat("x", 38)} {
		_, err := f.a.Authenticate(bearer(k))
		if ae := authErr(t, err, 401); ae.Description != invalidKey {
			t.Errorf("description %q", ae.Description)
		}
	}
	if n := f.store.loads.Load() - loads; n != 0 {
		t.Errorf("malformed keys caused %d storage reads", n)
	}
}

func TestCreateVerifyRevokeExpire(t *testing.T) {
	f := newFixture(t, APIKey{})
	var compares atomic.Int64
	oldEqual := equal
	equal = func(x, y []byte) int { compares.Add(1); return oldEqual(x, y) }
	t.Cleanup(func() { equal = oldEqual })

	issued := f.create(t, CreateRequest{
		Owner: "deploy-bot", Description: "CI deploys", ExpiresIn: "30d",
		Labels: map[string]string{"team": "platform"}, Groups: []string{"deployers"},
	})
	if issued.Status != "active" || !issued.Expires.Equal(f.clock.now().Add(30*24*time.Hour)) {
		t.Fatalf("issued %+v", issued.KeyInfo)
	}
	id, err := f.a.Authenticate(bearer(issued.Key))
	if err != nil {
		t.Fatal(err)
	}
	if id.Kind != "api_key" || id.User != "deploy-bot" || id.Subject != issued.ID ||
		id.Labels["team"] != "platform" || len(id.Groups) != 1 || id.Groups[0] != "deployers" ||
		!id.ExpiresAt.Equal(issued.Expires) || id.Claims["key_id"] != issued.ID {
		t.Errorf("identity %+v", id)
	}
	if compares.Load() != 1 {
		t.Errorf("constant-time compare used %d times, want 1", compares.Load())
	}

	// Within the one-second positive cache, storage is not asked again.
	loads := f.store.loads.Load()
	if _, err := f.a.Authenticate(bearer(issued.Key)); err != nil {
		t.Fatal(err)
	}
	if f.store.loads.Load() != loads {
		t.Error("cached key read storage")
	}

	// A second replica revokes; this one refuses the key once its cache
	// entry (at most 1s) is gone.
	replica := f.provision(t, APIKey{})
	if _, err := replica.Revoke(context.Background(), issued.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(cacheTTL - time.Nanosecond)
	if _, err := f.a.Authenticate(bearer(issued.Key)); err != nil {
		t.Fatalf("within the cache TTL: %v", err)
	}
	f.clock.advance(time.Nanosecond)
	_, err = f.a.Authenticate(bearer(issued.Key))
	authErr(t, err, 401)

	// Revoked here, refused here at once: revoking drops the cache entry.
	k1 := f.create(t, CreateRequest{Owner: "o"})
	if _, err := f.a.Authenticate(bearer(k1.Key)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Revoke(context.Background(), k1.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.a.Authenticate(bearer(k1.Key))
	authErr(t, err, 401)

	// Expiry, with no cache in the way.
	k2 := f.create(t, CreateRequest{Owner: "o", ExpiresIn: "1h"})
	if _, err := f.a.Authenticate(bearer(k2.Key)); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(time.Hour - time.Nanosecond)
	if _, err := f.a.Authenticate(bearer(k2.Key)); err != nil {
		t.Fatalf("key failed before its expiry: %v", err)
	}
	f.clock.advance(time.Nanosecond)
	_, err = f.a.Authenticate(bearer(k2.Key))
	authErr(t, err, 401)

	// An unknown but well-formed key.
	unknown, _ := newKey()
	_, err = f.a.Authenticate(bearer(unknown))
	if ae := authErr(t, err, 401); ae.Description != invalidKey || ae.Err != nil {
		t.Errorf("unknown key error tells more than %q: %v", invalidKey, ae)
	}
}

func TestStorageFailureIs503(t *testing.T) {
	f := newFixture(t, APIKey{})
	k := f.create(t, CreateRequest{Owner: "o"})
	f.store.fail.Store(true)
	_, err := f.a.Authenticate(bearer(k.Key))
	authErr(t, err, 503)
}

func TestCredentialSources(t *testing.T) {
	f := newFixture(t, APIKey{Header: "X-API-Key"})
	key := f.create(t, CreateRequest{Owner: "o"}).Key
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	for name, tc := range map[string]struct {
		headers map[string]string
		want    int // 0 ok, -1 ErrNoCredential, else status
	}{
		"bearer":                 {map[string]string{"Authorization": "Bearer " + key}, 0},
		"bearer lowercase":       {map[string]string{"Authorization": "bearer " + key}, 0},
		"basic password":         {map[string]string{"Authorization": basic("anyone", key)}, 0},
		"basic empty user":       {map[string]string{"Authorization": basic("", key)}, 0},
		"header":                 {map[string]string{"X-API-Key": key}, 0},
		"no credential":          {nil, -1},
		"other bearer (a JWT)":   {map[string]string{"Authorization": "Bearer eyJhbGciOi.x.y"}, -1},
		"other basic password":   {map[string]string{"Authorization": basic("u", "hunter2")}, -1},
		"bad key in header":      {map[string]string{"X-API-Key": "nope"}, 401},
		"bad key bearer":         {map[string]string{"Authorization": "Bearer agk_nope"}, 401},
		"malformed basic":        {map[string]string{"Authorization": "Basic !!!"}, 401},
		"jwt bearer, key header": {map[string]string{"Authorization": "Bearer eyJ.x.y", "X-API-Key": key}, 0},
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			id, err := f.a.Authenticate(r)
			switch tc.want {
			case 0:
				if err != nil || id.User != "o" {
					t.Fatalf("got %v, %v", id, err)
				}
			case -1:
				if !errors.Is(err, authn.ErrNoCredential) {
					t.Fatalf("got %v, want ErrNoCredential", err)
				}
			default:
				authErr(t, err, tc.want)
			}
		})
	}
	// Without `header`, X-API-Key is not looked at.
	plain := f.provision(t, APIKey{})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-API-Key", key)
	if _, err := plain.Authenticate(r); !errors.Is(err, authn.ErrNoCredential) {
		t.Errorf("X-API-Key without `header`: %v", err)
	}
}

func TestLifetimes(t *testing.T) {
	f := newFixture(t, APIKey{MaxLifetime: caddy.Duration(30 * 24 * time.Hour), DefaultLifetime: caddy.Duration(7 * 24 * time.Hour)})
	ctx := context.Background()
	for _, bad := range []string{"31d", "0s", "-1h", "never", "forever"} {
		_, err := f.a.Create(ctx, CreateRequest{Owner: "o", ExpiresIn: bad})
		var re *RequestError
		if !errors.As(err, &re) {
			t.Errorf("expires_in %q: got %v, want a request error", bad, err)
		}
	}
	k := f.create(t, CreateRequest{Owner: "o"})
	if got := k.Expires.Sub(k.Created); got != 7*24*time.Hour {
		t.Errorf("default lifetime %s", got)
	}
	k = f.create(t, CreateRequest{Owner: "o", ExpiresIn: "30d"})
	if got := k.Expires.Sub(k.Created); got != 30*24*time.Hour {
		t.Errorf("max lifetime %s", got)
	}

	// Defaults: 365d max, 90d default; a default above the max is refused.
	d := newFixture(t, APIKey{})
	if time.Duration(d.a.MaxLifetime) != 365*24*time.Hour || time.Duration(d.a.DefaultLifetime) != 90*24*time.Hour {
		t.Errorf("defaults %s %s", time.Duration(d.a.MaxLifetime), time.Duration(d.a.DefaultLifetime))
	}
	bad := APIKey{MaxLifetime: caddy.Duration(time.Hour), DefaultLifetime: caddy.Duration(2 * time.Hour)}
	_ = bad.setup(ctx, d.store, zap.NewNop())
	if err := bad.Validate(); err == nil {
		t.Error("default_lifetime above max_lifetime accepted")
	}
	small := APIKey{MaxLifetime: caddy.Duration(time.Hour)}
	_ = small.setup(ctx, d.store, zap.NewNop())
	if err := small.Validate(); err != nil || time.Duration(small.DefaultLifetime) != time.Hour {
		t.Errorf("default_lifetime with a small max_lifetime: %s, %v", time.Duration(small.DefaultLifetime), err)
	}
}

func TestCreateValidation(t *testing.T) {
	f := newFixture(t, APIKey{})
	for name, req := range map[string]CreateRequest{
		"no owner":        {},
		"blank owner":     {Owner: "  "},
		"control char":    {Owner: "a\nb"},
		"bad label name":  {Owner: "o", Labels: map[string]string{"a b": "c"}},
		"empty group":     {Owner: "o", Groups: []string{""}},
		"long owner":      {Owner: strings.Repeat("x", 300)},
		"too many groups": {Owner: "o", Groups: strings.Split(strings.Repeat("g,", 65), ",")},
	} {
		var re *RequestError
		if _, err := f.a.Create(context.Background(), req); !errors.As(err, &re) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestListNeverExposesSecrets(t *testing.T) {
	f := newFixture(t, APIKey{})
	ctx := context.Background()
	a := f.create(t, CreateRequest{Owner: "alice", Description: "first"})
	f.clock.advance(time.Second)
	b := f.create(t, CreateRequest{Owner: "bob"})
	if _, err := f.a.Authenticate(bearer(a.Key)); err != nil {
		t.Fatal(err)
	}
	_ = f.a.Cleanup() // waits for the last-used write
	if _, err := f.a.Revoke(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	list, err := f.a.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
		t.Fatalf("list %+v", list)
	}
	if list[0].Status != "active" || list[1].Status != "revoked" || list[0].LastUsed.IsZero() {
		t.Errorf("list %+v", list)
	}
	out, _ := json.Marshal(list)
	recA, _ := f.a.store.load(ctx, a.ID)
	for _, secret := range []string{a.Key, b.Key, recA.Hash, `"hash"`, "agk_"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("list exposes %q: %s", secret, out)
		}
	}
	// Storage holds the hash, never the key.
	_ = filepath.Walk(f.dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			content, _ := os.ReadFile(p)
			if strings.Contains(string(content), a.Key[12:]) {
				t.Errorf("%s holds the key", p)
			}
		}
		return nil
	})
}

func TestLastUsedWrittenAtMostOncePerMinute(t *testing.T) {
	f := newFixture(t, APIKey{})
	k := f.create(t, CreateRequest{Owner: "o"})
	stores := f.store.stores.Load()
	for range 50 {
		if _, err := f.a.Authenticate(bearer(k.Key)); err != nil {
			t.Fatal(err)
		}
		f.clock.advance(time.Second)
	}
	f.a.usage.writes.Wait()
	if n := f.store.stores.Load() - stores; n != 1 {
		t.Errorf("%d last-used writes in 50s, want 1", n)
	}
	f.clock.advance(time.Minute)
	if _, err := f.a.Authenticate(bearer(k.Key)); err != nil {
		t.Fatal(err)
	}
	f.a.usage.writes.Wait()
	if n := f.store.stores.Load() - stores; n != 2 {
		t.Errorf("%d last-used writes after a minute, want 2", n)
	}
	info, _ := f.a.Get(context.Background(), k.ID)
	if !info.LastUsed.Equal(f.clock.now()) {
		t.Errorf("last_used %s, want %s", info.LastUsed, f.clock.now())
	}
	// A revocation is never undone by a concurrent last-used write.
	if _, err := f.a.Revoke(context.Background(), k.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(time.Minute)
	f.a.markUsed(k.ID)
	f.a.usage.writes.Wait()
	if info, _ := f.a.Get(context.Background(), k.ID); !info.Revoked {
		t.Error("last-used write undid the revocation")
	}
}

func TestRotate(t *testing.T) {
	f := newFixture(t, APIKey{})
	ctx := context.Background()
	old := f.create(t, CreateRequest{Owner: "o", Labels: map[string]string{"env": "prod"}})

	// Immediate rotation.
	nk, err := f.a.Rotate(ctx, old.ID, RotateRequest{ExpiresIn: "10d"})
	if err != nil {
		t.Fatal(err)
	}
	if nk.Owner != "o" || nk.Labels["env"] != "prod" || nk.RotatedFrom != old.ID || nk.Key == old.Key {
		t.Errorf("rotated %+v", nk)
	}
	if _, err := f.a.Authenticate(bearer(nk.Key)); err != nil {
		t.Fatal(err)
	}
	_, err = f.a.Authenticate(bearer(old.Key))
	authErr(t, err, 401)
	if _, err := f.a.Rotate(ctx, old.ID, RotateRequest{}); !errors.Is(err, ErrConflict) {
		t.Errorf("rotating a revoked key: %v", err)
	}

	// With a grace period the old key works until it ends.
	nk2, err := f.a.Rotate(ctx, nk.ID, RotateRequest{GracePeriod: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Authenticate(bearer(nk.Key)); err != nil {
		t.Fatalf("old key during grace: %v", err)
	}
	f.clock.advance(10 * time.Minute)
	_, err = f.a.Authenticate(bearer(nk.Key))
	authErr(t, err, 401)
	if _, err := f.a.Authenticate(bearer(nk2.Key)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Rotate(ctx, "nosuchid", RotateRequest{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("rotating unknown key: %v", err)
	}
	if _, err := f.a.Revoke(ctx, "../../x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking a path: %v", err)
	}
}

func TestRealmsAreSeparate(t *testing.T) {
	f := newFixture(t, APIKey{})
	k := f.create(t, CreateRequest{Owner: "o"})
	other := f.provision(t, APIKey{Realm: "other"})
	_, err := other.Authenticate(bearer(k.Key))
	authErr(t, err, 401)
}

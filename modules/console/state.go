package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
)

// StateLifetime is how long an authorization request may take, from the
// Authorize button to the callback.
const StateLifetime = 10 * time.Minute

// statePrefix is the storage folder of pending authorization requests. They
// live in Caddy's storage, not in memory, so that the callback may land on
// another replica that shares the storage, or after a reload.
const statePrefix = "atlasgate/oauth_states"

// stateRecord is one pending authorization request. The state itself is not
// stored, only its hash (the storage key), so reading the storage does not
// yield a usable state; nor is the browser cookie, only its hash.
type stateRecord struct {
	Credential string    `json:"credential"`
	Browser    string    `json:"browser"`          // hex SHA-256 of the cookie value
	User       string    `json:"user,omitempty"`   // hex SHA-256 of the caller key (credentials.Caller), if any
	Secure     bool      `json:"secure,omitempty"` // the browser cookie is the __Host- one
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
}

// Errors of takeState, shown to the person on the callback page.
var (
	errStateUnknown = errors.New("this authorization request is unknown or was already used")
	errStateExpired = errors.New("this authorization request has expired")
)

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// A state is `<tag>.<random>`, where tag names the folder of its caller's
// pending requests: the callback finds a request in one step, and starting
// one looks only at that caller's (at most MaxPendingStates) requests, never
// at everyone's.
const tagLen = 16

// MaxPendingStates is how many authorization requests one caller may have
// pending; starting another drops the oldest.
const MaxPendingStates = 5

func callerTag(owner string) string { return hashHex(owner)[:tagLen] }

func stateKey(state string) (string, bool) {
	tag, _, ok := strings.Cut(state, ".")
	if !ok || len(tag) != tagLen || strings.Trim(tag, "0123456789abcdef") != "" {
		return "", false
	}
	return statePrefix + "/" + tag + "/" + hashHex(state), true
}

// newState stores a pending request for credential, bound to the browser
// that holds browserCookie and to the caller (credentials.Caller; "" for
// none), and returns the state to send to the authorization server. owner
// groups the caller's pending requests: the caller, else the client address.
func newState(ctx context.Context, st certmagic.Storage, credential, browserCookie, caller, owner string, secure bool) (string, error) {
	random, err := randomToken()
	if err != nil {
		return "", err
	}
	tag := callerTag(owner)
	state := tag + "." + random
	t := now()
	rec := stateRecord{Credential: credential, Browser: hashHex(browserCookie), Secure: secure, Created: t, Expires: t.Add(StateLifetime)}
	if caller != "" {
		rec.User = hashHex(caller)
	}
	capPending(ctx, st, tag, t)
	raw, _ := json.Marshal(rec)
	key, _ := stateKey(state)
	if err := st.Store(ctx, key, raw); err != nil {
		return "", fmt.Errorf("storing the authorization request: %w", err)
	}
	return state, nil
}

// capPending drops a caller's expired requests and, beyond
// MaxPendingStates-1, the oldest, to make room for a new one.
func capPending(ctx context.Context, st certmagic.Storage, tag string, t time.Time) {
	keys, err := st.List(ctx, statePrefix+"/"+tag, false)
	if err != nil {
		return
	}
	type pending struct {
		key     string
		created time.Time
	}
	var live []pending
	for _, key := range keys {
		raw, err := st.Load(ctx, key)
		if err != nil {
			continue
		}
		var rec stateRecord
		if json.Unmarshal(raw, &rec) != nil || !t.Before(rec.Expires) {
			_ = st.Delete(ctx, key)
			continue
		}
		live = append(live, pending{key, rec.Created})
	}
	sort.Slice(live, func(i, j int) bool { return live[i].created.Before(live[j].created) })
	for len(live) >= MaxPendingStates {
		_ = st.Delete(ctx, live[0].key)
		live = live[1:]
	}
}

// takeState loads and deletes the pending request of state: a state is used
// at most once, also across replicas (the storage lock makes load-and-delete
// one step).
func takeState(ctx context.Context, st certmagic.Storage, state string) (*stateRecord, error) {
	key, ok := stateKey(state)
	if !ok {
		return nil, errStateUnknown
	}
	lock := "atlasgate_oauth_state_" + hashHex(state)[:32]
	if err := st.Lock(ctx, lock); err != nil {
		return nil, fmt.Errorf("locking the authorization request: %w", err)
	}
	defer func() { _ = st.Unlock(context.WithoutCancel(ctx), lock) }()
	raw, err := st.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errStateUnknown
	}
	if err != nil {
		return nil, fmt.Errorf("loading the authorization request: %w", err)
	}
	if err := st.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("deleting the authorization request: %w", err)
	}
	var rec stateRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, errStateUnknown
	}
	if !now().Before(rec.Expires) {
		return nil, errStateExpired
	}
	return &rec, nil
}

// sameBrowser reports whether cookie is the one the request was bound to.
func (rec *stateRecord) sameBrowser(cookie string) bool {
	return cookie != "" && subtle.ConstantTimeCompare([]byte(hashHex(cookie)), []byte(rec.Browser)) == 1
}

// sameUser reports whether user is the console user who started the
// request (per-user credentials store the grant for the callback's user).
func (rec *stateRecord) sameUser(user string) bool {
	if rec.User == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(hashHex(user)), []byte(rec.User)) == 1
}

// lastSweep is when sweepStates last ran (UnixNano), per process.
var lastSweep atomic.Int64

// sweepEvery is how often, at most, sweepStates reads every pending request.
const sweepEvery = StateLifetime / 2

// sweepStates deletes abandoned requests (Authorize pressed, never came
// back), so they do not pile up in the storage. It reads every pending
// request, so it runs at most once per sweepEvery, not on every Authorize.
func sweepStates(ctx context.Context, st certmagic.Storage) {
	t := now()
	last := lastSweep.Load()
	if last != 0 && t.Sub(time.Unix(0, last)) < sweepEvery || !lastSweep.CompareAndSwap(last, t.UnixNano()) {
		return
	}
	keys, err := st.List(ctx, statePrefix, true)
	if err != nil {
		return
	}
	for _, key := range keys {
		raw, err := st.Load(ctx, key)
		if err != nil {
			continue
		}
		var rec stateRecord
		if json.Unmarshal(raw, &rec) != nil || !t.Before(rec.Expires) {
			_ = st.Delete(ctx, key)
		}
	}
}

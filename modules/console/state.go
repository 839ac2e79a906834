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
	Browser    string    `json:"browser"`        // hex SHA-256 of the cookie value
	User       string    `json:"user,omitempty"` // hex SHA-256 of {http.auth.user.id}, if any
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

func stateKey(state string) string { return statePrefix + "/" + hashHex(state) }

// newState stores a pending request for credential, bound to the browser
// that holds browserCookie, and returns the state to send to the
// authorization server.
func newState(ctx context.Context, st certmagic.Storage, credential, browserCookie, user string) (string, error) {
	state, err := randomToken()
	if err != nil {
		return "", err
	}
	t := now()
	rec := stateRecord{Credential: credential, Browser: hashHex(browserCookie), Created: t, Expires: t.Add(StateLifetime)}
	if user != "" {
		rec.User = hashHex(user)
	}
	raw, _ := json.Marshal(rec)
	if err := st.Store(ctx, stateKey(state), raw); err != nil {
		return "", fmt.Errorf("storing the authorization request: %w", err)
	}
	return state, nil
}

// takeState loads and deletes the pending request of state: a state is used
// at most once, also across replicas (the storage lock makes load-and-delete
// one step).
func takeState(ctx context.Context, st certmagic.Storage, state string) (*stateRecord, error) {
	key := stateKey(state)
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

// sweepStates deletes abandoned requests (Authorize pressed, never came
// back), so they do not pile up in the storage.
func sweepStates(ctx context.Context, st certmagic.Storage) {
	keys, err := st.List(ctx, statePrefix, false)
	if err != nil {
		return
	}
	t := now()
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

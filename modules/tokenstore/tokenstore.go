// Package tokenstore keeps OAuth token sets encrypted (AES-256-GCM) in Caddy's
// configured storage, with a generation number, and coordinates refreshes
// between goroutines and between gateway replicas that share the storage.
//
// Storage is the authority; memory is a cache of it. The refresh protocol (see
// Manager) is built so that a rotated refresh token is never lost: not to a
// race between replicas, not to a reload, not to a crash.
package tokenstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
)

// TokenSet is what the gateway keeps of one OAuth grant.
type TokenSet struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry"`
	Scopes       []string  `json:"scopes,omitempty"`
	// CloudID and SiteURL of the Atlassian site the grant is used for.
	CloudID string `json:"cloud_id,omitempty"`
	SiteURL string `json:"site_url,omitempty"`
	// AccountID of the Atlassian account that consented.
	AccountID string `json:"account_id,omitempty"`
	// GrantedAt is the consent time: Atlassian's 365-day absolute expiry runs
	// from it and is not reset by refreshes.
	GrantedAt time.Time `json:"granted_at"`
	// RefreshedAt is the last successful refresh: the 90-day inactivity
	// expiry runs from it.
	RefreshedAt time.Time `json:"refreshed_at"`
	// Generation grows by one with every stored change; a reader that sees a
	// higher generation than it holds adopts the stored set.
	Generation uint64 `json:"generation"`
	// State is StateReady or StateNeedsReauthorization (with Reason).
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// Credential states.
const (
	StateUnauthorized         = "unauthorized"
	StateReady                = "ready"
	StateUnreadable           = "unreadable" // reported, never stored: the set cannot be read
	StateNeedsReauthorization = "needs_reauthorization"
)

// ErrNotFound means no token set is stored under the name.
var ErrNotFound = errors.New("no token set stored")

// ErrUnreadable wraps failures to read a stored token set: storage errors,
// another encryption key, corrupt or tampered data.
var ErrUnreadable = errors.New("token set unreadable")

// Store reads and writes encrypted token sets in certmagic storage.
type Store struct {
	storage certmagic.Storage
	aead    cipher.AEAD
	keyID   string
	prefix  string
}

// New returns a Store that encrypts with the 32-byte key.
func New(storage certmagic.Storage, key []byte) (*Store, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("encryption key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(key)
	return &Store{storage: storage, aead: aead, keyID: hex.EncodeToString(sum[:4]), prefix: "atlasgate/tokens/"}, nil
}

// ParseKey decodes a 32-byte key given as base64 (standard or URL, padded or
// not) or hex. Generate one with `openssl rand -base64 32`.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, fmt.Errorf("must be 32 random bytes, base64- or hex-encoded (e.g. `openssl rand -base64 32`)")
}

// envelope is the stored form.
type envelope struct {
	Version    int    `json:"v"`
	KeyID      string `json:"kid"`
	Generation uint64 `json:"generation"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ct"`
}

// Key is the storage key of a token set.
func (s *Store) Key(name string) string { return s.prefix + name + ".json" }

func (s *Store) lockName(name string) string { return "atlasgate_token_" + name }

// Load reads and decrypts the token set stored under name.
func (s *Store) Load(ctx context.Context, name string) (*TokenSet, error) {
	ts, _, err := s.read(ctx, name)
	return ts, err
}

// read is Load that also returns the stored bytes, for compare-and-set. The
// bytes come back also when they do not decrypt.
func (s *Store) read(ctx context.Context, name string) (*TokenSet, []byte, error) {
	raw, err := s.storage.Load(ctx, s.Key(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: loading token set %q: %w", ErrUnreadable, name, err)
	}
	ts, err := s.open(name, raw)
	return ts, raw, err
}

func (s *Store) open(name string, raw []byte) (*TokenSet, error) {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("%w: token set %q is corrupt: %v", ErrUnreadable, name, err)
	}
	if env.KeyID != s.keyID {
		return nil, fmt.Errorf("%w: token set %q was encrypted with another key (key id %s, configured key id %s)", ErrUnreadable, name, env.KeyID, s.keyID)
	}
	// The storage key is authenticated data: a token set copied to another
	// name does not decrypt.
	plain, err := s.aead.Open(nil, env.Nonce, env.Ciphertext, []byte(s.Key(name)))
	if err != nil {
		return nil, fmt.Errorf("%w: token set %q does not decrypt: wrong key or tampered data", ErrUnreadable, name)
	}
	var ts TokenSet
	if err := json.Unmarshal(plain, &ts); err != nil {
		return nil, fmt.Errorf("%w: token set %q is corrupt: %v", ErrUnreadable, name, err)
	}
	return &ts, nil
}

// envelopeGeneration is the generation of stored bytes that may not decrypt
// (another key): generations stay monotonic across a re-authorization.
func envelopeGeneration(raw []byte) uint64 {
	var env envelope
	if json.Unmarshal(raw, &env) != nil {
		return 0
	}
	return env.Generation
}

// Save encrypts and writes ts under name unconditionally (atomically where
// the storage does, as file storage does). The engine writes with swap.
func (s *Store) Save(ctx context.Context, name string, ts *TokenSet) error {
	raw, err := s.seal(name, ts)
	if err != nil {
		return err
	}
	if err := s.storage.Store(ctx, s.Key(name), raw); err != nil {
		return fmt.Errorf("storing token set %q: %w", name, err)
	}
	return nil
}

func (s *Store) seal(name string, ts *TokenSet) ([]byte, error) {
	plain, err := json.Marshal(ts)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	env := envelope{Version: 1, KeyID: s.keyID, Generation: ts.Generation, Nonce: nonce,
		Ciphertext: s.aead.Seal(nil, nonce, plain, []byte(s.Key(name)))}
	return json.Marshal(env)
}

// Delete removes the token set stored under name.
func (s *Store) Delete(ctx context.Context, name string) error {
	err := s.storage.Delete(ctx, s.Key(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Lock takes the cross-replica lock of name. Certmagic locks are best effort
// (file locks expire when not kept fresh); correctness does not depend on them
// alone: generations and re-reads under the lock catch what they miss.
func (s *Store) Lock(ctx context.Context, name string) error {
	return s.storage.Lock(ctx, s.lockName(name))
}

// Unlock releases the lock of name.
func (s *Store) Unlock(ctx context.Context, name string) error {
	return s.storage.Unlock(ctx, s.lockName(name))
}

// List returns the names of the token sets stored under the name prefix
// (e.g. "oauth-jira/users/").
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.storage.List(ctx, s.prefix+strings.TrimSuffix(prefix, "/"), false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, k := range keys {
		if name, ok := strings.CutSuffix(strings.TrimPrefix(k, s.prefix), ".json"); ok {
			names = append(names, name)
		}
	}
	return names, nil
}

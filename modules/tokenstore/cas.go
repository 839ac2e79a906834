package tokenstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// CompareAndSwapper is implemented by storage that can replace a value atomically.
type CompareAndSwapper interface {
	// CompareAndSwap stores value at key only if the key's current value is
	// exactly old (old == nil: only if the key does not exist). It reports
	// false, nil when the current value differs.
	CompareAndSwap(ctx context.Context, key string, old, value []byte) (bool, error)
}

// swap encrypts ts and stores it under name only if storage still holds
// exactly old (nil: nothing), and returns the stored bytes. Storage that
// implements CompareAndSwapper does it atomically; with any other
// certmagic storage the caller holds the name's lock and swap re-reads
// before writing, which is as good as that lock. ErrConflict when the
// stored bytes differ.
func (s *Store) swap(ctx context.Context, name string, old []byte, ts *TokenSet) ([]byte, error) {
	raw, err := s.seal(name, ts)
	if err != nil {
		return nil, err
	}
	if err := s.casRaw(ctx, s.Key(name), old, raw); err != nil {
		return nil, fmt.Errorf("storing token set %q: %w", name, err)
	}
	return raw, nil
}

// casRaw stores value at key only if key holds exactly old (nil: nothing).
func (s *Store) casRaw(ctx context.Context, key string, old, value []byte) error {
	raw := value
	if cas, ok := s.storage.(CompareAndSwapper); ok {
		swapped, err := cas.CompareAndSwap(ctx, key, old, raw)
		if err != nil {
			return err
		}
		if !swapped {
			return ErrConflict
		}
		return nil
	}
	cur, err := s.storage.Load(ctx, key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		cur = nil
	case err != nil:
		return fmt.Errorf("re-reading before storing: %w", err)
	}
	if (cur == nil) != (old == nil) || !bytes.Equal(cur, old) {
		return ErrConflict
	}
	return s.storage.Store(ctx, key, raw)
}

// intent is written before a refresh token is sent to the token endpoint and
// removed once the refreshed set is stored. One found on the stored
// generation by anyone else means its writer died (or lost its storage)
// between the two: the refresh token it sent may have been rotated already,
// and the stored one is accepted only for Atlassian's 10-minute leeway.
type intent struct {
	Generation uint64    `json:"generation"`
	At         time.Time `json:"at"`
	Owner      string    `json:"owner"` // process instance
	Claim      bool      `json:"claim,omitempty"`
	// Unsaved: the owner holds the refreshed set but could not store it;
	// it renews the intent with every retry of the save.
	Unsaved bool `json:"unsaved,omitempty"`
}

func (s *Store) intentKey(name string) string { return "atlasgate/token-intents/" + name + ".json" }

// loadIntent returns the intent stored for name and its bytes, or nils.
func (s *Store) loadIntent(ctx context.Context, name string) (*intent, []byte, error) {
	raw, err := s.storage.Load(ctx, s.intentKey(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var in intent
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, raw, nil // a torn intent is no intent: the set decides
	}
	return &in, raw, nil
}

// swapIntent replaces the intent only if it is still exactly old (nil:
// none), so that two replicas that both bypassed the lock cannot both go on
// to refresh: the intent fences the token call.
func (s *Store) swapIntent(ctx context.Context, name string, old []byte, in intent) ([]byte, error) {
	raw, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	return raw, s.casRaw(ctx, s.intentKey(name), old, raw)
}

func (s *Store) saveIntent(ctx context.Context, name string, in intent) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return s.storage.Store(ctx, s.intentKey(name), raw)
}

// deleteIntent removes the intent if it is still owner's.
func (s *Store) deleteIntent(ctx context.Context, name, owner string) error {
	in, _, err := s.loadIntent(ctx, name)
	if err != nil || in == nil || (owner != "" && in.Owner != owner) {
		return err
	}
	err = s.storage.Delete(ctx, s.intentKey(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

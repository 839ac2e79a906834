package tokenstore

import "context"

// MemoryBackend keeps nothing: a new token set is one token request away
// (OAuth client credentials). The Engine holds the current set in memory.
type MemoryBackend struct {
	// Fetch requests a new access token. Its set needs the token fields
	// and RefreshedAt (the issue time; refresh-ahead takes at most half the
	// lifetime).
	Fetch func(ctx context.Context) (*TokenSet, error)
}

// Read implements Backend: there is nothing to read.
func (MemoryBackend) Read(context.Context) (*TokenSet, bool, error) { return nil, false, nil }

// Renew implements Backend.
func (m MemoryBackend) Renew(ctx context.Context, cur *TokenSet, stale func(*TokenSet) bool) (*TokenSet, bool, error) {
	if cur != nil && !stale(cur) {
		return cur, true, nil
	}
	ts, err := m.Fetch(ctx)
	if err != nil {
		return nil, false, err
	}
	ts.State = StateReady
	if cur != nil {
		ts.Generation = cur.Generation + 1
	} else {
		ts.Generation = 1
	}
	return ts, true, nil
}

// Save implements Backend: nothing is ever unsaved.
func (MemoryBackend) Save(context.Context, *TokenSet) error { return nil }

var _ Backend = MemoryBackend{}

package tokenstore

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Manager is the Engine of one stored (3LO) grant: an Engine over a
// StoredBackend, configured by its fields and built on first use.
type Manager struct {
	Store   *Store
	Name    string
	Refresh RefreshFunc
	// Skew, Recheck, SaveRetry: see Engine. LockTimeout, OrphanAfter,
	// OrphanGrace: see StoredBackend.
	Skew        time.Duration
	Recheck     time.Duration
	SaveRetry   time.Duration
	LockTimeout time.Duration
	OrphanAfter time.Duration
	OrphanGrace time.Duration
	// Context ends the engine's background work (the Caddy context).
	Context context.Context
	Now     func() time.Time
	Logger  *zap.Logger

	once    sync.Once
	engine  *Engine
	backend *StoredBackend
}

// Engine returns the manager's engine.
func (m *Manager) Engine() *Engine {
	m.once.Do(func() {
		m.backend = &StoredBackend{Store: m.Store, Name: m.Name, Refresh: m.Refresh, LockTimeout: m.LockTimeout,
			OrphanAfter: m.OrphanAfter, OrphanGrace: m.OrphanGrace, Now: m.Now, Logger: m.Logger}
		m.engine = &Engine{Name: m.Name, Backend: m.backend, Skew: m.Skew, Recheck: m.Recheck, SaveRetry: m.SaveRetry,
			Context: m.Context, Now: m.Now, Logger: m.Logger}
	})
	return m.engine
}

// Token implements Source.
func (m *Manager) Token(ctx context.Context) (*TokenSet, error) { return m.Engine().Token(ctx) }

// Invalidate implements Source.
func (m *Manager) Invalidate(ctx context.Context, seen *TokenSet) (*TokenSet, error) {
	return m.Engine().Invalidate(ctx, seen)
}

// Cached returns the in-memory copy, which may be stale; for status displays.
func (m *Manager) Cached() *TokenSet { return m.Engine().Cached() }

// Authorize stores a freshly granted token set as the next generation and
// serves it from now on.
func (m *Manager) Authorize(ctx context.Context, ts *TokenSet) error {
	e := m.Engine()
	stored, err := m.backend.Authorize(ctx, ts)
	if err != nil {
		return err
	}
	e.Authorized(stored)
	return nil
}

var _ Source = (*Manager)(nil)

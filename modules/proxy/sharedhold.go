package proxy

import (
	"context"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// SharedHolds is what a Caddy storage module implements when it can share
// upstream hold-backs between the replicas that use it (caddy.storage.redis):
// a 429 that one replica sees holds the credential back on all of them.
// With any other storage each process keeps its own holds.
type SharedHolds interface {
	// ShareHold tells every replica that name is held back until until,
	// answering status meanwhile. A shorter hold than one in force is
	// ignored.
	ShareHold(ctx context.Context, name string, until time.Time, status int) error
	// WatchHolds calls fn with every hold shared by any replica — those in
	// force when it starts, and again after the connection was lost,
	// included — until ctx ends.
	WatchHolds(ctx context.Context, fn func(name string, until time.Time, status int))
}

type sharedHoldsRef struct {
	s      SharedHolds
	logger *zap.Logger
}

// attach makes the holds follow the shared ones of ctx's storage, for as
// long as that config runs, and share the holds this process sees. Request
// handling never waits on the storage: holds are read from memory, and a
// hold is shared in the background.
func (h *holds) attach(ctx caddy.Context) {
	s, ok := ctx.Storage().(SharedHolds)
	if !ok {
		h.share.Store(nil)
		return
	}
	h.attachShared(ctx, s, ctx.Logger())
}

func (h *holds) attachShared(ctx context.Context, s SharedHolds, logger *zap.Logger) {
	h.share.Store(&sharedHoldsRef{s: s, logger: logger})
	s.WatchHolds(ctx, func(name string, until time.Time, status int) { h.set(name, until, status) })
}

func (h *holds) publish(name string, until time.Time, status int) {
	ref := h.share.Load()
	if ref == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ref.s.ShareHold(ctx, name, until, status); err != nil {
			// The hold still applies on this replica.
			ref.logger.Warn("sharing upstream hold-back", zap.String("credential", name), zap.Error(err))
		}
	}()
}

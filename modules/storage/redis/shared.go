package redisstorage

import (
	"context"
	"fmt"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// clients holds one Redis client per distinct configuration, shared by every
// config generation that uses it, so a reload keeps its connections, held
// locks and subscriptions.
var clients = caddy.NewUsagePool()

// shared is what one client carries across config reloads.
type shared struct {
	key    string
	client redis.UniversalClient
	prefix string
	logger *zap.Logger

	mu   sync.Mutex
	held map[string]*heldLock // locks this process holds, by name

	bus *bus // pub/sub fan-out, started on first subscription
}

func newShared(c redis.UniversalClient, prefix string, logger *zap.Logger) *shared {
	return &shared{client: c, prefix: prefix, logger: logger, held: map[string]*heldLock{}}
}

// Destruct stops renewals and the subscription, and closes the client. It
// runs when no config uses the client any more.
func (sh *shared) Destruct() error {
	sh.mu.Lock()
	for name, h := range sh.held {
		h.stop()
		delete(sh.held, name)
	}
	b := sh.bus
	sh.bus = nil
	sh.mu.Unlock()
	if b != nil {
		b.close()
	}
	return sh.client.Close()
}

// ctxOrBackground keeps a nil context from reaching go-redis.
func ctxOrBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// Interface guards
var _ caddy.Destructor = (*shared)(nil)

// zapLogging sends go-redis's own messages (connection pool retries) to
// Caddy's log at debug level instead of stderr; the storage logs what an
// operator must see itself, with context.
type zapLogging struct{}

func (zapLogging) Printf(_ context.Context, format string, v ...any) {
	if ce := caddy.Log().Named("storage.redis").Check(zap.DebugLevel, "go-redis"); ce != nil {
		ce.Write(zap.String("message", fmt.Sprintf(format, v...)))
	}
}

func init() { redis.SetLogger(zapLogging{}) }

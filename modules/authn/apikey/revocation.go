package apikey

import (
	"context"
	"encoding/hex"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Notifier is what a Caddy storage module implements when it can broadcast
// to every replica that shares it (caddy.storage.redis, over pub/sub).
type Notifier interface {
	// Publish sends msg on topic to every replica, this one included.
	Publish(ctx context.Context, topic, msg string) error
	// Subscribe calls fn with every message on topic, and resync whenever
	// messages may have been missed (the subscription broke or started
	// again), until ctx ends.
	Subscribe(ctx context.Context, topic string, fn func(msg string), resync func())
	// Subscribed reports whether messages are being received right now.
	Subscribed() bool
}

// revokedTopic carries "<realm> <hex SHA-256 of the key>" for every revoked
// or rotated key: the hash is what the storage already holds, never the key.
const revokedTopic = "apikey.revoked"

// notifiedCacheTTL is how long a verified key is remembered while revocations
// arrive as messages: each revocation drops the entry on every replica at
// once, so the cache may keep entries longer and the request path reads
// storage once per key and 30 s instead of once a second. Without a working
// subscription the entries live cacheTTL (polling, as with file storage).
const notifiedCacheTTL = 30 * time.Second

// watchRevocations subscribes to revocations when the storage broadcasts.
func (a *APIKey) watchRevocations(s certmagic.Storage) {
	n, ok := s.(Notifier)
	if !ok {
		return
	}
	a.notifier = n
	n.Subscribe(a.ctx, revokedTopic, func(msg string) {
		realm, h, ok := strings.Cut(msg, " ")
		b, err := hex.DecodeString(h)
		if !ok || realm != a.Realm || err != nil || len(b) != 32 {
			return
		}
		a.cache.Put([32]byte(b), nil, now().Add(notifiedCacheTTL))
	}, a.cache.Clear)
}

// cacheTTL is how long a verified key may be served from memory now.
func (a *APIKey) positiveTTL() time.Duration {
	if a.notifier != nil && a.notifier.Subscribed() {
		return notifiedCacheTTL
	}
	return cacheTTL
}

// announce tells every replica that the key with hash h is no longer valid.
func (a *APIKey) announce(h []byte) {
	if a.notifier == nil {
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
	defer cancel()
	if err := a.notifier.Publish(ctx, revokedTopic, a.Realm+" "+hex.EncodeToString(h)); err != nil {
		// Other replicas find out when their cache entries expire; without
		// a subscription those live only cacheTTL.
		a.logger.Warn("announcing API key revocation", zap.String("realm", a.Realm), zap.Error(err))
	}
}

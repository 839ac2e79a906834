package redisstorage

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// bus fans the messages of one Redis channel (`P events`) out to the
// subscribers of this process, by topic. Messages are "<topic>\x00<payload>".
// Pub/sub delivers only to connected subscribers, so each subscriber also
// gets a resync call whenever the subscription is (re)established: it reads
// the state it mirrors again, and nothing published while Redis was away is
// missed for long.
type bus struct {
	ps     *redis.PubSub
	logger *zap.Logger
	cancel context.CancelFunc
	done   chan struct{}
	up     atomic.Bool // subscribed, messages flowing

	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	topic  string
	fn     func(string)
	resync func()
}

func (s *Storage) channel() string { return s.prefix + "events" }

// Publish sends msg on topic to every replica sharing this Redis.
func (s *Storage) Publish(ctx context.Context, topic, msg string) error {
	return s.shared.client.Publish(ctxOrBackground(ctx), s.channel(), topic+"\x00"+msg).Err()
}

// Subscribe calls fn with every message published on topic, by any replica
// (this one included), and resync (if not nil) each time the subscription is
// established, after which messages may have been lost. It stops when ctx ends.
func (s *Storage) Subscribe(ctx context.Context, topic string, fn func(msg string), resync func()) {
	sh := s.shared
	sub := &subscriber{topic: topic, fn: fn, resync: resync}
	sh.mu.Lock()
	if sh.bus == nil {
		sh.bus = startBus(sh.client, s.channel(), sh.logger)
	}
	b := sh.bus
	sh.mu.Unlock()
	b.mu.Lock()
	b.subs[sub] = struct{}{}
	b.mu.Unlock()
	if resync != nil {
		// The bus may have subscribed long ago: catch up now as well.
		go resync()
	}
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.subs, sub)
		b.mu.Unlock()
	}()
}

func startBus(c redis.UniversalClient, channel string, logger *zap.Logger) *bus {
	ctx, cancel := context.WithCancel(context.Background())
	b := &bus{ps: c.Subscribe(ctx, channel), logger: logger, cancel: cancel, done: make(chan struct{}), subs: map[*subscriber]struct{}{}}
	go b.run(ctx)
	return b
}

// healthInterval: a subscription quiet this long is pinged; one that does
// not answer within another interval counts as broken (a hung connection
// sends no error).
const healthInterval = 10 * time.Second

func (b *bus) run(ctx context.Context) {
	defer close(b.done)
	backoff := 50 * time.Millisecond
	pinged := false
	for {
		msg, err := b.ps.ReceiveTimeout(ctx, healthInterval)
		if ctx.Err() != nil {
			return
		}
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			if pinged {
				b.down(err)
			}
			_ = b.ps.Ping(ctx)
			pinged = true
			continue
		}
		if err != nil {
			// go-redis reconnects and subscribes again on the next Receive.
			b.down(err)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff, pinged = 50*time.Millisecond, false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				b.up.Store(true)
				b.resync()
			}
		case *redis.Pong:
			if !b.up.Swap(true) {
				b.resync() // a hung connection came back
			}
		case *redis.Message:
			topic, payload, ok := strings.Cut(m.Payload, "\x00")
			if !ok {
				continue
			}
			for _, s := range b.snapshot() {
				if s.topic == topic {
					s.fn(payload)
				}
			}
		}
	}
}

// down marks the subscription broken: messages may be lost from now on, so
// subscribers must stop trusting what they mirror.
func (b *bus) down(err error) {
	if b.up.Swap(false) {
		b.logger.Warn("redis subscription interrupted; caches fall back to polling", zap.Error(err))
		b.resync()
	}
}

func (b *bus) resync() {
	for _, s := range b.snapshot() {
		if s.resync != nil {
			s.resync()
		}
	}
}

func (b *bus) snapshot() []*subscriber {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*subscriber, 0, len(b.subs))
	for s := range b.subs {
		out = append(out, s)
	}
	return out
}

func (b *bus) close() {
	b.cancel()
	_ = b.ps.Close()
	<-b.done
}

// Subscribed reports whether this process's subscription is established,
// so that messages are being received.
func (s *Storage) Subscribed() bool {
	s.shared.mu.Lock()
	b := s.shared.bus
	s.shared.mu.Unlock()
	return b != nil && b.up.Load()
}

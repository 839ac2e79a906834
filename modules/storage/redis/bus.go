package redisstorage

import (
	"context"
	"strings"
	"sync"
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

func (b *bus) run(ctx context.Context) {
	defer close(b.done)
	backoff := 50 * time.Millisecond
	for {
		msg, err := b.ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// go-redis reconnects and subscribes again on the next Receive.
			b.logger.Debug("redis subscription interrupted", zap.Error(err))
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
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				for _, s := range b.snapshot() {
					if s.resync != nil {
						s.resync()
					}
				}
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

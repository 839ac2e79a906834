package redisstorage

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Locks: `P lock:<name>` holds "<owner>:<fence>" with a time to live of the
// lease. The holder renews the lease every third of it while it holds the
// lock, so a lock lives as long as its holder does and a holder that dies
// (kill -9, a partition) frees it within one lease — unlike a lock file that
// only looks at timestamps, no peer can keep it alive for the dead holder.
// The fence is a counter (`P fence`) that grows with every acquisition:
// renewals and releases check the whole value, so a holder whose lease ran
// out can neither extend nor release its successor's lock, and work can be
// ordered by fence where that matters.

func (s *Storage) lockKey(name string) string { return s.prefix + "lock:" + name }

type heldLock struct {
	value  string // "<owner>:<fence>"
	fence  int64
	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends the renewals and waits for them to end.
func (h *heldLock) stop() {
	h.cancel()
	<-h.done
}

var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local f = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. f, 'PX', ARGV[2])
return f`)

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Lock takes the named lock, waiting until it is free or ctx ends.
func (s *Storage) Lock(ctx context.Context, name string) error {
	ctx = ctxOrBackground(ctx)
	wait := 20 * time.Millisecond
	for {
		ok, err := s.TryLock(ctx, name)
		if ok {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			// Redis unreachable: keep trying until the caller gives up,
			// as a file lock would wait for a stale lock.
			s.logger.Debug("taking lock", zap.String("lock", name), zap.Error(err))
		}
		// Poll with a growing, jittered interval: short enough that a freed
		// lock is taken quickly, long enough not to flood Redis.
		t := time.NewTimer(wait + rand.N(wait/2))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("taking lock %s: %w", name, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, max(s.lease/10, 20*time.Millisecond), 250*time.Millisecond)
	}
}

// TryLock takes the named lock if it is free.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	ctx = ctxOrBackground(ctx)
	owner := make([]byte, 16)
	_, _ = crand.Read(owner)
	fence, err := acquireScript.Run(ctx, s.shared.client, []string{s.lockKey(name), s.prefix + "fence"},
		hex.EncodeToString(owner), s.lease.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("taking lock %s: %w", name, err)
	}
	if fence == 0 {
		return false, nil
	}
	rctx, cancel := context.WithCancel(context.Background())
	h := &heldLock{value: hex.EncodeToString(owner) + ":" + strconv.FormatInt(fence, 10), fence: fence, cancel: cancel, done: make(chan struct{})}
	sh := s.shared
	sh.mu.Lock()
	if old := sh.held[name]; old != nil {
		// The process lost this lock (its lease ran out) and took it again.
		old.cancel()
	}
	sh.held[name] = h
	sh.mu.Unlock()
	go s.renew(rctx, name, h)
	return true, nil
}

// renew extends the lease every third of it until the lock is released, the
// lock turns out to be lost, or the client goes.
func (s *Storage) renew(ctx context.Context, name string, h *heldLock) {
	defer close(h.done)
	tick := time.NewTicker(s.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, s.lease/3)
		n, err := renewScript.Run(rctx, s.shared.client, []string{s.lockKey(name)}, h.value, s.lease.Milliseconds()).Int()
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.logger.Warn("renewing lock lease", zap.String("lock", name), zap.Error(err))
			continue
		}
		if n == 0 {
			s.logger.Warn("lock lost: its lease ran out before it could be renewed", zap.String("lock", name), zap.Int64("fence", h.fence))
			return
		}
	}
}

// Unlock releases the named lock held by this process.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	sh := s.shared
	sh.mu.Lock()
	h := sh.held[name]
	delete(sh.held, name)
	sh.mu.Unlock()
	if h == nil {
		return fmt.Errorf("unlocking %s: not held by this process", name)
	}
	h.stop()
	n, err := releaseScript.Run(ctxOrBackground(ctx), sh.client, []string{s.lockKey(name)}, h.value).Int()
	if err != nil {
		// The lease frees it anyway.
		return fmt.Errorf("unlocking %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("unlocking %s: the lock had been lost (lease expired)", name)
	}
	return nil
}

// FencingToken returns the fence of a lock this process holds: it grows with
// every acquisition of any lock of this storage, so a writer can tell that a
// later holder exists.
func (s *Storage) FencingToken(name string) (int64, bool) {
	s.shared.mu.Lock()
	defer s.shared.mu.Unlock()
	if h := s.shared.held[name]; h != nil {
		return h.fence, true
	}
	return 0, false
}

package policy

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// SharedLimiter is what a Caddy storage module implements when it can enforce
// rate limits across every replica that shares it (caddy.storage.redis). The
// policy uses it when the configured storage has it; otherwise each process
// keeps its own buckets.
type SharedLimiter interface {
	// TakeTokens checks one token bucket per key (perSecond[i] tokens a
	// second, at most burst[i]) and, only if every bucket holds a token,
	// takes one from each, atomically and in one round trip. It returns -1
	// when the request is admitted, else the index of the first bucket that
	// refused and how long until it holds a token again.
	TakeTokens(ctx context.Context, keys []string, perSecond []float64, burst []int) (refused int, wait time.Duration, err error)
	// LimitsFailOpen says what to do while the storage cannot be reached:
	// true, fall back to this replica's own buckets; false, refuse.
	LimitsFailOpen() bool
}

// sharedLimiterOf returns the configured storage's shared limiter, if any.
func sharedLimiterOf(ctx caddy.Context) SharedLimiter {
	if s, ok := ctx.Storage().(SharedLimiter); ok {
		return s
	}
	return nil
}

// limitUnavailable is the scope of a refusal because shared limits could not
// be checked (storage unreachable, failing closed).
const limitUnavailable = "unavailable"

type limitCheck struct {
	key, scope, text string
	r                *rate
}

// lastSharedWarn throttles the warning about unreachable shared limits to one
// every 10 s per process, so an outage does not flood the log.
var lastSharedWarn atomic.Int64

// apply runs the checks: on the shared limiter when there is one (one round
// trip for all of them), else — or when it is unreachable and fails open —
// on this process's buckets.
func (h *Handler) apply(ctx context.Context, checks []limitCheck, t time.Time) (string, time.Duration, string) {
	if len(checks) == 0 {
		return "", 0, ""
	}
	if h.shared != nil {
		keys := make([]string, len(checks))
		per := make([]float64, len(checks))
		burst := make([]int, len(checks))
		for i, c := range checks {
			keys[i], per[i], burst[i] = "policy:"+c.key, c.r.perSecond, int(c.r.burst)
		}
		i, wait, err := h.shared.TakeTokens(ctx, keys, per, burst)
		if err == nil {
			if i < 0 {
				return "", 0, ""
			}
			return checks[i].scope, wait, checks[i].text + " exceeded"
		}
		open := h.shared.LimitsFailOpen()
		if last := lastSharedWarn.Load(); t.UnixNano()-last > int64(10*time.Second) && lastSharedWarn.CompareAndSwap(last, t.UnixNano()) {
			h.logger.Warn("shared rate limits unreachable", zap.Bool("fail_open", open), zap.Error(err))
		}
		if !open {
			return limitUnavailable, time.Second, "shared rate limits cannot be checked"
		}
	}
	// All or nothing, so a refused request costs no bucket anything.
	if i, wait := h.limiter.takeAll(checks, t); i >= 0 {
		return checks[i].scope, wait, checks[i].text + " exceeded"
	}
	return "", 0, ""
}

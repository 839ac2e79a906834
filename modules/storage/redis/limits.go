package redisstorage

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript is the generic cell rate algorithm over several buckets at once:
// each bucket is one number, its theoretical arrival time (TAT, microseconds
// on Redis's clock, so replicas' clocks do not matter). A request is admitted
// when, for every bucket, TAT + T - burst*T <= now (T = the emission
// interval); then every TAT moves on by T. Checking all before changing any
// means a refused request costs no bucket anything, and the script runs
// atomically in one round trip. A bucket key expires when its TAT is past, as
// a full bucket needs no memory.
//
// KEYS[i]: bucket; ARGV[2i-1]: T in microseconds; ARGV[2i]: burst.
// Returns {0, 0} when admitted, else {i, microseconds to wait}.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
for i = 1, #KEYS do
  local T = tonumber(ARGV[2*i-1])
  local burst = tonumber(ARGV[2*i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local allow_at = tat + T - burst * T
  if now < allow_at then return {i, math.ceil(allow_at - now)} end
  tats[i] = tat + T
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1)
end
return {0, 0}`)

// TakeTokens implements the policy's SharedLimiter: see gcraScript.
func (s *Storage) TakeTokens(ctx context.Context, keys []string, perSecond []float64, burst []int) (int, time.Duration, error) {
	if len(keys) == 0 {
		return -1, 0, nil
	}
	rkeys := make([]string, len(keys))
	args := make([]any, 0, 2*len(keys))
	for i, k := range keys {
		if perSecond[i] <= 0 || burst[i] < 1 {
			return 0, 0, fmt.Errorf("rate limit %s: invalid rate", k)
		}
		rkeys[i] = s.prefix + "rl:" + k
		args = append(args, strconv.FormatInt(int64(math.Ceil(1e6/perSecond[i])), 10), burst[i])
	}
	// A limit that cannot be checked quickly is treated as unreachable:
	// requests must not queue behind a slow Redis.
	ctx, cancel := context.WithTimeout(ctxOrBackground(ctx), time.Duration(s.Timeout))
	defer cancel()
	res, err := gcraScript.Run(ctx, s.shared.client, rkeys, args...).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("shared rate limit: %w", err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("shared rate limit: unexpected reply %v", res)
	}
	if res[0] == 0 {
		return -1, 0, nil
	}
	return int(res[0]) - 1, time.Duration(res[1]) * time.Microsecond, nil
}

// LimitsFailOpen implements the policy's SharedLimiter: `limits_on_error`.
func (s *Storage) LimitsFailOpen() bool { return s.LimitsOnError != "closed" }

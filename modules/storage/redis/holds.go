package redisstorage

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Upstream hold-backs: `P holds` is a hash credential name → "<until, unix
// ms>:<status>"; a new or longer hold is written and announced on the bus in
// one script. Replicas mirror the holds in memory (the request path reads no
// Redis), from the announcements and from the hash whenever their
// subscription (re)starts.

const holdTopic = "hold"

type holdMsg struct {
	Name   string `json:"n"`
	Until  int64  `json:"u"`
	Status int    `json:"s"`
}

var holdScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local u = tonumber(string.match(cur, '^(%d+)'))
  if u and u >= tonumber(ARGV[2]) then return 0 end
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local u = tonumber(string.match(all[i+1], '^(%d+)'))
  if u and u < tonumber(ARGV[4]) then redis.call('HDEL', KEYS[1], all[i]) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1`)

func (s *Storage) holdsKey() string { return s.prefix + "holds" }

// ShareHold implements the proxy's SharedHolds.
func (s *Storage) ShareHold(ctx context.Context, name string, until time.Time, status int) error {
	msg, _ := json.Marshal(holdMsg{Name: name, Until: until.UnixMilli(), Status: status})
	return holdScript.Run(ctxOrBackground(ctx), s.shared.client, []string{s.holdsKey()},
		name, until.UnixMilli(), status, time.Now().UnixMilli(), s.channel(), holdTopic+"\x00"+string(msg)).Err()
}

// WatchHolds implements the proxy's SharedHolds.
func (s *Storage) WatchHolds(ctx context.Context, fn func(name string, until time.Time, status int)) {
	s.Subscribe(ctx, holdTopic, func(payload string) {
		var m holdMsg
		if json.Unmarshal([]byte(payload), &m) == nil && m.Name != "" {
			fn(m.Name, time.UnixMilli(m.Until), m.Status)
		}
	}, func() {
		rctx, cancel := context.WithTimeout(ctx, time.Duration(s.Timeout))
		defer cancel()
		all, err := s.shared.client.HGetAll(rctx, s.holdsKey()).Result()
		if err != nil {
			return // the next (re)subscription reads again
		}
		t := time.Now()
		for name, v := range all {
			u, st, ok := strings.Cut(v, ":")
			ms, err1 := strconv.ParseInt(u, 10, 64)
			status, err2 := strconv.Atoi(st)
			if ok && err1 == nil && err2 == nil && time.UnixMilli(ms).After(t) {
				fn(name, time.UnixMilli(ms), status)
			}
		}
	})
}

package redisstorage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

// Layout under the hash-tagged prefix P (`{atlasgate}:`):
//
//	P v:<key>   hash {d: value, m: modified, unix ms}: one stored "file"
//	P idx       sorted set of every stored key (all scores 0, ordered by
//	            bytes), which gives directories, Exists and List without
//	            scanning the keyspace
//
// Writes that touch both run as one script, so the index never disagrees with
// the values.

func (s *Storage) valueKey(key string) string { return s.prefix + "v:" + key }
func (s *Storage) indexKey() string           { return s.prefix + "idx" }

// under is the lexicographic range of the keys below directory dir ("" is
// the root): every key that starts with dir + "/" sorts at or after "dir/"
// and before "dir0" ('0' follows '/').
func under(dir string) (string, string) {
	if dir == "" {
		return "-", "+"
	}
	return "[" + dir + "/", "(" + dir + "0"
}

func nowMillis() string { return strconv.FormatInt(time.Now().UnixMilli(), 10) }

var storeScript = redis.NewScript(`
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'm', ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1`)

// Store puts value at key.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := storeScript.Run(ctxOrBackground(ctx), s.shared.client, []string{s.valueKey(key), s.indexKey()}, key, value, nowMillis()).Err()
	if err != nil {
		return fmt.Errorf("redis storage: storing %s: %w", key, err)
	}
	return nil
}

// Load returns the value at key, or fs.ErrNotExist.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	v, err := s.shared.client.HGet(ctxOrBackground(ctx), s.valueKey(key), "d").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fs.ErrNotExist
	}
	if err != nil {
		return nil, fmt.Errorf("redis storage: loading %s: %w", key, err)
	}
	return v, nil
}

var deleteScript = redis.NewScript(`
local n = redis.call('DEL', ARGV[1] .. ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[2])
local kids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4])
for _, k in ipairs(kids) do redis.call('DEL', ARGV[1] .. k) end
if #kids > 0 then redis.call('ZREMRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4]) end
return n + #kids`)

// Delete removes key and, if it is a directory, everything under it. A
// missing key is not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	lo, hi := under(key)
	err := deleteScript.Run(ctxOrBackground(ctx), s.shared.client, []string{s.indexKey()}, s.prefix+"v:", key, lo, hi).Err()
	if err != nil {
		return fmt.Errorf("redis storage: deleting %s: %w", key, err)
	}
	return nil
}

// Exists reports whether key is a stored value or a directory of some.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	ctx = ctxOrBackground(ctx)
	n, err := s.shared.client.Exists(ctx, s.valueKey(key)).Result()
	if err == nil && n > 0 {
		return true
	}
	return s.isDir(ctx, key)
}

func (s *Storage) isDir(ctx context.Context, key string) bool {
	lo, hi := under(key)
	kids, err := s.shared.client.ZRangeByLex(ctx, s.indexKey(), &redis.ZRangeBy{Min: lo, Max: hi, Count: 1}).Result()
	return err == nil && len(kids) > 0
}

// List returns the keys under dir: its direct children (values and
// directories) or, recursive, every value and directory below it, as
// certmagic's FileStorage does. A directory without values does not exist.
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	dir = strings.Trim(dir, "/")
	lo, hi := under(dir)
	keys, err := s.shared.client.ZRangeByLex(ctxOrBackground(ctx), s.indexKey(), &redis.ZRangeBy{Min: lo, Max: hi}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis storage: listing %s: %w", dir, err)
	}
	if len(keys) == 0 {
		return nil, fs.ErrNotExist
	}
	base := ""
	if dir != "" {
		base = dir + "/"
	}
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, k := range keys {
		rel := strings.TrimPrefix(k, base)
		parts := strings.Split(rel, "/")
		if !recursive {
			add(base + parts[0])
			continue
		}
		for i := 1; i <= len(parts); i++ {
			add(base + strings.Join(parts[:i], "/"))
		}
	}
	return out, nil
}

// Stat describes key: a value (size, modified) or a directory.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	ctx = ctxOrBackground(ctx)
	pipe := s.shared.client.Pipeline()
	size := pipe.HStrLen(ctx, s.valueKey(key), "d")
	mod := pipe.HGet(ctx, s.valueKey(key), "m")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return certmagic.KeyInfo{}, fmt.Errorf("redis storage: stat %s: %w", key, err)
	}
	if ms, err := mod.Int64(); err == nil {
		return certmagic.KeyInfo{Key: key, Modified: time.UnixMilli(ms), Size: size.Val(), IsTerminal: true}, nil
	}
	if s.isDir(ctx, key) {
		return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{}, fs.ErrNotExist
}

var casScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'd')
if ARGV[4] == '0' then
  if cur then return 0 end
elseif (not cur) or cur ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'd', ARGV[3], 'm', ARGV[5])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1`)

// CompareAndSwap stores value at key only if the key's current value is
// exactly old (old == nil: only if the key does not exist). It reports
// false, nil when the current value differs.
//
// One script compares and writes, so no other writer can slip in between.
func (s *Storage) CompareAndSwap(ctx context.Context, key string, old, value []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	hasOld := "1"
	if old == nil {
		hasOld = "0"
	}
	n, err := casScript.Run(ctxOrBackground(ctx), s.shared.client, []string{s.valueKey(key), s.indexKey()},
		key, old, value, hasOld, nowMillis()).Int()
	if err != nil {
		return false, fmt.Errorf("redis storage: compare-and-swap %s: %w", key, err)
	}
	return n == 1, nil
}

func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("redis storage: invalid key %q", key)
	}
	return nil
}

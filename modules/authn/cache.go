package authn

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

// Cache remembers verification results by a hash of the credential (the
// credential itself is never kept), bounded in size (least recently used
// entries go first) and never past each entry's own expiry.
type Cache[V any] struct {
	mu      sync.Mutex
	max     int
	entries map[[32]byte]*list.Element
	lru     *list.List
	now     func() time.Time
}

type cacheEntry[V any] struct {
	key     [32]byte
	val     V
	expires time.Time
}

// NewCache returns a cache holding at most max entries (default 10,000).
func NewCache[V any](max int) *Cache[V] {
	if max <= 0 {
		max = 10000
	}
	return &Cache[V]{max: max, entries: make(map[[32]byte]*list.Element), lru: list.New(), now: time.Now}
}

// Key hashes a credential into a cache key. The hash reads the string's bytes
// in place: a []byte conversion would copy every token (a JWT is about a
// kilobyte) on every request; sha256 never writes to its input.
func Key(credential string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(credential), len(credential)))
}

// Get returns the live entry for key.
func (c *Cache[V]) Get(key [32]byte) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.entries[key]
	if !ok {
		return zero, false
	}
	e := el.Value.(*cacheEntry[V])
	if !c.now().Before(e.expires) {
		c.lru.Remove(el)
		delete(c.entries, key)
		return zero, false
	}
	c.lru.MoveToFront(el)
	return e.val, true
}

// Put stores val until expires; an expiry in the past stores nothing.
func (c *Cache[V]) Put(key [32]byte, val V, expires time.Time) {
	if !c.now().Before(expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry[V])
		e.val, e.expires = val, expires
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.entries, old.Value.(*cacheEntry[V]).key)
	}
	c.entries[key] = c.lru.PushFront(&cacheEntry[V]{key: key, val: val, expires: expires})
}

// Len returns the number of entries, live or not yet evicted.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// SetClock replaces the clock (tests).
func (c *Cache[V]) SetClock(now func() time.Time) { c.now = now }

// Clear drops every entry (e.g. when invalidation messages may have been
// missed).
func (c *Cache[V]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	c.lru.Init()
}

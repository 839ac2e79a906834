package authn

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkCacheMemory: the verification cache after 100,000 distinct
// callers, each with a JWT-sized identity (user, subject, issuer, two groups,
// a few claims). The cache keeps at most its size (default 10,000) entries;
// reports bytes per cached caller and the entries kept.
func BenchmarkCacheMemory(b *testing.B) {
	const callers = 100_000
	exp := time.Now().Add(time.Hour)
	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		c := NewCache[*Identity](0)
		for i := range callers {
			user := fmt.Sprintf("user-%06d@example.com", i)
			c.Put(Key(fmt.Sprintf("token-%d", i)), &Identity{
				Kind: "jwt", User: user, Subject: fmt.Sprintf("%08x-sub", i), Issuer: "https://login.example.com/tenant/v2.0",
				Groups: []string{"dev", "ops"}, Claims: map[string]any{"sub": user, "aud": "atlasgate", "exp": float64(exp.Unix())},
				ExpiresAt: exp,
			}, exp)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/float64(c.Len()), "bytes/entry")
		b.ReportMetric(float64(c.Len()), "entries")
		runtime.KeepAlive(c)
	}
}

// TestCacheBounded: 100,000 callers leave at most the cache's size behind,
// the most recent ones.
func TestCacheBounded(t *testing.T) {
	c := NewCache[int](0)
	exp := time.Now().Add(time.Hour)
	for i := range 100_000 {
		c.Put(Key(fmt.Sprint(i)), i, exp)
	}
	if c.Len() != 10_000 {
		t.Errorf("cache holds %d entries, want its size 10,000", c.Len())
	}
	if v, ok := c.Get(Key("99999")); !ok || v != 99999 {
		t.Errorf("the latest caller is not cached: %v %v", v, ok)
	}
	if _, ok := c.Get(Key("0")); ok {
		t.Errorf("the oldest caller is still cached")
	}
}

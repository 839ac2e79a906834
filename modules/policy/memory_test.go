package policy

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// heap is the live heap after a full collection.
func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkLimiterMemory: identity rate-limit state of 100,000 distinct
// callers (keys as identityKey builds them), each having made one request
// under a 100/m limit, so no bucket is idle yet. Reports bytes per caller and
// the buckets kept; `make bench` prints it.
func BenchmarkLimiterMemory(b *testing.B) {
	const callers = 100_000
	r, err := Rate{Requests: 100, Per: 60_000_000_000}.compile()
	if err != nil {
		b.Fatal(err)
	}
	t := time.Unix(1_800_000_000, 0)
	for b.Loop() {
		before := heap()
		l := newLimiter()
		for i := range callers {
			// The key, as identityKey builds it per request, is kept by the map.
			l.take(fmt.Sprintf("entra/user-%06d@example.com", i), r, t)
		}
		after := heap()
		b.ReportMetric(float64(after-before)/callers, "bytes/caller")
		b.ReportMetric(float64(len(l.buckets)), "buckets")
		runtime.KeepAlive(l)
	}
}

// TestLimiterForgetsIdleCallers: once more than maxIdleBuckets callers have
// buckets, those whose buckets have refilled are dropped (their next request
// starts from a full bucket, as it would anyway), so the state of callers
// that come once stays bounded.
func TestLimiterForgetsIdleCallers(t *testing.T) {
	r, err := Rate{Requests: 10, Per: 1_000_000_000}.compile()
	if err != nil {
		t.Fatal(err)
	}
	l := newLimiter()
	start := time.Unix(1_800_000_000, 0)
	for i := range 3 * maxIdleBuckets {
		// One caller per millisecond: a bucket refills within a second.
		l.take(fmt.Sprintf("keys/caller-%d", i), r, start.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(l.buckets); n > maxIdleBuckets+2048 {
		t.Errorf("%d buckets kept for %d one-time callers; want at most about %d", n, 3*maxIdleBuckets, maxIdleBuckets)
	}
}

// TestLimiterSweepKeepsSlowBuckets: a sweep triggered by many callers of a
// fast limit must not forget the empty bucket of a slow limit (that would hand
// its owner a fresh burst early).
func TestLimiterSweepKeepsSlowBuckets(t *testing.T) {
	fast, _ := Rate{Requests: 100, Per: 1_000_000_000}.compile()
	slow, _ := Rate{Requests: 1, Per: 3_600_000_000_000}.compile() // 1/h
	l := newLimiter()
	start := time.Unix(1_800_000_000, 0)
	if ok, _ := l.take("keys/slow", slow, start); !ok {
		t.Fatal("first request refused")
	}
	for i := range maxIdleBuckets + 2048 {
		l.take(fmt.Sprintf("keys/caller-%d", i), fast, start.Add(time.Minute))
	}
	if ok, _ := l.take("keys/slow", slow, start.Add(2*time.Minute)); ok {
		t.Error("the slow limit's caller got a second request within the hour after a sweep")
	}
}

// TestRefusedRequestCostsNoBucket: fifty requests race for the last token of
// a caller's bucket while their credential's bucket is full. One passes; the
// others are refused and the credential's bucket has paid for one request
// only — the look and the take are one step.
func TestRefusedRequestCostsNoBucket(t *testing.T) {
	l := newLimiter()
	now := time.Unix(1_800_000_000, 0)
	credential := &rate{perSecond: 1.0 / 3600, burst: 100}
	caller := &rate{perSecond: 1.0 / 3600, burst: 1}
	checks := []limitCheck{{key: "cred:jira", r: credential}, {key: "id:alice", r: caller}}
	var passed atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i, _ := l.takeAll(checks, now); i < 0 {
				passed.Add(1)
			}
		}()
	}
	wg.Wait()
	if passed.Load() != 1 {
		t.Fatalf("%d requests passed, want 1", passed.Load())
	}
	if got := l.buckets["cred:jira"].tokens; got != 99 {
		t.Fatalf("the credential's bucket holds %v tokens, want 99: refused requests were charged", got)
	}
}

package redisstorage

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/redistest"
)

// Two replicas (two clients) take turns on one lock: never both inside.
func TestLockMutualExclusion(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv.Addr, "locks", 0), open(t, srv.Addr, "locks", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var inside, max, total atomic.Int32
	var fences sync.Map
	var wg sync.WaitGroup
	for i := range 8 {
		s := []*Storage{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if err := s.Lock(ctx, "refresh"); err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				for {
					m := max.Load()
					if n <= m || max.CompareAndSwap(m, n) {
						break
					}
				}
				f, ok := s.FencingToken("refresh")
				if !ok {
					t.Error("no fencing token while holding the lock")
				}
				if _, dup := fences.LoadOrStore(f, true); dup {
					t.Errorf("fencing token %d handed out twice", f)
				}
				total.Add(1)
				inside.Add(-1)
				if err := s.Unlock(ctx, "refresh"); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if max.Load() != 1 || total.Load() != 80 {
		t.Fatalf("at most %d holders at once (want 1), %d critical sections (want 80)", max.Load(), total.Load())
	}
	if ok, _ := a.TryLock(ctx, "refresh"); !ok {
		t.Fatal("lock not free after every holder unlocked")
	}
	if ok, _ := b.TryLock(ctx, "refresh"); ok {
		t.Fatal("TryLock took a held lock")
	}
}

// A holder that crashes (stops renewing without unlocking) frees the lock
// when its lease runs out; it cannot then release its successor's lock.
func TestLockFreedAfterCrashedHolder(t *testing.T) {
	srv := redistest.Start(t)
	lease := time.Second
	a, b := open(t, srv.Addr, "crash", lease), open(t, srv.Addr, "crash", lease)
	ctx := context.Background()
	if err := a.Lock(ctx, "refresh"); err != nil {
		t.Fatal(err)
	}
	fa, _ := a.FencingToken("refresh")
	// The crash: renewals stop, nothing is released.
	a.shared.mu.Lock()
	a.shared.held["refresh"].stop()
	a.shared.mu.Unlock()

	// b waits for the lock; the lease (1s) frees it, well inside 10 leases.
	wctx, cancel := context.WithTimeout(ctx, 10*lease)
	defer cancel()
	if err := b.Lock(wctx, "refresh"); err != nil {
		t.Fatalf("the lock of a crashed holder was not freed within its lease: %v", err)
	}
	fb, _ := b.FencingToken("refresh")
	if fb <= fa {
		t.Fatalf("fencing token of the new holder %d is not above the crashed holder's %d", fb, fa)
	}
	// The old holder coming back cannot release the new holder's lock.
	if err := a.Unlock(ctx, "refresh"); err == nil {
		t.Fatal("a holder whose lease ran out released the lock")
	}
	if ok, _ := a.TryLock(ctx, "refresh"); ok {
		t.Fatal("the new holder's lock was released by the old holder")
	}
	if err := b.Unlock(ctx, "refresh"); err != nil {
		t.Fatal(err)
	}
}

// A live holder keeps its lock far beyond the lease: renewals extend it.
func TestLockRenewedWhileHeld(t *testing.T) {
	srv := redistest.Start(t)
	lease := time.Second
	a, b := open(t, srv.Addr, "renew", lease), open(t, srv.Addr, "renew", lease)
	ctx := context.Background()
	if err := a.Lock(ctx, "refresh"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Watch the lease: each renewal raises its remaining time again. Wait for
	// three renewals and until more than three leases have passed.
	renewals, last := 0, time.Duration(1<<62)
	deadline := time.Now().Add(30 * time.Second)
	for renewals < 3 || time.Since(start) < 3*lease {
		ttl, err := a.shared.client.PTTL(ctx, a.lockKey("refresh")).Result()
		if err != nil || ttl <= 0 {
			t.Fatalf("lock lost while held: ttl %v, %v", ttl, err)
		}
		if ttl > last {
			renewals++
		}
		last = ttl
		if ok, _ := b.TryLock(ctx, "refresh"); ok {
			t.Fatal("another replica took a lock that is held and renewed")
		}
		if time.Now().After(deadline) {
			t.Fatalf("saw %d renewals in 30s", renewals)
		}
		time.Sleep(50 * time.Millisecond) // sampling the lease, not synchronising
	}
	if err := a.Unlock(ctx, "refresh"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.TryLock(ctx, "refresh"); !ok {
		t.Fatal("lock not free after unlock")
	}
}

package credentials

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/atlasgate/atlasgate/modules/tokenstore"
)

func userManagers(t testing.TB, max int) (*userEngines, func(string) *tokenstore.Manager) {
	st, err := tokenstore.New(&certmagic.FileStorage{Path: t.TempDir()}, bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return newUserEngines(max), func(name string) *tokenstore.Manager {
		return &tokenstore.Manager{Store: st, Name: name}
	}
}

// The per-user cache stays bounded, and a caller without a grant is
// answered from the cache ("no grant") instead of storage every time.
func TestUserEnginesBoundedWithNegativeCache(t *testing.T) {
	users, mk := userManagers(t, 100)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		m := users.get(fmt.Sprintf("u%d", i), mk)
		if _, err := m.Token(ctx); !errors.Is(err, tokenstore.ErrUnauthorized) {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if users.len() != 100 {
		t.Fatalf("%d managers cached for 1,000 callers, bound 100", users.len())
	}
	if users.peek("u0") != nil || users.peek("u999") == nil {
		t.Error("the least recently used callers were not the ones evicted")
	}
}

// BenchmarkPerUserMemory measures the memory of per-user state for 100,000
// distinct callers who never authorized (each answered once): with the
// bound, and per cached caller without it.
func BenchmarkPerUserMemory(b *testing.B) {
	for _, max := range []int{maxUserEngines, 100000} {
		b.Run(fmt.Sprintf("bound=%d", max), func(b *testing.B) {
			ctx := context.Background()
			for n := 0; n < b.N; n++ {
				users, mk := userManagers(b, max)
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for i := 0; i < 100000; i++ {
					users.get(fmt.Sprintf("oauth-jira/users/%032x", i), mk).Token(ctx)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/100k-callers")
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(users.len()), "B/cached-caller")
				runtime.KeepAlive(users)
			}
		})
	}
}

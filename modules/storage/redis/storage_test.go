package redisstorage

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/integration/redistest"
)

// open returns a storage with its own client (as another replica would
// have), on Redis at addr.
func open(t *testing.T, addr, prefix string, lease time.Duration) *Storage {
	t.Helper()
	s := &Storage{Addresses: []string{addr}, KeyPrefix: prefix, LockLease: caddy.Duration(lease)}
	opts, key, err := s.options()
	if err != nil {
		t.Fatal(err)
	}
	s.prefix, s.lease, s.logger = "{"+s.KeyPrefix+"}:", time.Duration(s.LockLease), zap.NewNop()
	s.shared = newShared(redis.NewUniversalClient(opts), s.prefix, s.logger)
	s.shared.key = key
	t.Cleanup(func() { _ = s.shared.Destruct() })
	return s
}

func TestStorageContract(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.Addr, "contract", 0)
	ctx := context.Background()

	if _, err := s.Load(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Stat(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat of a missing key: %v", err)
	}
	if _, err := s.List(ctx, "nope", true); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("List of a missing directory: %v", err)
	}
	files := map[string]string{
		"certificates/acme/a.example/a.example.crt": "cert",
		"certificates/acme/a.example/a.example.key": "key",
		"certificates/acme/b.example/b.example.crt": "cert b",
		"atlasgate/tokens/oauth-jira.json":          "token",
		"atlasgate/tokens0":                         "not under tokens/",
	}
	for k, v := range files {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range files {
		got, err := s.Load(ctx, k)
		if err != nil || string(got) != v {
			t.Fatalf("Load %s = %q, %v; want %q", k, got, err, v)
		}
	}
	// Overwrite.
	if err := s.Store(ctx, "atlasgate/tokens/oauth-jira.json", []byte("token 2")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(ctx, "atlasgate/tokens/oauth-jira.json"); string(got) != "token 2" {
		t.Fatalf("after overwrite: %q", got)
	}

	for _, k := range []string{"certificates", "certificates/acme/a.example", "atlasgate/tokens/oauth-jira.json"} {
		if !s.Exists(ctx, k) {
			t.Errorf("Exists(%s) = false", k)
		}
	}
	for _, k := range []string{"certificates/acme/c.example", "certificates/ac", "atlasgate/tokens/oauth"} {
		if s.Exists(ctx, k) {
			t.Errorf("Exists(%s) = true", k)
		}
	}

	got, err := s.List(ctx, "certificates/acme", false)
	want := []string{"certificates/acme/a.example", "certificates/acme/b.example"}
	if err != nil || !slices.Equal(sorted(got), want) {
		t.Fatalf("List non-recursive = %v, %v; want %v", got, err, want)
	}
	got, err = s.List(ctx, "certificates", true)
	want = []string{"certificates/acme", "certificates/acme/a.example", "certificates/acme/a.example/a.example.crt",
		"certificates/acme/a.example/a.example.key", "certificates/acme/b.example", "certificates/acme/b.example/b.example.crt"}
	if err != nil || !slices.Equal(sorted(got), want) {
		t.Fatalf("List recursive = %v, %v; want %v", got, err, want)
	}
	got, _ = s.List(ctx, "atlasgate/tokens", false)
	if !slices.Equal(got, []string{"atlasgate/tokens/oauth-jira.json"}) {
		t.Fatalf("List must not mix a sibling with a longer name: %v", got)
	}

	before := time.Now().Add(-time.Second)
	fi, err := s.Stat(ctx, "certificates/acme/b.example/b.example.crt")
	if err != nil || !fi.IsTerminal || fi.Size != int64(len("cert b")) || fi.Modified.Before(before) || fi.Key != "certificates/acme/b.example/b.example.crt" {
		t.Fatalf("Stat of a file = %+v, %v", fi, err)
	}
	if fi, err := s.Stat(ctx, "certificates/acme"); err != nil || fi.IsTerminal {
		t.Fatalf("Stat of a directory = %+v, %v", fi, err)
	}

	// Delete: a file, then a directory with everything under it; a missing key is no error.
	if err := s.Delete(ctx, "certificates/acme/a.example/a.example.key"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/acme/a.example/a.example.key") || !s.Exists(ctx, "certificates/acme/a.example") {
		t.Fatal("deleting a file removed too little or too much")
	}
	if err := s.Delete(ctx, "certificates/acme"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates") || s.Exists(ctx, "certificates/acme/b.example/b.example.crt") {
		t.Fatal("deleting a directory left keys behind")
	}
	if err := s.Delete(ctx, "certificates/acme"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	if got, _ := s.Load(ctx, "atlasgate/tokens0"); string(got) != "not under tokens/" {
		t.Fatal("a sibling was deleted")
	}

	// Another prefix on the same Redis sees nothing of this one.
	other := open(t, srv.Addr, "other", 0)
	if other.Exists(ctx, "atlasgate/tokens/oauth-jira.json") {
		t.Fatal("key_prefix does not separate gateways")
	}
}

func TestCompareAndSwap(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.Addr, "cas", 0)
	ctx := context.Background()

	ok, err := s.CompareAndSwap(ctx, "k", nil, []byte("g1"))
	if err != nil || !ok {
		t.Fatalf("create: %v %v", ok, err)
	}
	if ok, _ := s.CompareAndSwap(ctx, "k", nil, []byte("x")); ok {
		t.Fatal("create over an existing key succeeded")
	}
	if ok, _ := s.CompareAndSwap(ctx, "k", []byte("g0"), []byte("x")); ok {
		t.Fatal("a stale writer replaced a newer value")
	}
	if ok, _ := s.CompareAndSwap(ctx, "k", []byte("g1"), []byte("g2")); !ok {
		t.Fatal("swap from the current value failed")
	}
	if v, _ := s.Load(ctx, "k"); string(v) != "g2" {
		t.Fatalf("value %q", v)
	}
	if ok, _ := s.CompareAndSwap(ctx, "missing", []byte("g1"), []byte("x")); ok {
		t.Fatal("swap of a missing key with an old value succeeded")
	}
	if l, _ := s.List(ctx, "", false); !slices.Contains(l, "k") {
		t.Fatalf("a value written by compare-and-swap is not listed: %v", l)
	}
}

// Many writers on several clients race through generations: per generation
// exactly one wins, and the chain of values has no gap and no overwrite.
func TestCompareAndSwapRace(t *testing.T) {
	srv := redistest.Start(t)
	clientsN, writers, generations := 3, 24, 50
	stores := make([]*Storage, clientsN)
	for i := range stores {
		stores[i] = open(t, srv.Addr, "race", 0)
	}
	ctx := context.Background()
	type win struct{ gen, writer int }
	wins := make(chan win, writers*generations)
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			s := stores[w%clientsN]
			for {
				cur, err := s.Load(ctx, "set")
				var gen int
				var old []byte
				switch {
				case errors.Is(err, fs.ErrNotExist):
				case err != nil:
					errs <- err
					return
				default:
					old = cur
					gen = int(cur[0])
				}
				if gen >= generations {
					errs <- nil
					return
				}
				next := []byte{byte(gen + 1), byte(w)}
				ok, err := s.CompareAndSwap(ctx, "set", old, next)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					wins <- win{gen + 1, w}
				}
			}
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(wins)
	per := map[int]int{}
	for w := range wins {
		per[w.gen]++
	}
	for g := 1; g <= generations; g++ {
		if per[g] != 1 {
			t.Fatalf("generation %d had %d winners, want exactly 1", g, per[g])
		}
	}
	if len(per) != generations {
		t.Fatalf("winners for %d generations, want %d", len(per), generations)
	}
	v, _ := stores[0].Load(ctx, "set")
	if !bytes.Equal(v[:1], []byte{byte(generations)}) {
		t.Fatalf("final generation %d", v[0])
	}
}

func sorted(s []string) []string { slices.Sort(s); return s }

// Two configs with the same storage settings (a reload) share one client;
// it is closed when the last of them is cleaned up.
func TestClientSharedAcrossReloads(t *testing.T) {
	srv := redistest.Start(t)
	provision := func() *Storage {
		s := &Storage{Addresses: []string{srv.Addr}, KeyPrefix: "reload"}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		if err := s.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	}
	old, next := provision(), provision()
	if old.shared != next.shared {
		t.Fatal("a reload with the same settings opened a second client")
	}
	ctx := context.Background()
	if err := old.Lock(ctx, "held-across-reload"); err != nil {
		t.Fatal(err)
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	// The new config still uses the client, and the old config's lock.
	if err := next.Store(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("client closed while the new config uses it: %v", err)
	}
	if err := next.Unlock(ctx, "held-across-reload"); err != nil {
		t.Fatalf("the new config cannot release a lock taken before the reload: %v", err)
	}
	if err := next.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := next.shared.client.Ping(ctx).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("client not closed after its last user: %v", err)
	}
}

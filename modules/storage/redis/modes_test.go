package redisstorage

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/integration/redistest"
)

// Every operation on a real three-node Redis Cluster: the scripts that touch
// several keys work because every key of a prefix shares one hash slot.
func TestOnRedisCluster(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr)
	}
	s := &Storage{Addresses: addrs, KeyPrefix: "cluster"}
	opts, key, err := s.options()
	if err != nil {
		t.Fatal(err)
	}
	s.prefix, s.lease, s.logger = "{cluster}:", time.Duration(s.LockLease), zap.NewNop()
	client := redis.NewUniversalClient(opts)
	if _, ok := client.(*redis.ClusterClient); !ok {
		t.Fatalf("three addresses gave a %T, want a Cluster client", client)
	}
	s.shared = newShared(client, s.prefix, s.logger)
	s.shared.key = key
	t.Cleanup(func() { _ = s.shared.Destruct() })
	ctx := context.Background()

	for _, k := range []string{"certificates/a/a.crt", "certificates/a/a.key", "atlasgate/tokens/x.json"} {
		if err := s.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.List(ctx, "certificates", true); err != nil || len(got) != 3 {
		t.Fatalf("List = %v, %v", got, err)
	}
	if err := s.Delete(ctx, "certificates"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "certificates/a/a.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after deleting the directory: %v", err)
	}
	if ok, err := s.CompareAndSwap(ctx, "atlasgate/tokens/x.json", []byte("atlasgate/tokens/x.json"), []byte("g2")); err != nil || !ok {
		t.Fatalf("compare-and-swap: %v %v", ok, err)
	}
	if err := s.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.TryLock(ctx, "l"); ok {
		t.Fatal("took a held lock")
	}
	if err := s.Unlock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	i, _, err := s.TakeTokens(ctx, []string{"a", "b"}, []float64{1, 1}, []int{1, 1})
	if err != nil || i != -1 {
		t.Fatalf("first take: %d %v", i, err)
	}
	if i, _, _ := s.TakeTokens(ctx, []string{"a", "b"}, []float64{1, 1}, []int{1, 1}); i != 0 {
		t.Fatalf("second take refused by bucket %d, want 0", i)
	}

	got := make(chan string, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.WatchHolds(wctx, func(name string, _ time.Time, _ int) {
		select {
		case got <- name:
		default:
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !s.Subscribed() {
		if time.Now().After(deadline) {
			t.Fatal("not subscribed on the cluster")
		}
		time.Sleep(10 * time.Millisecond) // waiting for the subscription
	}
	if err := s.ShareHold(ctx, "jira", time.Now().Add(time.Minute), 429); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-got:
		if name != "jira" {
			t.Fatalf("hold for %q", name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hold announcement not received on the cluster")
	}
}

// Through a real Sentinel: the client asks it for the master and works on it.
func TestThroughSentinel(t *testing.T) {
	master, sentinel := redistest.StartSentinel(t, "atlasgate-master")
	s := &Storage{Addresses: []string{sentinel.Addr}, MasterName: "atlasgate-master", KeyPrefix: "sentinel"}
	opts, key, err := s.options()
	if err != nil {
		t.Fatal(err)
	}
	s.prefix, s.lease, s.logger = "{sentinel}:", time.Duration(s.LockLease), zap.NewNop()
	s.shared = newShared(redis.NewUniversalClient(opts), s.prefix, s.logger)
	s.shared.key = key
	t.Cleanup(func() { _ = s.shared.Destruct() })
	ctx := context.Background()
	if err := s.Store(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	// The value is on the master the Sentinel named.
	direct := redis.NewClient(&redis.Options{Addr: master.Addr})
	defer direct.Close()
	if v, err := direct.HGet(ctx, "{sentinel}:v:k", "d").Result(); err != nil || v != "v" {
		t.Fatalf("on the master: %q %v", v, err)
	}
}

// TLS to Redis with the CA from `tls ca_file`; without that CA the
// connection is refused.
func TestTLSWithCAFile(t *testing.T) {
	srv, caFile := redistest.StartTLS(t)
	connect := func(ca string) error {
		s := &Storage{Addresses: []string{srv.Addr}, KeyPrefix: "tls", TLS: &TLS{CAFile: ca}}
		opts, _, err := s.options()
		if err != nil {
			return err
		}
		c := redis.NewUniversalClient(opts)
		defer c.Close()
		return c.Set(context.Background(), "{tls}:probe", "1", 0).Err()
	}
	if err := connect(caFile); err != nil {
		t.Fatalf("TLS with the server's CA: %v", err)
	}
	if err := connect(""); err == nil {
		t.Fatal("a server certificate from an unknown CA was accepted")
	}
}

package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
	"github.com/atlasgate/atlasgate/integration/redistest"
)

const replicaConfig = `{
	admin 127.0.0.1:%[1]d
	persist_config off
	log {
		level WARN
	}
	default_bind 127.0.0.1
	storage redis {
		addresses %[2]s
		key_prefix e2e
	}
	atlasgate {
		credential jira api_token {
			site %[3]s
			email %[4]s
			token {env.IT_CLUSTER_API_TOKEN}
			trusted_ca_file %[5]s
		}
	}
}

http://127.0.0.1:%[6]d {
	atlasgate_policy {
		rule all {
			paths /rest/api/3/*
			credential jira
		}
		credential_rate jira %[7]d/h
	}
	atlasgate_proxy
}
`

// replicaProc is one gateway process (the built binary).
type replicaProc struct {
	port int
	cmd  *exec.Cmd
	done chan struct{}
	logs *syncBuffer
}

func startReplicaProc(t *testing.T, bin, dir, cf string, port, admin int) *replicaProc {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("replica-%d.caddyfile", port))
	if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &replicaProc{port: port, logs: &syncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	r.cmd.Dir = dir
	r.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"IT_CLUSTER_API_TOKEN=" + atlassim.DemoAPIToken}
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Signal(syscall.SIGKILL)
			<-r.done
		}
		if t.Failed() {
			t.Logf("replica on %d:\n%s", port, r.logs.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return r
		}
		select {
		case <-r.done:
			t.Fatalf("replica exited at start-up:\n%s", r.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica did not start:\n%s", r.logs.String())
		}
		time.Sleep(50 * time.Millisecond) // waiting for the listener
	}
}

// Three gateway processes on one Redis: a credential's limit of N an hour
// admits N requests in total, whichever replicas they reach; with Redis down
// they serve from their own buckets, and share again once it is back.
func TestThreeReplicasShareLimitsAndHolds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway binary")
	}
	srv := redistest.Start(t)
	sim, err := atlassim.Start(atlassim.Config{Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := sim.WriteCAFile(ca); err != nil {
		t.Fatal(err)
	}
	bin := itest.CaddyBinary(t, binDir)
	const limit = 30
	var replicas []*replicaProc
	for range 3 {
		port, admin := itest.FreePort(t), itest.FreePort(t)
		cf := fmt.Sprintf(replicaConfig, admin, srv.Addr, sim.URL(atlassim.HostSite), atlassim.DemoEmail, ca, port, limit)
		replicas = append(replicas, startReplicaProc(t, bin, dir, cf, port, admin))
	}

	// 90 concurrent requests, 30 to each replica.
	sim.ResetRequests()
	codes := make(chan int, 3*limit)
	var wg sync.WaitGroup
	for i := range 3 * limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _ := call(replicas[i%3].port, "/rest/api/3/myself")
			codes <- status
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusOK] != limit || count[http.StatusTooManyRequests] != 2*limit {
		t.Fatalf("3 replicas with a shared limit of %d/h answered %v; want %d × 200 and the rest 429", limit, count, limit)
	}
	if n := len(sim.RequestsTo(atlassim.HostSite)); n != limit {
		t.Fatalf("Atlassian received %d requests, want %d", n, limit)
	}

	// Redis dies: limits fail open (the default) to each replica's own
	// buckets, so requests are served — no 500, no hang.
	srv.Stop()
	for i := range 6 {
		if status, body := call(replicas[i%3].port, "/rest/api/3/myself"); status != http.StatusOK {
			t.Fatalf("with Redis down, replica answered %d %v; want 200 from its own bucket", status, body)
		}
	}
	// Redis is back (its data persisted): the shared bucket, still empty,
	// refuses again on every replica, without a restart of the gateways.
	srv.Restart()
	for _, r := range replicas {
		deadline := time.Now().Add(20 * time.Second)
		for {
			status, body := call(r.port, "/rest/api/3/myself")
			if status == http.StatusTooManyRequests && body["error"] == "rate_limited" {
				break
			}
			if status != http.StatusOK || time.Now().After(deadline) {
				t.Fatalf("replica on %d after Redis restarted: %d %v", r.port, status, body)
			}
			time.Sleep(20 * time.Millisecond) // waiting for the client to reconnect
		}
	}
}

// TestThreeReplicasShareHold: a 429 with Retry-After that replica 0 receives
// from Atlassian holds the credential back on replicas 1 and 2, which answer
// upstream_rate_limited without calling Atlassian.
func TestThreeReplicasShareHold(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway binary")
	}
	srv := redistest.Start(t)
	sim, err := atlassim.Start(atlassim.Config{Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := sim.WriteCAFile(ca); err != nil {
		t.Fatal(err)
	}
	bin := itest.CaddyBinary(t, binDir)
	var replicas []*replicaProc
	for range 3 {
		port, admin := itest.FreePort(t), itest.FreePort(t)
		cf := fmt.Sprintf(replicaConfig, admin, srv.Addr, sim.URL(atlassim.HostSite), atlassim.DemoEmail, ca, port, 100000)
		replicas = append(replicas, startReplicaProc(t, bin, dir, cf, port, admin))
	}
	sim.AddRateLimit(atlassim.RateLimit{Host: atlassim.HostSite, Count: 1, RetryAfter: 120})
	if status, _ := call(replicas[0].port, "/rest/api/3/myself"); status != http.StatusTooManyRequests {
		t.Fatalf("Atlassian's 429 not passed on: %d", status)
	}
	sim.ResetRequests()
	for _, r := range replicas[1:] {
		deadline := time.Now().Add(10 * time.Second)
		for {
			status, body := call(r.port, "/rest/api/3/myself")
			if status == http.StatusTooManyRequests && body["error"] == "upstream_rate_limited" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica on %d not held back: %d %v", r.port, status, body)
			}
			time.Sleep(20 * time.Millisecond) // waiting for the hold to arrive
		}
	}
	// Until the hold arrived a replica may have sent a request; none after.
	before := len(sim.RequestsTo(atlassim.HostSite))
	for _, r := range replicas {
		if status, body := call(r.port, "/rest/api/3/myself"); body["error"] != "upstream_rate_limited" {
			t.Fatalf("replica on %d: %d %v", r.port, status, body)
		}
	}
	if after := len(sim.RequestsTo(atlassim.HostSite)); after != before {
		t.Fatalf("held replicas still called Atlassian: %d requests", after-before)
	}
}

func call(port int, path string) (int, map[string]any) {
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		return 0, map[string]any{"raw": err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// syncBuffer is a buffer a child process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

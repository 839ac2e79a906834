// Command atlasclusterdemo runs the cluster demo (`make demo-cluster`): one
// redis-server (Debian's package) on 127.0.0.1:6390 with its data in
// .demo/redis, the bundled Atlassian simulator on 127.0.0.1:9441-9448, three
// gateway replicas (caddyfiles/cluster.Caddyfile on 8091-8093, sharing
// everything through Redis) and a Caddy load balancer in front of them
// (caddyfiles/cluster-lb.Caddyfile on 8090). It prints curl lines that show a
// rate limit holding across the replicas. Ctrl-C stops everything.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
)

var hosts = []string{atlassim.HostSite, atlassim.HostAPI, atlassim.HostMedia, atlassim.HostBitbucket,
	atlassim.HostJiraDC, atlassim.HostConfluenceDC, atlassim.HostBitbucketDC, atlassim.HostAuth}

// demoEncryptionKey is the demo's public key (see cmd/atlasdemo); a real
// deployment generates its own and gives every replica the same one.
const demoEncryptionKey = "ZGVtby1rZXktYXRsYXNnYXRlLW5vdC1hLXNlY3JldCE="

const redisAddr = "127.0.0.1:6390"

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

func main() {
	caddyBin := flag.String("caddy", "bin/caddy", "the atlasgate Caddy `binary`")
	dir := flag.String("dir", ".demo", "working `directory` for the CA file and Redis data")
	flag.Parse()
	logger := log.New(os.Stderr, "atlasclusterdemo: ", 0)
	if _, err := exec.LookPath("redis-server"); err != nil {
		logger.Fatal("redis-server not found: apt-get install -y redis-server")
	}
	redisDir := filepath.Join(*dir, "redis")
	if err := os.MkdirAll(redisDir, 0o700); err != nil {
		logger.Fatal(err)
	}

	cfg := atlassim.Config{Seed: true, Addrs: map[string]string{}}
	for i, h := range hosts {
		cfg.Addrs[h] = fmt.Sprintf("127.0.0.1:%d", 9441+i)
	}
	sim, err := atlassim.Start(cfg)
	if err != nil {
		logger.Fatalf("starting the Atlassian simulator: %v (is another demo running?)", err)
	}
	defer sim.Close()
	if err := sim.WriteCAFile(filepath.Join(*dir, "atlassim-ca.pem")); err != nil {
		logger.Fatal(err)
	}

	var procs []*proc
	stopAll := func() {
		for i := len(procs) - 1; i >= 0; i-- {
			p := procs[i]
			_ = p.cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
			}
		}
	}
	start := func(name, addr string, env []string, bin string, args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			stopAll()
			logger.Fatalf("starting %s: %v (run `make build` first)", name, err)
		}
		p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(p.done) }()
		procs = append(procs, p)
		if err := waitListening(addr, 30*time.Second, p.done); err != nil {
			stopAll()
			logger.Fatalf("%s did not start: %v", name, err)
		}
	}

	start("redis-server", redisAddr, nil, "redis-server", "--port", "6390", "--bind", "127.0.0.1",
		"--dir", redisDir, "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction")
	for i := 1; i <= 3; i++ {
		port := strconv.Itoa(8090 + i)
		start("replica "+port, "127.0.0.1:"+port, []string{
			"ATLASGATE_REPLICA_PORT=" + port,
			"ATLASGATE_ADMIN_PORT=" + strconv.Itoa(2090+i),
			"ATLASGATE_REDIS=" + redisAddr,
			"ATLASGATE_DEMO_API_TOKEN=" + atlassim.DemoAPIToken,
			"ATLASGATE_DEMO_ENCRYPTION_KEY=" + demoEncryptionKey,
		}, *caddyBin, "run", "--config", "caddyfiles/cluster.Caddyfile", "--adapter", "caddyfile")
	}
	start("load balancer", "127.0.0.1:8090", nil, *caddyBin, "run", "--config", "caddyfiles/cluster-lb.Caddyfile", "--adapter", "caddyfile")

	fmt.Print(`
atlasgate cluster demo: three replicas (8091-8093) on one Redis (6390) behind a load balancer on 8090,
in front of the Atlassian simulator (9441-9448). Try:

  # each request lands on another replica (see X-Atlasgate-Replica)
  for i in 1 2 3; do curl -si http://localhost:8090/rest/api/3/myself | grep -i x-atlasgate-replica; done
  # the credential's limit is 10 a minute for the whole cluster, not per replica: 10 × 200, then 429
  for i in $(seq 15); do curl -s -o /dev/null -w '%{http_code} ' http://localhost:8090/rest/api/3/myself; done; echo
  # what Redis holds
  redis-cli -p 6390 --scan --pattern '{atlasgate-demo}:*'

Ctrl-C stops everything.

`)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	exited := make(chan string, len(procs))
	for _, p := range procs {
		go func() { <-p.done; exited <- p.name }()
	}
	select {
	case s := <-sig:
		logger.Printf("%s: stopping", s)
	case name := <-exited:
		logger.Printf("%s exited; stopping the rest", name)
	}
	stopAll()
}

// waitListening waits until addr accepts connections or the process exits.
func waitListening(addr string, timeout time.Duration, done <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("exited")
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s after %s", addr, timeout)
}

// Package redistest starts a real redis-server (Debian's package) for tests:
// on a free 127.0.0.1 port, in a temporary directory, stopped when the test
// ends. Without redis-server the test fails under CI=true (CI installs it)
// and is skipped, loudly, elsewhere.
package redistest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	Addr string // 127.0.0.1:<port>
	Port int

	t        testing.TB
	dir      string
	args     []string
	sentinel string      // the config file of a Sentinel; "" for a server
	tls      *tls.Config // set: the server speaks only TLS
	cmd      *exec.Cmd
	done     chan struct{}
}

// need fails the test under CI=true, and skips it loudly elsewhere, when
// a Redis program is missing.
func need(t testing.TB, program string) {
	t.Helper()
	if _, err := exec.LookPath(program); err != nil {
		msg := program + " not found: install Debian's redis-server package (apt-get install -y redis-server)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING (needs a real Redis): " + msg)
	}
}

// Start starts redis-server and waits until it answers PING. Extra
// redis-server arguments (e.g. "--requirepass", "x") may follow.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	need(t, "redis-server")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, t: t, dir: t.TempDir(), args: args}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	// An append-only file keeps the data across Restart, as a production
	// Redis with persistence would.
	var conf []string
	if s.sentinel != "" {
		// Sentinel rewrites its config file: it must be a file of its own.
		path := s.dir + "/sentinel.conf"
		if err := os.WriteFile(path, []byte(s.sentinel), 0o600); err != nil {
			s.t.Fatal(err)
		}
		conf = []string{path, "--sentinel"}
	}
	s.cmd = exec.Command("redis-server", append(conf,
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning")...)
	s.cmd.Args = append(s.cmd.Args, s.args...)
	out, err := os.Create(s.dir + "/redis.log")
	if err != nil {
		s.t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); out.Close(); close(s.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for !s.ping() {
		select {
		case <-s.done:
			log, _ := os.ReadFile(s.dir + "/redis.log")
			s.t.Fatalf("redis-server exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer PING within 15s", s.Addr)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition: the server answering
	}
}

// ping reports whether the server answers PING.
func (s *Server) ping() bool {
	var c net.Conn
	var err error
	if s.tls != nil {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", s.Addr, s.tls)
	} else {
		c, err = net.DialTimeout("tcp", s.Addr, time.Second)
	}
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	// -NOAUTH: up, and asking for the password the test configured.
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

// Stop kills the server (SIGKILL, as a crash) and waits for it to exit. It
// may be called more than once.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Restart starts the server again on the same port and data directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// StartCluster starts n redis-server nodes (n >= 3) in cluster mode, all
// masters, joins them with `redis-cli --cluster create`, and waits until the
// cluster serves every slot.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	need(t, "redis-server")
	need(t, "redis-cli")
	var nodes []*Server
	var addrs []string
	for range n {
		s := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
		nodes = append(nodes, s)
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range nodes {
		for {
			out, _ := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "cluster", "info").Output()
			if strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Redis Cluster not ready after 30s: %s", out)
			}
			time.Sleep(50 * time.Millisecond) // waiting for the cluster to agree
		}
	}
	return nodes
}

// StartSentinel starts a master and one Sentinel that monitors it as
// masterName (quorum 1), and returns the Sentinel; clients find the master
// through it.
func StartSentinel(t testing.TB, masterName string) (master, sentinel *Server) {
	t.Helper()
	need(t, "redis-server")
	master = Start(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	sentinel = &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, t: t, dir: t.TempDir(),
		sentinel: fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\n", masterName, master.Port)}
	sentinel.start()
	t.Cleanup(sentinel.Stop)
	return master, sentinel
}

// StartTLS starts redis-server speaking only TLS, with a certificate for
// 127.0.0.1 from a CA made for the test, and returns the CA's PEM file.
func StartTLS(t testing.TB) (*Server, string) {
	t.Helper()
	need(t, "redis-server")
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, der []byte) string {
		path := dir + "/" + name
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caFile := write("ca.pem", "CERTIFICATE", caDER)
	certFile := write("redis.pem", "CERTIFICATE", leafDER)
	keyFile := write("redis.key", "EC PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, t: t, dir: t.TempDir(),
		tls: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		args: []string{"--port", "0", "--tls-port", strconv.Itoa(port), "--tls-cert-file", certFile, "--tls-key-file", keyFile,
			"--tls-ca-cert-file", caFile, "--tls-auth-clients", "no"}}
	s.start()
	t.Cleanup(s.Stop)
	return s, caFile
}

// Package replicas tests what needs more than one gateway, or a gateway that
// dies: OAuth (3LO) refreshes coordinated between two gateway processes that
// share file storage, a kill -9 in the middle of a refresh, and
// client-credentials credentials end to end. The gateways are the real binary
// (built from cmd/caddy) in front of the in-process Atlassian simulator; the
// consent runs once in the in-process Caddy, which writes the encrypted token
// set to the storage the binaries share.
package replicas

import (
	"bytes"
	"encoding/json"
	"fmt"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
)

const encryptionKey = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="

var (
	sim *atlassim.Sim
	dir string // everything the test writes: CA file, storage, binary, configs
	ca  string

	// gwOffset moves the in-process gateway's clock (internal/clock)
	// ahead of the wall clock, as sim.Advance moves the simulator's. The
	// binaries run on the wall clock.
	gwOffset atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(itest.Main(m, itest.Options{
		// The simulator runs on the wall clock too, so that tokens the
		// in-process gateway stores look right to the binaries; sim.Advance
		// makes tokens die at Atlassian while the gateways still believe them
		// valid.
		Sim:  atlassim.Config{Seed: true, AutoConsent: true},
		Name: "replicas",
		Env: map[string]string{
			"IT_OAUTH_SECRET":   atlassim.DemoOAuthClientSecret,
			"IT_SA_SECRET":      atlassim.DemoServiceAccountClientSecret,
			"IT_SA_BAD_SECRET":  "not-the-secret",
			"IT_ENCRYPTION_KEY": encryptionKey,
		},
		Setup: func(h *itest.Harness) error {
			sim, dir, ca = h.Sim, h.Dir, h.CAFile
			h.Cleanup(gclock.Set(func() time.Time { return time.Now().Add(time.Duration(gwOffset.Load())) }))
			return nil
		},
	}))
}

// advance moves Atlassian's clock and the in-process gateway's together.
func advance(d time.Duration) {
	sim.Advance(d)
	gwOffset.Add(int64(d))
}

// get sends a GET to a gateway and decodes the JSON answer; status 0 means
// the request failed (the error is in "raw").
func get(port int, path string) (int, map[string]any) {
	client := &http.Client{Timeout: 45 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		return 0, map[string]any{"raw": err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, m
}

// tokenCalls counts the token-endpoint calls of a grant type, by outcome.
func tokenCalls(grantType string) map[string]int {
	out := map[string]int{}
	for _, c := range sim.TokenCalls() {
		if c.GrantType == grantType {
			out[c.Outcome]++
		}
	}
	return out
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// binary returns the atlasgate Caddy binary (see itest.CaddyBinary).
func binary(t *testing.T) string { return itest.CaddyBinary(t, dir) }

// replica is one gateway process.
type replica struct {
	name        string
	port, admin int
	config      string
	cmd         *exec.Cmd
	done        chan struct{}
	logs        *syncBuffer
}

// startReplica runs the binary with cf (a Caddyfile) and waits until it
// listens on port.
func startReplica(t *testing.T, name string, port, admin int, cf string) *replica {
	t.Helper()
	r := &replica{name: name, port: port, admin: admin, config: filepath.Join(dir, name+".caddyfile"), logs: &syncBuffer{}}
	if err := os.WriteFile(r.config, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start(t)
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("logs of replica %s:\n%s", r.name, r.logs.String())
		}
	})
	return r
}

func (r *replica) start(t *testing.T) {
	t.Helper()
	r.cmd = exec.Command(binary(t), "run", "--config", r.config, "--adapter", "caddyfile")
	r.cmd.Dir = dir
	r.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"IT_OAUTH_SECRET=" + atlassim.DemoOAuthClientSecret,
		"IT_ENCRYPTION_KEY=" + encryptionKey,
	}
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(r.cmd, r.done)
	// Ready when the admin endpoint answers (the config is loaded) and the
	// gateway's port accepts connections.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/config/", r.admin))
		if err == nil {
			resp.Body.Close()
			if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port)); err == nil {
				conn.Close()
				return
			}
		}
		select {
		case <-r.done:
			t.Fatalf("replica %s exited at start-up:\n%s", r.name, r.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not start:\n%s", r.name, r.logs.String())
		}
	}
}

// kill sends SIGKILL — no cleanup of any kind in the process — and waits
// for it to be gone.
func (r *replica) kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// syncBuffer is a bytes.Buffer a child process may write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

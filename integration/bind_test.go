package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// `make run` listens on loopback only unless ATLASGATE_BIND says otherwise:
// the adapted config lists only loopback addresses, and the running binary
// cannot be reached on the machine's other addresses.
func TestRunCaddyfileListensOnLoopbackOnly(t *testing.T) {
	port, admin := freePort(t), freePort(t)
	env := []string{fmt.Sprintf("CADDY_ADMIN=127.0.0.1:%d", admin), fmt.Sprintf("ATLASGATE_ADDRESS=:%d", port)}
	for k, v := range caddyfileEnv {
		env = append(env, k+"="+v)
	}
	listen := func(extra ...string) string {
		out, err := caddyCmd(t, workDir, append(env, extra...), "adapt", "--config", absPath("../caddyfiles/Caddyfile"), "--adapter", "caddyfile").Output()
		if err != nil {
			t.Fatalf("adapt: %v", err)
		}
		var cfg struct {
			Apps struct {
				HTTP struct {
					Servers map[string]struct{ Listen []string } `json:"servers"`
				} `json:"http"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatal(err)
		}
		var all []string
		for _, s := range cfg.Apps.HTTP.Servers {
			all = append(all, s.Listen...)
		}
		return strings.Join(all, " ")
	}
	if got, want := listen(), fmt.Sprintf("127.0.0.1:%d [::1]:%d", port, port); got != want {
		t.Errorf("default listen = %q, want %q", got, want)
	}
	if got, want := listen("ATLASGATE_BIND=0.0.0.0"), fmt.Sprintf("0.0.0.0:%d", port); got != want {
		t.Errorf("with ATLASGATE_BIND=0.0.0.0: listen = %q, want %q", got, want)
	}

	cmd := caddyCmd(t, workDir, env, "run", "--config", absPath("../caddyfiles/Caddyfile"), "--adapter", "caddyfile")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	loopback := fmt.Sprintf("http://127.0.0.1:%d/rest/api/3/myself", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(loopback)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("loopback without credentials: %d, want basic_auth's 401", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway does not answer on loopback: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	addrs, _ := net.InterfaceAddrs()
	tried := 0
	for _, a := range addrs {
		ip, ok := a.(*net.IPNet)
		if !ok || ip.IP.IsLoopback() || ip.IP.IsLinkLocalUnicast() {
			continue
		}
		tried++
		target := net.JoinHostPort(ip.IP.String(), fmt.Sprint(port))
		if c, err := net.DialTimeout("tcp", target, 2*time.Second); err == nil {
			c.Close()
			t.Errorf("the gateway accepts connections on %s", target)
		}
	}
	t.Logf("checked %d non-loopback addresses", tried)
}

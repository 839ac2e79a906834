package preflight

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"golang.org/x/crypto/bcrypt"

	_ "github.com/atlasgate/atlasgate"
)

// adaptRunCaddyfile adapts the Caddyfile `make run` uses, as atlasrun does.
func adaptRunCaddyfile(t *testing.T) []byte {
	t.Helper()
	in, err := os.ReadFile("../../../caddyfiles/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(in, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func setRunEnv(t *testing.T, hash string) {
	for k, v := range map[string]string{
		"ATLASSIAN_SITE": "https://acme.atlassian.net", "ATLASSIAN_EMAIL": "bot@example.com",
		"ATLASSIAN_API_TOKEN": "tok", "ATLASGATE_CLIENT_USER": "app", "ATLASGATE_CLIENT_PASSWORD_HASH": hash,
		"CADDY_ADMIN": "",
	} {
		t.Setenv(k, v)
	}
}

func TestConfigNamesWhatIsWrong(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)

	setRunEnv(t, string(hash))
	listen, err := Config(adaptRunCaddyfile(t))
	if err != nil {
		t.Fatalf("complete environment refused: %v", err)
	}
	// Loopback only by default, and the admin API.
	if got := strings.Join(listen, " "); got != "127.0.0.1:8080 [::1]:8080 localhost:2019" {
		t.Errorf("listen addresses = %s", got)
	}

	setRunEnv(t, string(hash))
	os.Unsetenv("ATLASSIAN_API_TOKEN")
	if _, err := Config(adaptRunCaddyfile(t)); err == nil || err.Error() != "environment variable ATLASSIAN_API_TOKEN is not set (the config reads {env.ATLASSIAN_API_TOKEN}; see the Caddyfile's header)" {
		t.Errorf("unset variable: %v", err)
	}

	// The README's order mistake: hash-password before bin/caddy exists.
	setRunEnv(t, "")
	if _, err := Config(adaptRunCaddyfile(t)); err == nil || !strings.Contains(err.Error(), "environment variable ATLASGATE_CLIENT_PASSWORD_HASH is not set") {
		t.Errorf("empty hash: %v", err)
	}

	setRunEnv(t, "demo-password")
	_, err = Config(adaptRunCaddyfile(t))
	if err == nil || !strings.Contains(err.Error(), "ATLASGATE_CLIENT_PASSWORD_HASH is not a bcrypt hash (a plain password?)") {
		t.Errorf("plain password: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "demo-password") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// A second gateway would start silently next to the first: Caddy listens with
// SO_REUSEPORT. FreeAddrs notices a listener that uses it too.
func TestFreeAddrsSeesAReusePortListener(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1) })
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	if err := FreeAddrs(addr); err == nil || !strings.Contains(err.Error(), addr+" is already in use") {
		t.Fatalf("FreeAddrs(%s) = %v", addr, err)
	}
	ln.Close()
	if err := FreeAddrs(addr); err != nil {
		t.Fatalf("after close: %v", err)
	}
}

// soReusePort is Linux's SO_REUSEPORT, which package syscall does not name.
const soReusePort = 0xf

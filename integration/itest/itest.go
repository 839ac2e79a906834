// Package itest holds helpers the integration test packages share: free
// loopback ports, loading Caddyfile config into the in-process Caddy (the same
// code as the binary, with every atlasgate module), and admin API reloads.
package itest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/internal/adminload"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	// the same modules as cmd/caddy
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/atlasgate/atlasgate"
)

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// GlobalOptions returns the global options every test config starts with: the
// admin API on adminPort, no config persistence, quiet logs, storage under
// dir, and the atlasgate_handover listener wrapper, as the shipped
// Caddyfiles have it, so reloads under traffic lose no request.
func GlobalOptions(adminPort int, storageDir string) string {
	return fmt.Sprintf("\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tlog {\n\t\tlevel ERROR\n\t}\n\tstorage file_system %s\n\tdefault_bind 127.0.0.1\n"+
		"\tservers {\n\t\tlistener_wrappers {\n\t\t\tatlasgate_handover\n\t\t\ttls\n\t\t}\n\t}\n", adminPort, storageDir)
}

// Adapt turns a Caddyfile into JSON config.
func Adapt(cf string) ([]byte, error) {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	return out, err
}

// Load adapts a Caddyfile and loads it into the running Caddy, as `caddy run`
// does. The caller stops Caddy (caddy.Stop) when the test binary ends.
func Load(cf string) error {
	out, err := Adapt(cf)
	if err != nil {
		return err
	}
	return caddy.Load(out, true)
}

// MustLoad is Load that fails the test.
func MustLoad(t testing.TB, cf string) {
	t.Helper()
	if err := Load(cf); err != nil {
		t.Fatalf("loading config: %v\n%s", err, cf)
	}
}

// Reload posts a Caddyfile to the admin API's /load, as `caddy reload` does,
// and returns the status and body.
func Reload(adminPort int, cf string) (int, string) {
	status, answer, _, err := adminload.Post(fmt.Sprintf("http://127.0.0.1:%d", adminPort), "text/caddyfile", cf)
	if err != nil {
		return 0, err.Error()
	}
	return status, answer
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// CaddyBinary returns the atlasgate Caddy binary for tests that run it as a
// process: $ATLASGATE_CADDY (what `make test` builds with xcaddy) or, for a
// plain `go test`, one build of cmd/caddy into dir, shared by the package.
func CaddyBinary(t testing.TB, dir string) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("ATLASGATE_CADDY"); p != "" {
			binPath = p
			return
		}
		_, self, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(self), "..", "..")
		binPath = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/caddy")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building cmd/caddy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

package logbuffer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func load(t *testing.T, cf string) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		t.Fatalf("adapting: %v\n%s", err, cf)
	}
	if err := caddy.Load(out, true); err != nil {
		t.Fatalf("loading: %v", err)
	}
}

func lines(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// Access-log entries (one per request, like audit events) stay in memory
// until a flush; a reload and a clean stop write them out: none lost, none
// written twice.
func TestBufferedEventsSurviveReloadAndStop(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	admin, port := freePort(t), freePort(t)
	config := func(body string) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	log events {
		output atlasgate_buffered {
			output file %s
			flush_interval 1h
		}
		include http.log.access
	}
}
http://127.0.0.1:%d {
	log
	respond %q
}
`, admin, logFile, port, body)
	}
	load(t, config("one"))
	get := func(n int) {
		for range n {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	get(50)
	if n := lines(t, logFile); n != 0 {
		t.Fatalf("%d events written before any flush; want them buffered", n)
	}
	load(t, config("two")) // unloading the old config writes its events out
	if n := lines(t, logFile); n != 50 {
		t.Fatalf("%d events on disk after the reload, want the first 50", n)
	}
	get(50)
	if n := lines(t, logFile); n != 50 {
		t.Fatalf("%d events on disk; the second 50 should still be buffered", n)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := lines(t, logFile); n != 100 {
		t.Fatalf("%d events on disk after a clean stop, want 100", n)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for cf, want := range map[string]string{
		"{\n log {\n  output atlasgate_buffered {\n   flush_interval soon\n  }\n }\n}\n": "flush_interval",
		"{\n log {\n  output atlasgate_buffered {\n   buffer_size -1\n  }\n }\n}\n":      "buffer_size",
		"{\n log {\n  output atlasgate_buffered {\n   colour blue\n  }\n }\n}\n":         `unknown subdirective "colour"`,
	} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to name %s", cf, err, want)
		}
	}
	var c caddy.Config
	if err := json.Unmarshal([]byte(`{"logging":{"logs":{"default":{"writer":{"output":"atlasgate_buffered"}}}}}`), &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), "output: required") {
		t.Fatalf("error %v, want it to say output is required", err)
	}
}

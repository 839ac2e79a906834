package opaque

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func adapt(t *testing.T, cf string) ([]byte, error) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	return out, err
}

// The Caddyfile adapts to the atlasgate app's JSON in testdata/*.json.
func TestCaddyfileGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.caddyfile")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cf, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, err := adapt(t, string(cf))
			if err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				Apps map[string]json.RawMessage `json:"apps"`
			}
			if err := json.Unmarshal(out, &cfg); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := json.Indent(&got, cfg.Apps["atlasgate"], "", "\t"); err != nil {
				t.Fatal(err)
			}
			got.WriteByte('\n')
			golden := strings.TrimSuffix(f, ".caddyfile") + ".json"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("adapted JSON differs from %s (run with -update to accept):\n%s", golden, got.String())
			}
		})
	}
}

func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		block, want string
	}{
		{"authenticator a introspection extra", "wrong argument count"},
		{"authenticator a introspection {\n client_auth private_key_jwt\n}", `client_auth: "private_key_jwt" is not supported`},
		{"authenticator a introspection {\n cache_ttl soon\n}", `cache_ttl: invalid duration "soon"`},
		{"authenticator a introspection {\n timeout 0s\n}", "must be positive"},
		{"authenticator a introspection {\n endpoint\n}", "wrong argument count"},
		{"authenticator a introspection {\n colour blue\n}", `unrecognized option "colour"`},
		{"authenticator a userinfo", "missing provider"},
		{"authenticator a userinfo myspace", `unknown provider "myspace"`},
		{"authenticator a userinfo github https://x.example.com", "wrong argument count"},
		{"authenticator a userinfo oidc https://x.example.com extra", "wrong argument count"},
		{"authenticator a userinfo custom {\n header X-Only-Name\n}", "wrong argument count"},
		{"authenticator a userinfo github {\n colour blue\n}", `unrecognized option "colour"`},
	} {
		_, err := adapt(t, "{\n\tatlasgate {\n"+tc.block+"\n\t}\n}\n")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error = %v, want %q", tc.block, err, tc.want)
		}
	}
}

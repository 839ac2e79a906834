package jwt

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Caddyfile → JSON, compared with testdata/*.golden.json.
func TestCaddyfileGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.caddyfile")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			must(t, err)
			var j JWT
			if err := j.UnmarshalCaddyfile(caddyfile.NewTestDispenser(string(in))); err != nil {
				t.Fatal(err)
			}
			got, _ := json.MarshalIndent(j, "", "\t")
			golden := strings.TrimSuffix(f, ".caddyfile") + ".golden.json"
			if *update {
				must(t, os.WriteFile(golden, append(got, '\n'), 0o644))
			}
			want, err := os.ReadFile(golden)
			must(t, err)
			if strings.TrimSpace(string(got)) != strings.TrimSpace(string(want)) {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestCaddyfileErrors(t *testing.T) {
	for _, in := range []string{
		"jwt extra",
		"jwt {\n bogus 1\n}",
		"jwt {\n issuer\n}",
		"jwt {\n issuer a b\n}",
		"jwt {\n discovery maybe\n}",
		"jwt {\n leeway soon\n}",
		"jwt {\n require_claim sub\n}",
		"jwt {\n cache_size many\n}",
		"jwt {\n preset\n}",
		"jwt {\n preset google\n preset okta x\n}",
	} {
		var j JWT
		if err := j.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

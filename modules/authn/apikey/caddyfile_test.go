package apikey

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: `api_key`, want: `{}`},
		{in: `api_key {
			realm ci
			max_lifetime 30d
			default_lifetime 7d
			header X-API-Key
		}`, want: `{"realm":"ci","max_lifetime":2592000000000000,"default_lifetime":604800000000000,"header":"X-API-Key"}`},
		{in: "api_key {\nmax_lifetime soon\n}", err: "max_lifetime"},
		{in: "api_key {\nrealm\n}", err: "wrong argument count"},
		{in: "api_key {\nrealm a b\n}", err: "wrong argument count"},
		{in: "api_key {\nhash sha1\n}", err: `unrecognized option "hash"`},
		{in: `api_key extra`, err: "wrong argument count"},
	} {
		var a APIKey
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if tc.err != "" {
			if err == nil || !contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		got, _ := json.Marshal(a)
		if string(got) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

package proxy

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// credentialName expands the credential template. The usual template is one
// placeholder (the policy's {http.atlasgate.policy.credential}); reading it
// directly spares ReplaceAll's builder and copy on every request.
func credentialName(repl *caddy.Replacer, tmpl string) string {
	if key, ok := strings.CutPrefix(tmpl, "{"); ok {
		if key, ok = strings.CutSuffix(key, "}"); ok && !strings.ContainsAny(key, "{}:") {
			name, _ := repl.GetString(key)
			return name
		}
	}
	return repl.ReplaceAll(tmpl, "")
}

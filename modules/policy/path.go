package policy

import (
	"strings"

	"github.com/atlasgate/atlasgate/modules/internal/canonpath"
)

// PathError is why a request path was refused with 400.
type PathError = canonpath.PathError

// NormalizePath turns a request path, as escaped on the wire, into the one
// canonical, decoded form that the policy checks and the upstream receives, or
// refuses it; see canonpath.Normalize for what is refused and why.
// atlasgate_proxy applies the same normaliser, so a gateway without a policy
// sends nothing else upstream either.
func NormalizePath(escaped string) (string, error) { return canonpath.Normalize(escaped) }

// Products a rule can name.
const (
	ProductJira       = "jira"
	ProductConfluence = "confluence"
	ProductBitbucket  = "bitbucket"
)

// DetectProduct tells the Atlassian product from a canonical path, the way
// Cloud and Data Center lay out their APIs:
//
//   - `/wiki/…` (Cloud) and `/rest/api/<name>` where <name> is not a version
//     (Confluence DC: `/rest/api/content`, `/rest/api/space`): confluence;
//   - `/rest/api/2|3|latest/…`, `/rest/agile/`, `/rest/servicedeskapi/`,
//     `/rest/greenhopper/`, `/rest/dev-status/`, `/browse/`, `/secure/`: jira;
//   - `/2.0/…` (Cloud) and `/rest/api/1.0/…` (Data Center): bitbucket.
//
// Anything else is "" (unknown): a rule that names a product does not match it.
func DetectProduct(path string) string {
	p := strings.ToLower(path)
	first, rest := cut(p)
	switch first {
	case "wiki":
		return ProductConfluence
	case "2.0":
		return ProductBitbucket
	case "browse", "secure":
		return ProductJira
	case "rest":
	default:
		return ""
	}
	second, rest := cut(rest)
	switch second {
	case "agile", "servicedeskapi", "greenhopper", "dev-status":
		return ProductJira
	case "api":
	default:
		return ""
	}
	third, _ := cut(rest)
	switch third {
	case "":
		return ""
	case "2", "3", "latest":
		return ProductJira
	case "1.0":
		return ProductBitbucket
	}
	return ProductConfluence
}

// cut splits "/a/b/c" into "a" and "/b/c".
func cut(p string) (string, string) {
	p = strings.TrimPrefix(p, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, ""
}

// matchGlob reports whether path matches pattern (both lowercased by the
// caller). `*` matches any run of characters within one segment; a `*` that
// ends the pattern matches the rest of the path, slashes included.
func matchGlob(pattern, path string) bool {
	for len(pattern) > 0 {
		if pattern[0] == '*' {
			if len(pattern) == 1 {
				return true
			}
			rest := pattern[1:]
			for i := 0; i <= len(path); i++ {
				if matchGlob(rest, path[i:]) {
					return true
				}
				if i < len(path) && path[i] == '/' {
					return false
				}
			}
			return false
		}
		if len(path) == 0 || path[0] != pattern[0] {
			return false
		}
		pattern, path = pattern[1:], path[1:]
	}
	return len(path) == 0
}

package policy

import (
	"strings"
	"unicode/utf8"
)

// PathError is why a request path was refused with 400.
type PathError struct{ Reason string }

func (e *PathError) Error() string { return "invalid path: " + e.Reason }

func pathErr(reason string) error { return &PathError{Reason: reason} }

// NormalizePath turns a request path, as escaped on the wire, into the one
// canonical, decoded form that the policy checks and the upstream receives, or
// refuses it. Everything an upstream (Tomcat, a Java servlet, a proxy in front
// of Atlassian) might read differently from us is refused rather than guessed:
//
//   - `%2f`, `%5c` (an encoded slash or backslash), a raw backslash, `;` (a
//     matrix parameter, stripped by Tomcat before routing, so `/a;x/../b`
//     means two things), control characters and NUL: refused;
//   - a `%` left after decoding once (double encoding, `%252e`): refused;
//   - bytes that are not valid UTF-8 after decoding, which includes overlong
//     encodings such as `%c0%ae`: refused;
//   - `.` and `..` segments, encoded or not, are resolved; `..` above the root
//     is refused; empty segments (duplicate slashes) are dropped; a trailing
//     slash is kept.
//
// Case is left alone: the policy compares paths case-insensitively instead,
// so a case variant of a path matches the same rules as the path itself.
func NormalizePath(escaped string) (string, error) {
	if escaped == "" {
		return "/", nil
	}
	if escaped[0] != '/' {
		return "", pathErr("it must start with /")
	}
	var b strings.Builder
	b.Grow(len(escaped))
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		if c == '%' {
			if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
				return "", pathErr("malformed percent-encoding")
			}
			c = unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
			i += 2
			switch c {
			case '/':
				return "", pathErr("encoded slash (%2F)")
			case '\\':
				return "", pathErr("encoded backslash (%5C)")
			}
		}
		switch {
		case c == '\\':
			return "", pathErr("backslash")
		case c == ';':
			return "", pathErr("matrix parameter (;)")
		case c < 0x20 || c == 0x7f:
			return "", pathErr("control character")
		}
		b.WriteByte(c)
	}
	decoded := b.String()
	// Checked on the decoded form, so that `%250%61` (which decodes to `%0a`)
	// counts as double encoding too.
	for i := strings.IndexByte(decoded, '%'); i >= 0 && i+2 < len(decoded); {
		if isHex(decoded[i+1]) && isHex(decoded[i+2]) {
			return "", pathErr("double percent-encoding")
		}
		j := strings.IndexByte(decoded[i+1:], '%')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	if !utf8.ValidString(decoded) {
		return "", pathErr("invalid or overlong UTF-8")
	}
	return resolveDots(decoded)
}

// resolveDots removes `.` and `..` segments and empty segments.
func resolveDots(p string) (string, error) {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for _, s := range segs {
		trailing = false
		switch s {
		case "":
			trailing = true
		case ".":
			trailing = true
		case "..":
			if len(out) == 0 {
				return "", pathErr("dot segment above the root")
			}
			out = out[:len(out)-1]
			trailing = true
		default:
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return "/", nil
	}
	res := "/" + strings.Join(out, "/")
	if trailing {
		res += "/"
	}
	return res, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

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

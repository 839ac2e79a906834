// Package canonpath holds the one normaliser of request paths, shared by the
// access policy (which checks the canonical path) and the proxy (which never
// sends anything else upstream, with or without a policy).
package canonpath

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// PathError is why a request path was refused with 400.
type PathError struct{ Reason string }

func (e *PathError) Error() string { return "invalid path: " + e.Reason }

func pathErr(reason string) error { return &PathError{Reason: reason} }

// Normalize turns a request path, as escaped on the wire, into the one
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
//   - characters that Unicode compatibility normalisation (NFKC) turns into
//     a `/`, `\`, `;`, `%`, a control character, or a `.`/`..` segment
//     (fullwidth `．`, `／`, `＼`, the two-dot leader `‥`…): refused, because
//     an upstream that normalises would route them as path syntax;
//   - `.` and `..` segments, encoded or not, are resolved; `..` above the root
//     is refused; empty segments (duplicate slashes) are dropped; a trailing
//     slash is kept.
//
// Case is left alone: the policy compares paths case-insensitively instead,
// so a case variant of a path matches the same rules as the path itself.
func Normalize(escaped string) (string, error) {
	if escaped == "" {
		return "/", nil
	}
	if escaped[0] != '/' {
		return "", pathErr("it must start with /")
	}
	var b strings.Builder
	b.Grow(len(escaped))
	ascii := true
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
		case c >= 0x80:
			ascii = false
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
	if !ascii {
		if !utf8.ValidString(decoded) {
			return "", pathErr("invalid or overlong UTF-8")
		}
		if err := checkCompatibility(decoded); err != nil {
			return "", err
		}
	}
	return resolveDots(decoded)
}

// checkCompatibility refuses a path whose NFKC form has path syntax that the
// path itself does not have. Only syntax counts: `é`, `ß` or an ellipsis in
// a page title stay accepted, `．．` as a segment or a fullwidth `／` do not.
func checkCompatibility(p string) error {
	n := norm.NFKC.String(p)
	if n == p {
		return nil
	}
	for _, c := range []string{"/", "%"} {
		if strings.Count(n, c) != strings.Count(p, c) {
			return pathErr("a character that normalises to " + c)
		}
	}
	if strings.ContainsAny(n, `\;`) {
		return pathErr(`a character that normalises to \ or ;`)
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f {
			return pathErr("a character that normalises to a control character")
		}
	}
	for _, seg := range strings.Split(n, "/") {
		if seg == "." || seg == ".." {
			return pathErr("characters that normalise to a dot segment")
		}
	}
	return nil
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

// IsHex reports whether c is a hexadecimal digit.
func IsHex(c byte) bool { return isHex(c) }

// Unhex is the value of the hexadecimal digit c.
func Unhex(c byte) byte { return unhex(c) }

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

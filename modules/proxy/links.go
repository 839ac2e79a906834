package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Atlassian answers carry absolute links to themselves: Bitbucket's `next` and
// `previous`, Jira's `self`, Confluence's `_links.base` (which clients prepend
// to the relative `_links.next`), every URL of a 3LO answer on
// `https://api.atlassian.com/ex/{product}/{cloudId}`. A client that follows
// one leaves the gateway. So in JSON answers, string values that start with
// the credential's upstream (its target, with the /ex route, or its home site
// or Data Center base) are rewritten to the gateway's public base under the
// client's mount prefix: the same mapping as Location (mapLocation), but
// absolute, because clients join and follow these URLs as given.
//
// Only strings that START with such a URL are touched: a link inside a text
// (an issue description saying "see https://acme.atlassian.net/browse/X")
// stays what the user wrote, so a client that writes a field back does not
// store the gateway's address in Jira. URLs on other hosts (media downloads,
// bitbucket.org web pages, avatars) are never touched. The rewriting streams:
// it holds at most one read chunk plus the longest upstream prefix.

// smallBody is the largest answer with a known length that is rewritten in
// memory so that the client gets an exact Content-Length; larger (or
// unknown-length) answers are streamed without one.
const smallBody = 256 << 10

// linkPair maps one upstream prefix to the gateway base, both as they appear
// inside a JSON string (JSON-escaped).
type linkPair struct{ from, to []byte }

// linkRewriter holds the mappings of one request; nil means rewriting is off.
type linkRewriter struct {
	pairs   []linkPair // longest `from` first
	maxFrom int
}

// provisionLinks checks the link options.
func (h *Handler) provisionLinks() error {
	switch h.RewriteLinks {
	case "", "on", "off":
	default:
		return fmt.Errorf("rewrite_links: %q: use on or off", h.RewriteLinks)
	}
	if h.PublicURL == "" {
		return nil
	}
	u, err := url.Parse(h.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("public_url: %q must be an http:// or https:// base URL such as https://atlassian.example.com, without user info, query or fragment", h.PublicURL)
	}
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/"), strings.TrimRight(u.RawPath, "/")
	h.publicURL = u
	return nil
}

// linkRewriter returns the mappings for a request routed to target, or nil
// when rewriting is off. mount is the client's mount prefix (mountPrefix).
func (h *Handler) linkRewriter(r *http.Request, target, home *url.URL, mount string) *linkRewriter {
	if h.RewriteLinks == "off" {
		return nil
	}
	to := jsonEscape(gatewayBase(r, h.publicURL) + mount)
	lr := &linkRewriter{}
	seen := map[string]bool{}
	add := func(u *url.URL) {
		if u == nil {
			return
		}
		for _, from := range prefixForms(u) {
			if seen[from] {
				continue
			}
			seen[from] = true
			lr.pairs = append(lr.pairs, linkPair{from: jsonEscape(from), to: to})
		}
	}
	add(target)
	// A 3LO or scoped credential routes /wiki to /ex/confluence/{cloudId} and
	// everything else to /ex/jira/{cloudId}; a Jira answer may link to the
	// Confluence route of the same site and the other way round.
	if m := exRoute.FindStringSubmatch(target.EscapedPath()); m != nil {
		for _, product := range []string{"jira", "confluence"} {
			sibling := *target
			sibling.Path, sibling.RawPath = "/ex/"+product+"/"+m[1], ""
			add(&sibling)
		}
	}
	add(home)
	// Longest first, so that a prefix of another prefix never wins.
	for i := 1; i < len(lr.pairs); i++ {
		for j := i; j > 0 && len(lr.pairs[j].from) > len(lr.pairs[j-1].from); j-- {
			lr.pairs[j], lr.pairs[j-1] = lr.pairs[j-1], lr.pairs[j]
		}
	}
	for _, p := range lr.pairs {
		lr.maxFrom = max(lr.maxFrom, len(p.from))
	}
	return lr
}

var exRoute = regexp.MustCompile(`^/ex/(?:jira|confluence)/([^/]+)$`)

// prefixForms is how a base URL appears in Atlassian's answers: as configured,
// and without the default port when it is spelled out.
func prefixForms(u *url.URL) []string {
	forms := []string{u.Scheme + "://" + u.Host + u.EscapedPath()}
	if p := u.Port(); (p == "443" && u.Scheme == "https") || (p == "80" && u.Scheme == "http") {
		forms = append(forms, u.Scheme+"://"+u.Hostname()+u.EscapedPath())
	}
	return forms
}

// gatewayBase is the scheme and host under which the client reached the
// gateway: the configured public URL, else the request's own, taking
// X-Forwarded-Proto and X-Forwarded-Host only from a proxy Caddy trusts
// (the server's trusted_proxies).
func gatewayBase(r *http.Request, public *url.URL) string {
	if public != nil {
		return public.Scheme + "://" + public.Host + public.EscapedPath()
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
			scheme = p
		}
		if fh := firstValue(r.Header.Get("X-Forwarded-Host")); fh != "" {
			host = fh
		}
	}
	return (&url.URL{Scheme: scheme, Host: host}).String()
}

func firstValue(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

// jsonEscape returns s as it is written inside a JSON string.
func jsonEscape(s string) []byte {
	b, _ := json.Marshal(s)
	return b[1 : len(b)-1]
}

// prepare lets the upstream answer compressed only with gzip, which the
// transport decodes (Go's transparent decompression: it asks for gzip itself
// when the request names no encoding), so that JSON bodies can be read.
// Answers reach the client uncompressed; Caddy's `encode` can compress them.
func (lr *linkRewriter) prepare(req *http.Request) {
	if lr != nil {
		req.Header.Del("Accept-Encoding")
	}
}

// rewrite wraps a JSON answer's body with the rewriter and fixes its
// Content-Length. Other answers pass untouched.
func (lr *linkRewriter) rewrite(req *http.Request, resp *http.Response) error {
	if lr == nil || len(lr.pairs) == 0 || req.Method == http.MethodHead || resp.Body == nil ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		// Not asked for (prepare): leave it rather than corrupt it.
		return nil
	}
	body := &linkReader{src: resp.Body, lr: lr}
	if resp.ContentLength >= 0 && resp.ContentLength <= smallBody {
		b, err := io.ReadAll(body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("reading upstream answer: %w", err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	resp.Body = body
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	return nil
}

// linkReader rewrites a JSON stream. It follows JSON's string syntax (quotes
// and backslash escapes) so that it knows where each string starts, and
// replaces an upstream prefix at a string's start when a URL boundary (/, ?,
// #, or the end of the string) follows it. Input it cannot judge yet (less
// than the longest prefix plus one byte before the end of what was read) waits
// for the next read.
type linkReader struct {
	src   io.ReadCloser
	lr    *linkRewriter
	in    []byte // read, not yet processed
	out   []byte // processed, not yet returned
	off   int    // returned part of out
	inStr bool
	eof   bool
	err   error
}

const linkChunk = 32 << 10

func (l *linkReader) Read(p []byte) (int, error) {
	for l.off == len(l.out) {
		if l.eof {
			if l.err != nil {
				return 0, l.err
			}
			return 0, io.EOF
		}
		l.out, l.off = l.out[:0], 0
		l.fill()
		l.process()
	}
	n := copy(p, l.out[l.off:])
	l.off += n
	return n, nil
}

func (l *linkReader) Close() error { return l.src.Close() }

// fill reads one chunk (a read error ends the stream after what was read).
func (l *linkReader) fill() {
	if cap(l.in)-len(l.in) < linkChunk {
		grown := make([]byte, len(l.in), len(l.in)+linkChunk)
		copy(grown, l.in)
		l.in = grown
	}
	n, err := l.src.Read(l.in[len(l.in) : len(l.in)+linkChunk])
	l.in = l.in[:len(l.in)+n]
	if err != nil {
		l.eof = true
		if err != io.EOF {
			l.err = err
		}
	}
}

// process moves what can be judged from in to out.
func (l *linkReader) process() {
	in, limit := l.in, len(l.in)
	if !l.eof {
		limit -= l.lr.maxFrom + 1
	}
	i := 0
	for i < limit {
		if !l.inStr {
			j := bytes.IndexByte(in[i:limit], '"')
			if j < 0 {
				l.out = append(l.out, in[i:limit]...)
				i = limit
				break
			}
			l.out = append(l.out, in[i:i+j+1]...)
			i += j + 1
			l.inStr = true
			i += l.replaceAt(in, i)
			continue
		}
		// The string's end or its next escape, whichever comes first
		// (IndexByte is vectorised; a byte loop is three times slower).
		j := bytes.IndexByte(in[i:limit], '"')
		if j < 0 {
			j = limit - i
		}
		if k := bytes.IndexByte(in[i:i+j], '\\'); k >= 0 {
			j = k
		}
		j += i
		l.out = append(l.out, in[i:j]...)
		i = j
		if j == limit {
			break
		}
		if in[j] == '"' {
			l.out = append(l.out, '"')
			l.inStr = false
			i++
			continue
		}
		// A backslash and the byte it escapes go together (an escaped quote
		// does not end the string).
		end := min(j+2, len(in))
		l.out = append(l.out, in[j:end]...)
		i = end
	}
	// Keep the unprocessed rest at the front of the buffer.
	l.in = l.in[:copy(l.in, in[i:])]
}

// replaceAt writes the mapping of an upstream prefix at in[i:] to out and
// returns how many input bytes it replaced (0: none).
func (l *linkReader) replaceAt(in []byte, i int) int {
	rest := in[i:]
	for _, p := range l.lr.pairs {
		if len(rest) > len(p.from) && bytes.HasPrefix(rest, p.from) && isURLBoundary(rest[len(p.from)]) {
			l.out = append(l.out, p.to...)
			return len(p.from)
		}
	}
	return 0
}

// isURLBoundary: the prefix ends at a path segment (so /ex/jira/abc does not
// match /ex/jira/abcd, nor acme.atlassian.net match acme.atlassian.net.evil).
func isURLBoundary(b byte) bool {
	return b == '/' || b == '?' || b == '#' || b == '"'
}

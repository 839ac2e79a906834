package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func scopedRewriter(t testing.TB) *linkRewriter {
	t.Helper()
	h := &Handler{}
	if err := h.provisionLinks(); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "http://gw.example:8080/rest/api/3/myself", nil)
	return h.linkRewriter(r, mustURL("https://api.atlassian.com/ex/jira/abc-123"), mustURL("https://acme.atlassian.net"), "/atlassian")
}

func rewriteString(lr *linkRewriter, in string, oneByte bool) (string, error) {
	var src io.Reader = strings.NewReader(in)
	if oneByte {
		src = iotest.OneByteReader(src)
	}
	out, err := io.ReadAll(&linkReader{src: io.NopCloser(src), lr: lr})
	return string(out), err
}

func TestLinkRewriting(t *testing.T) {
	lr := scopedRewriter(t)
	gw := "http://gw.example:8080/atlassian"
	cases := []struct{ name, in, want string }{
		{"jira self on the ex route", `{"self":"https://api.atlassian.com/ex/jira/abc-123/rest/api/3/issue/1"}`,
			`{"self":"` + gw + `/rest/api/3/issue/1"}`},
		{"sibling product route", `{"a":"https://api.atlassian.com/ex/confluence/abc-123/wiki/rest/api/content?start=25"}`,
			`{"a":"` + gw + `/wiki/rest/api/content?start=25"}`},
		{"site base", `{"_links":{"base":"https://acme.atlassian.net/wiki","next":"/rest/api/content?start=2"}}`,
			`{"_links":{"base":"` + gw + `/wiki","next":"/rest/api/content?start=2"}}`},
		{"bare site", `["https://acme.atlassian.net"]`, `["` + gw + `"]`},
		{"query and fragment boundaries", `["https://acme.atlassian.net?x","https://acme.atlassian.net#y"]`,
			`["` + gw + `?x","` + gw + `#y"]`},
		{"other cloudId untouched", `{"self":"https://api.atlassian.com/ex/jira/abc-1234/rest"}`,
			`{"self":"https://api.atlassian.com/ex/jira/abc-1234/rest"}`},
		{"api host outside the route untouched", `{"u":"https://api.atlassian.com/oauth/token/accessible-resources"}`,
			`{"u":"https://api.atlassian.com/oauth/token/accessible-resources"}`},
		{"look-alike host untouched", `{"u":"https://acme.atlassian.net.evil.com/x"}`, `{"u":"https://acme.atlassian.net.evil.com/x"}`},
		{"other port untouched", `{"u":"https://acme.atlassian.net:8443/x"}`, `{"u":"https://acme.atlassian.net:8443/x"}`},
		{"media host untouched", `{"u":"https://api.media.atlassian.com/file/1/binary"}`, `{"u":"https://api.media.atlassian.com/file/1/binary"}`},
		{"link inside a text untouched", `{"description":"see https://acme.atlassian.net/browse/X-1"}`,
			`{"description":"see https://acme.atlassian.net/browse/X-1"}`},
		{"after an escaped quote untouched", `{"html":"<a href=\"https://acme.atlassian.net/x\">"}`,
			`{"html":"<a href=\"https://acme.atlassian.net/x\">"}`},
		{"escaped backslash then a real string", `["a\\","https://acme.atlassian.net/x"]`,
			`["a\\","` + gw + `/x"]`},
		{"keys are strings too, but never URLs", `{"https://acme.atlassian.net/k":1}`, `{"` + gw + `/k":1}`},
		{"not JSON string content", `{"n":1,"b":true}`, `{"n":1,"b":true}`},
		{"truncated at the end", `{"self":"https://acme.atlassian.net`, `{"self":"https://acme.atlassian.net`},
	}
	for _, c := range cases {
		for _, oneByte := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/onebyte=%v", c.name, oneByte), func(t *testing.T) {
				got, err := rewriteString(lr, c.in, oneByte)
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					t.Errorf("got  %s\nwant %s", got, c.want)
				}
			})
		}
	}
}

// The gateway base: the public URL when configured, else what the client
// used, with X-Forwarded-* believed only from a trusted proxy.
func TestGatewayBase(t *testing.T) {
	withVars := func(r *http.Request, trusted bool) *http.Request {
		ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.TrustedProxyVarKey: trusted})
		return r.WithContext(ctx)
	}
	plain := httptest.NewRequest(http.MethodGet, "http://gw.test:8080/x", nil)
	plain.Header.Set("X-Forwarded-Proto", "https")
	plain.Header.Set("X-Forwarded-Host", "evil.example")
	tlsReq := httptest.NewRequest(http.MethodGet, "https://gw.test/x", nil)
	tlsReq.TLS = &tls.ConnectionState{}
	public := &Handler{PublicURL: "https://atlassian.example.com/base/"}
	if err := public.provisionLinks(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		r    *http.Request
		h    *Handler
		want string
	}{
		{"untrusted forwarding headers ignored", withVars(plain, false), &Handler{}, "http://gw.test:8080"},
		{"trusted proxy believed", withVars(plain, true), &Handler{}, "https://evil.example"},
		{"TLS", withVars(tlsReq, false), &Handler{}, "https://gw.test"},
		{"public URL wins", withVars(plain, true), public, "https://atlassian.example.com/base"},
	}
	for _, c := range cases {
		if got := gatewayBase(c.r, c.h.publicURL); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	for _, bad := range []string{"ftp://x", "https://", "https://u:p@x", "https://x/?q", "/relative"} {
		h := &Handler{PublicURL: bad}
		if err := h.provisionLinks(); err == nil || !strings.Contains(err.Error(), "public_url") {
			t.Errorf("public_url %q: error %v", bad, err)
		}
	}
	if err := (&Handler{RewriteLinks: "maybe"}).provisionLinks(); err == nil || !strings.Contains(err.Error(), "rewrite_links") {
		t.Errorf("rewrite_links maybe: %v", err)
	}
}

func jsonResponse(body, contentType string, length int64) *http.Response {
	resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: length}
	resp.Header.Set("Content-Type", contentType)
	if length >= 0 {
		resp.Header.Set("Content-Length", strconv.FormatInt(length, 10))
	}
	return resp
}

// What reaches the client: JSON rewritten with a correct length, other types
// and undecodable encodings untouched, long answers streamed without a length.
func TestRewriteResponse(t *testing.T) {
	lr := scopedRewriter(t)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	in := `{"next":"https://acme.atlassian.net/2.0/x?page=2"}`
	want := `{"next":"http://gw.example:8080/atlassian/2.0/x?page=2"}`

	resp := jsonResponse(in, "application/json;charset=UTF-8", int64(len(in)))
	if err := lr.rewrite(req, resp); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != want || resp.Header.Get("Content-Length") != strconv.Itoa(len(want)) || resp.ContentLength != int64(len(want)) {
		t.Errorf("small JSON: %s, Content-Length %q/%d", b, resp.Header.Get("Content-Length"), resp.ContentLength)
	}

	for _, ct := range []string{"text/html", "application/xml", "application/jsonx", ""} {
		resp := jsonResponse(in, ct, int64(len(in)))
		lr.rewrite(req, resp)
		if b, _ := io.ReadAll(resp.Body); string(b) != in {
			t.Errorf("%q answer was changed: %s", ct, b)
		}
	}
	resp = jsonResponse(in, "application/json", int64(len(in)))
	resp.Header.Set("Content-Encoding", "br")
	lr.rewrite(req, resp)
	if b, _ := io.ReadAll(resp.Body); string(b) != in {
		t.Errorf("br-encoded answer was changed: %s", b)
	}
	if (*linkRewriter)(nil).rewrite(req, jsonResponse(in, "application/json", -1)) != nil {
		t.Error("rewriting off must be a no-op")
	}

	big := `[` + strings.Repeat(`"https://acme.atlassian.net/x",`, smallBody/20) + `1]`
	resp = jsonResponse(big, "application/json", int64(len(big)))
	lr.rewrite(req, resp)
	b, _ = io.ReadAll(resp.Body)
	if resp.Header.Get("Content-Length") != "" || resp.ContentLength != -1 {
		t.Errorf("streamed answer kept a length: %q", resp.Header.Get("Content-Length"))
	}
	if n := bytes.Count(b, []byte(`"http://gw.example:8080/atlassian/x"`)); n != smallBody/20 {
		t.Errorf("streamed answer: %d links rewritten, want %d", n, smallBody/20)
	}
}

// The rewriter holds a bounded amount: it never reads the whole answer first.
func TestLinkReaderStreams(t *testing.T) {
	lr := scopedRewriter(t)
	pr, pw := io.Pipe()
	l := &linkReader{src: pr, lr: lr}
	go func() {
		pw.Write([]byte(`{"self":"https://acme.atlassian.net/a","pad":"` + strings.Repeat("x", 4096)))
		// The rest is written only after the reader has produced output.
	}()
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(l, buf, 40)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(buf[:n]), `{"self":"http://gw.example:8080/atlassian/a"`) {
		t.Errorf("first bytes: %s", buf[:n])
	}
	pw.Close()
}

// BenchmarkRewriteLinks1MB is the cost of rewriting a 1 MB JSON answer full
// of links (Bitbucket-like pages), streamed.
func BenchmarkRewriteLinks1MB(b *testing.B) {
	lr := scopedRewriter(b)
	var sb strings.Builder
	sb.WriteString(`{"values":[`)
	for sb.Len() < 1<<20 {
		sb.WriteString(`{"type":"repository","name":"r","description":"a \"quoted\" text","links":{"self":{"href":"https://api.atlassian.com/ex/jira/abc-123/rest/api/3/issue/10001"},"html":{"href":"https://bitbucket.org/ws/r"}}},`)
	}
	sb.WriteString(`{}],"next":"https://acme.atlassian.net/x?page=2"}`)
	body := sb.String()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		l := &linkReader{src: io.NopCloser(strings.NewReader(body)), lr: lr}
		if _, err := io.Copy(io.Discard, l); err != nil {
			b.Fatal(err)
		}
	}
}

package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The query half of the attack table: whatever separator or encoding a
// client uses, no credential parameter survives, and a query without one
// goes on byte for byte.
func TestStripParams(t *testing.T) {
	cases := []struct {
		name, in, want string
		override       bool
	}{
		{"untouched", "jql=project%20%3D%20DEMO&fields=*all", "jql=project%20%3D%20DEMO&fields=*all", false},
		{"untouched with odd encoding", "jql=a%zz&x=1;y", "jql=a%zz&x=1;y", false},
		{"ampersand", "a=1&os_password=x&b=2", "a=1&b=2", false},
		{"semicolon-separated", "a=1;os_username=mallory;os_password=x", "a=1", false},
		{"semicolon only pairs", "os_username=mallory;os_password=x", "", false},
		{"mixed separators", "os_password=x;a=1&jwt=j", "a=1", false},
		{"unparseable rest of query", "os_password=x&bad=%zz", "bad=%zz", false},
		{"encoded key", "os%5Fpassword=x&a=1", "a=1", false},
		{"encoded key, every letter", "%6F%73%5F%75%73%65%72%6E%61%6D%65=m", "", false},
		{"case variant", "ACCESS_TOKEN=t&Os_AuthType=basic", "", false},
		{"key without value", "os_password&a", "a", false},
		{"credential name as a value is fine", "q=os_password", "q=os_password", false},
		{"override parameter", "_method=DELETE", "_method=DELETE", true},
		{"encoded override parameter", "%5Fmethod=DELETE", "%5Fmethod=DELETE", true},
		{"override after semicolon", "a=1;_method=DELETE", "a=1;_method=DELETE", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, override := stripParams(c.in)
			if got != c.want || override != c.override {
				t.Errorf("stripParams(%q) = %q, %t; want %q, %t", c.in, got, override, c.want, c.override)
			}
		})
	}
}

// The method and path half of the attack table, as atlasgate_proxy applies
// it with or without an access policy in front.
func TestCheckRequest(t *testing.T) {
	cases := []struct {
		name, method, target string
		header               http.Header
		status               int // 0: accepted
		path                 string
	}{
		{"plain", "GET", "/rest/api/3/myself", nil, 0, "/rest/api/3/myself"},
		{"TRACE", "TRACE", "/rest/api/3/myself", nil, 405, ""},
		{"TRACK", "TRACK", "/rest/api/3/myself", nil, 405, ""},
		{"lower-case trace", "trace", "/rest/api/3/myself", nil, 405, ""},
		{"CONNECT", "CONNECT", "/rest/api/3/myself", nil, 405, ""},
		{"X-HTTP-Method-Override", "GET", "/rest/api/3/issue/X-1", http.Header{"X-Http-Method-Override": {"DELETE"}}, 400, ""},
		{"X-HTTP-Method", "GET", "/rest/api/3/issue/X-1", http.Header{"X-Http-Method": {"DELETE"}}, 400, ""},
		{"X-Method-Override", "POST", "/rest/api/3/issue/X-1", http.Header{"X-Method-Override": {"PUT"}}, 400, ""},
		{"dot segments out of a context path", "GET", "/jira/../rest/api/2/myself", nil, 0, "/rest/api/2/myself"},
		{"dot segments out of the ex prefix", "GET", "/../../confluence/x/wiki", nil, 400, ""},
		{"encoded dot segments", "GET", "/rest/api/3/issue/%2e%2e/myself", nil, 0, "/rest/api/3/myself"},
		{"encoded slash", "GET", "/rest/api/3/issue/..%2fmyself", nil, 400, ""},
		{"fullwidth dots", "GET", "/rest/api/3/issue/%EF%BC%8E%EF%BC%8E/myself", nil, 400, ""},
		{"fullwidth slash", "GET", "/rest/api/3/issue%EF%BC%8Fmyself", nil, 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", c.target, nil)
			r.Method = c.method
			for k, v := range c.header {
				r.Header[k] = v
			}
			e := checkRequest(r)
			switch {
			case c.status == 0 && e != nil:
				t.Fatalf("refused: %d %s", e.status, e.message)
			case c.status != 0 && e == nil:
				t.Fatalf("accepted as %s, want %d", r.URL.Path, c.status)
			case c.status != 0 && e.status != c.status:
				t.Fatalf("status %d, want %d", e.status, c.status)
			case c.status == 0 && (r.URL.Path != c.path || r.URL.RawPath != ""):
				t.Fatalf("path %q (raw %q), want %q", r.URL.Path, r.URL.RawPath, c.path)
			}
			if c.status == 405 {
				w := httptest.NewRecorder()
				e.write(w)
				if w.Code != 405 || w.Header().Get("Allow") == "" || !strings.Contains(w.Body.String(), `"method_not_allowed"`) {
					t.Errorf("405 answer: %d %v %s", w.Code, w.Header(), w.Body)
				}
			}
		})
	}
}

// Data Center's Seraph reads os_username/os_password from a urlencoded POST
// body as from the query: they are removed there too, the rest of the form
// goes on as sent.
func TestStripFormBody(t *testing.T) {
	cases := []struct {
		name, ctype, body, want string
		status                  int
	}{
		{"form credentials", "application/x-www-form-urlencoded", "os_username=admin&os_password=x&summary=a+b", "summary=a+b", 0},
		{"content type with charset, odd case", "Application/X-WWW-Form-Urlencoded; charset=UTF-8", "summary=a;os_password=x", "summary=a", 0},
		{"form untouched", "application/x-www-form-urlencoded", "summary=a%zz&x", "summary=a%zz&x", 0},
		{"override field", "application/x-www-form-urlencoded", "_method=DELETE", "", 400},
		{"JSON body untouched", "application/json", `{"os_password":"x"}`, `{"os_password":"x"}`, 0},
		{"too large", "application/x-www-form-urlencoded", "a=" + strings.Repeat("x", maxFormBody), "", 413},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/secure/Dashboard.jspa", strings.NewReader(c.body))
			r.Header.Set("Content-Type", c.ctype)
			e := stripClientCredentials(r)
			if c.status != 0 {
				if e == nil || e.status != c.status {
					t.Fatalf("got %v, want %d", e, c.status)
				}
				return
			}
			if e != nil {
				t.Fatal(e)
			}
			got, _ := io.ReadAll(r.Body)
			if string(got) != c.want {
				t.Errorf("body %q, want %q", got, c.want)
			}
			if r.ContentLength != int64(len(c.want)) {
				t.Errorf("ContentLength %d, want %d", r.ContentLength, len(c.want))
			}
			if r.GetBody != nil {
				again, _ := r.GetBody()
				b, _ := io.ReadAll(again)
				if string(b) != c.want {
					t.Errorf("GetBody gives %q", b)
				}
			}
		})
	}
}

// FuzzStripParams: whatever the query or form, no pair that a server could
// read as a credential parameter survives, and a query without one goes on
// byte for byte.
func FuzzStripParams(f *testing.F) {
	for _, s := range []string{"a=1&os_password=x", "os_username=m;os_password=x", "os%5Fpassword=x&b=%zz", "jwt", "&&;;", "a=1;_method=DELETE"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, _ := stripParams(raw)
		had := false
		for _, piece := range strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == ';' }) {
			k, _, _ := strings.Cut(piece, "=")
			had = had || isCredentialParam(lenientUnescape(k))
		}
		if !had && out != raw {
			t.Fatalf("stripParams(%q) = %q without a credential parameter", raw, out)
		}
		for _, piece := range strings.FieldsFunc(out, func(r rune) bool { return r == '&' || r == ';' }) {
			k, _, _ := strings.Cut(piece, "=")
			if isCredentialParam(lenientUnescape(k)) {
				t.Fatalf("stripParams(%q) = %q keeps %q", raw, out, piece)
			}
		}
		if again, _ := stripParams(out); again != out {
			t.Fatalf("stripParams is not stable: %q, then %q", out, again)
		}
	})
}

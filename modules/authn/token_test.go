package authn

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTokenSource(t *testing.T) {
	const placeholder = "Basic cGxhY2Vob2xkZXI6eA=="
	custom := TokenSource{TokenHeader: "X-Atlasgate-Token"}
	prefixed := TokenSource{TokenHeader: "X-Atlasgate-Token", TokenHeaderScheme: "Token"}
	proxy := TokenSource{TokenHeader: "Proxy-Authorization"}
	cases := []struct {
		name    string
		src     TokenSource
		header  http.Header
		want    string
		wantErr string // "" ok, "none" ErrNoCredential, else the description
	}{
		{"custom header, placeholder Authorization", custom, http.Header{"Authorization": {placeholder}, "X-Atlasgate-Token": {" tok "}}, "tok", ""},
		{"header wins over Authorization", custom, http.Header{"Authorization": {"Bearer other"}, "X-Atlasgate-Token": {"tok"}}, "tok", ""},
		{"Authorization Bearer without the header", custom, http.Header{"Authorization": {"Bearer tok"}}, "tok", ""},
		{"placeholder only", custom, http.Header{"Authorization": {placeholder}}, "", "none"},
		{"scheme required", prefixed, http.Header{"X-Atlasgate-Token": {"token tok"}}, "tok", ""},
		{"wrong scheme is not ours", prefixed, http.Header{"X-Atlasgate-Token": {"Bearer tok"}}, "", "none"},
		{"Proxy-Authorization defaults to Bearer", proxy, http.Header{"Proxy-Authorization": {"Bearer tok"}}, "tok", ""},
		{"Proxy-Authorization Basic is a proxy's", proxy, http.Header{"Proxy-Authorization": {placeholder}}, "", "none"},
		{"repeated header", custom, http.Header{"X-Atlasgate-Token": {"a", "b"}}, "", "more than one X-Atlasgate-Token header"},
		{"spaces inside", custom, http.Header{"X-Atlasgate-Token": {"a b"}}, "", "malformed token in X-Atlasgate-Token"},
		{"oversized", custom, http.Header{"X-Atlasgate-Token": {strings.Repeat("a", MaxTokenLength+2)}}, "", "credential too large"},
		{"no header configured", TokenSource{}, http.Header{"X-Atlasgate-Token": {"tok"}}, "", "none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header = c.header
			got, err := c.src.Token(r)
			switch {
			case c.wantErr == "" && (err != nil || got != c.want):
				t.Errorf("got %q, %v; want %q", got, err, c.want)
			case c.wantErr == "none" && !errors.Is(err, ErrNoCredential):
				t.Errorf("got %q, %v; want no credential", got, err)
			case c.wantErr != "" && c.wantErr != "none":
				var ae *Error
				if !errors.As(err, &ae) || ae.Description != c.wantErr || ae.Status != http.StatusUnauthorized {
					t.Errorf("got %q, %v; want 401 %q", got, err, c.wantErr)
				}
			}
		})
	}
	for _, bad := range []string{"Authorization", "authorization", "X Token"} {
		if err := (TokenSource{TokenHeader: bad}).ValidateTokenSource(); err == nil || !strings.HasPrefix(err.Error(), "token_header: ") {
			t.Errorf("token_header %q: %v", bad, err)
		}
	}
	if got := proxy.CredentialHeaders(); len(got) != 1 || got[0] != "Proxy-Authorization" {
		t.Errorf("CredentialHeaders = %v", got)
	}
}

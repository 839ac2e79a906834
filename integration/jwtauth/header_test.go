package jwtauth

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
)

// This file sorts before jwtauth_test.go, whose last step stops the OP.

// headerConfig: SDK-style clients send their own placeholder Atlassian
// credentials in Authorization, so the caller's token travels in a custom
// header (one site) or in Proxy-Authorization (the other).
const headerConfig = `{
%s
	atlasgate {
		credential jira api_token {
			site %s
			email %s
			token {env.%s}
			trusted_ca_file %s
		}
		authenticator custom jwt {
			preset oidc %s
			audience atlasgate
			token_header X-Atlasgate-Token
		}
		authenticator proxy jwt {
			preset oidc %s
			audience atlasgate
			token_header Proxy-Authorization
		}
	}
}

http://custom.test:%d {
	atlasgate_auth custom
	atlasgate_proxy jira
}

http://proxy.test:%d {
	atlasgate_auth proxy
	atlasgate_proxy jira
}
`

// The placeholder credentials jira.js and the Bitbucket clients send.
var placeholder = basic("placeholder@example.com", "placeholder")

func TestTokenInAnotherHeader(t *testing.T) {
	port, adminPort := itest.FreePort(t), itest.FreePort(t)
	itest.MustLoad(t, fmt.Sprintf(headerConfig, itest.GlobalOptions(adminPort, filepath.Join(workDir, "storage")),
		sim.URL(atlassim.HostSite), atlassim.DemoEmail, envAPIToken, caFile, idp.issuer, idp.issuer, port, port))
	tok := token(t, "app")
	call := func(site string, header http.Header) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/rest/api/3/myself", port), nil)
		req.Host = fmt.Sprintf("%s.test:%d", site, port)
		req.Header = header
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// What reached Atlassian: the injected credential only.
	checkUpstream := func() {
		t.Helper()
		reqs := sim.RequestsTo(atlassim.HostSite)
		if len(reqs) == 0 {
			t.Fatal("the simulator received no request")
		}
		rec := reqs[len(reqs)-1]
		if got, want := rec.Header.Get("Authorization"), basic(atlassim.DemoEmail, atlassim.DemoAPIToken); got != want {
			t.Errorf("Authorization at the simulator = %q, want the injected API token", got)
		}
		for name, vals := range rec.Header {
			for _, v := range vals {
				if strings.Contains(v, tok[len(tok)-20:]) || v == placeholder {
					t.Errorf("the client's %s reached the simulator", name)
				}
			}
		}
	}
	ok := []struct {
		site   string
		header http.Header
	}{
		{"custom", http.Header{"Authorization": {placeholder}, "X-Atlasgate-Token": {tok}}},
		{"proxy", http.Header{"Authorization": {placeholder}, "Proxy-Authorization": {"Bearer " + tok}}},
		// Authorization: Bearer keeps working beside the header.
		{"custom", http.Header{"Authorization": {"Bearer " + tok}}},
	}
	for _, c := range ok {
		sim.ResetRequests()
		if status, body := call(c.site, c.header); status != http.StatusOK || !strings.Contains(body, atlassim.DemoAccountID) {
			t.Errorf("%s %v: %d %s", c.site, keys(c.header), status, body)
			continue
		}
		checkUpstream()
	}

	refused := []struct {
		name, site string
		header     http.Header
		want       string
	}{
		{"bad token in the header", "custom", http.Header{"Authorization": {placeholder}, "X-Atlasgate-Token": {"garbage.with.dots"}}, "malformed token"},
		{"only the placeholder", "custom", http.Header{"Authorization": {placeholder}}, "credential not accepted by this gateway"},
		{"Proxy-Authorization for a proxy (Basic)", "proxy", http.Header{"Authorization": {placeholder}, "Proxy-Authorization": {placeholder}}, "credential not accepted by this gateway"},
		{"two token headers", "custom", http.Header{"X-Atlasgate-Token": {tok, tok}}, "more than one X-Atlasgate-Token header"},
	}
	for _, c := range refused {
		status, body := call(c.site, c.header)
		if status != http.StatusUnauthorized || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want 401 %q", c.name, status, body, c.want)
		}
		if strings.Contains(body, tok) {
			t.Errorf("%s: the answer echoes the token", c.name)
		}
	}
}

func keys(h http.Header) []string {
	var out []string
	for k := range h {
		out = append(out, k)
	}
	return out
}

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
)

// linkClient is a client that follows links as SDKs do: it requests whatever
// absolute URL an answer gave it. Every *.test host resolves to the gateway;
// any other host (the simulator's) is refused, so a link that leads straight
// to Atlassian fails the test.
func (g *gateway) linkClient() func(t *testing.T, rawURL string, header http.Header) (*http.Response, map[string]any) {
	gw := fmt.Sprintf("127.0.0.1:%d", g.port)
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(addr)
			if !strings.HasSuffix(host, ".test") || port != strconv.Itoa(g.port) {
				return nil, fmt.Errorf("the client was sent off the gateway, to %s", addr)
			}
			return (&net.Dialer{}).DialContext(ctx, network, gw)
		}},
	}
	return func(t *testing.T, rawURL string, header http.Header) (*http.Response, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, rawURL, nil)
		if err != nil {
			t.Fatalf("link %q: %v", rawURL, err)
		}
		req.SetBasicAuth(clientUser, clientPassword)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("following %q: %v", rawURL, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading %q: %v", rawURL, err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s", rawURL, resp.StatusCode, b)
		}
		if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(b)) {
			t.Errorf("GET %s: Content-Length %s, body %d bytes", rawURL, cl, len(b))
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("GET %s: not JSON (%v): %.200s", rawURL, err, b)
		}
		return resp, v
	}
}

func (g *gateway) siteURL(site, path string) string {
	return fmt.Sprintf("http://%s.test:%d%s", site, g.port, path)
}

// A Bitbucket client that follows `next` (and `previous`) across pages stays
// on the gateway, also when Atlassian compresses its answers; links to other
// hosts (the web page on bitbucket.org) are left alone.
func TestBitbucketPagingStaysOnGateway(t *testing.T) {
	g := startGateway(t)
	get := g.linkClient()
	for _, compressed := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", compressed), func(t *testing.T) {
			sim.SetGzip(compressed)
			defer sim.SetGzip(false)
			hdr := http.Header{}
			if compressed {
				// Set explicitly, so Go's client does not decode for us: the
				// answer must arrive readable as it is.
				hdr.Set("Accept-Encoding", "gzip")
			}
			var names []string
			next := g.siteURL("bitbucket", "/2.0/repositories/"+atlassim.DemoWorkspace+"?pagelen=1")
			var last map[string]any
			for next != "" {
				_, page := get(t, next, hdr)
				for _, v := range page["values"].([]any) {
					repo := v.(map[string]any)
					names = append(names, repo["name"].(string))
					links := repo["links"].(map[string]any)
					self := links["self"].(map[string]any)["href"].(string)
					if !strings.HasPrefix(self, g.siteURL("bitbucket", "/2.0/repositories/")) {
						t.Errorf("links.self.href = %q, not on the gateway", self)
					}
					if html := links["html"].(map[string]any)["href"].(string); !strings.HasPrefix(html, "https://bitbucket.org/") {
						t.Errorf("links.html.href (another host) was changed: %q", html)
					}
				}
				next, _ = page["next"].(string)
				last = page
			}
			if strings.Join(names, ",") != "widgets,gadgets" {
				t.Errorf("repositories across pages: %v", names)
			}
			prev, _ := last["previous"].(string)
			if want := g.siteURL("bitbucket", "/2.0/repositories/"+atlassim.DemoWorkspace+"?pagelen=1&page=1"); prev != want {
				t.Errorf("previous = %q, want %q", prev, want)
			}
			get(t, prev, hdr)
		})
	}
}

// Jira's `self` through a scoped token's /ex route, and Confluence v1's
// `_links.base` + relative `next` under a handle_path mount, lead back to the
// gateway.
func TestLinksLeadBackThroughRouteAndMount(t *testing.T) {
	g := startGateway(t)
	get := g.linkClient()

	_, issue := get(t, g.siteURL("jira-scoped", "/rest/api/3/issue/DEMO-1"), nil)
	self, _ := issue["self"].(string)
	if !strings.HasPrefix(self, g.siteURL("jira-scoped", "/rest/api/3/issue/")) {
		t.Fatalf("self = %q, not on the gateway", self)
	}
	if _, again := get(t, self, nil); again["key"] != "DEMO-1" {
		t.Errorf("following self gave %v", again["key"])
	}

	var ids []string
	next := g.siteURL("mounted", "/atlassian/wiki/rest/api/content?limit=1")
	for next != "" {
		_, page := get(t, next, nil)
		for _, r := range page["results"].([]any) {
			ids = append(ids, r.(map[string]any)["id"].(string))
		}
		links := page["_links"].(map[string]any)
		base := links["base"].(string)
		if want := g.siteURL("mounted", "/atlassian/wiki"); base != want {
			t.Fatalf("_links.base = %q, want %q", base, want)
		}
		next = ""
		if rel, ok := links["next"].(string); ok {
			next = base + rel // what Confluence clients do
		}
	}
	if strings.Join(ids, ",") != atlassim.DemoPageID+",65538" {
		t.Errorf("pages across pages: %v", ids)
	}
}

// `public_url` replaces the request's scheme and host; `rewrite_links off`
// passes Atlassian's links through.
func TestLinkOptions(t *testing.T) {
	g := startGateway(t)
	cf := g.caddyfile() + fmt.Sprintf(`
http://public.test:%[1]d {
	import client
	atlasgate_proxy bitbucket {
		public_url https://atlassian.example.com/bb/
	}
}

http://raw.test:%[1]d {
	import client
	atlasgate_proxy bitbucket {
		rewrite_links off
	}
}
`, g.port)
	if status, body := g.reload(cf); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	path := "/2.0/repositories/" + atlassim.DemoWorkspace + "?pagelen=1"
	get := g.linkClient()
	_, page := get(t, g.siteURL("public", path), nil)
	if next, want := page["next"], "https://atlassian.example.com/bb/2.0/repositories/"+atlassim.DemoWorkspace+"?pagelen=1&page=2"; next != want {
		t.Errorf("next with public_url = %q, want %q", next, want)
	}
	_, page = get(t, g.siteURL("raw", path), nil)
	if next, _ := page["next"].(string); !strings.HasPrefix(next, sim.URL(atlassim.HostBitbucket)+"/") {
		t.Errorf("next with rewrite_links off = %q, want Atlassian's own", next)
	}
}

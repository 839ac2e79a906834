package atlassim

import (
	"encoding/json"
	"net/url"
	"testing"
)

// Jira's enhanced search pages by an opaque nextPageToken; Confluence v1 by
// a relative _links.next; Bitbucket by absolute next and previous.
func TestPaging(t *testing.T) {
	s, c := start(t, Config{Seed: true})
	auth := basic(DemoEmail, DemoAPIToken)

	var keys []string
	token := ""
	for range 5 {
		u := s.URL(HostSite) + "/rest/api/3/search/jql?jql=project%3DDEMO&maxResults=1"
		if token != "" {
			u += "&nextPageToken=" + url.QueryEscape(token)
		}
		res := do(t, c, "GET", u, auth, "")
		var page struct {
			Issues        []struct{ Key string }
			NextPageToken string
			IsLast        bool
		}
		if res.status != 200 || json.Unmarshal([]byte(res.body), &page) != nil || len(page.Issues) != 1 {
			t.Fatalf("search page: %d %s", res.status, res.body)
		}
		keys = append(keys, page.Issues[0].Key)
		if page.IsLast != (page.NextPageToken == "") {
			t.Fatalf("isLast %v with nextPageToken %q", page.IsLast, page.NextPageToken)
		}
		if page.IsLast {
			break
		}
		token = page.NextPageToken
	}
	if len(keys) != 2 || keys[0] != "DEMO-1" || keys[1] != "DEMO-2" {
		t.Errorf("search pages: %v", keys)
	}
	if res := do(t, c, "GET", s.URL(HostSite)+"/rest/api/3/search/jql?nextPageToken=%21%21", auth, ""); res.status != 400 {
		t.Errorf("bad nextPageToken: %d", res.status)
	}

	res := do(t, c, "GET", s.URL(HostSite)+"/wiki/rest/api/content?limit=1", auth, "")
	var conf struct {
		Links struct{ Base, Next string } `json:"_links"`
	}
	if json.Unmarshal([]byte(res.body), &conf) != nil || conf.Links.Base != s.URL(HostSite)+"/wiki" ||
		conf.Links.Next != "/rest/api/content?next=true&limit=1&start=1" {
		t.Fatalf("confluence page 1: %s", res.body)
	}
	res = do(t, c, "GET", conf.Links.Base+conf.Links.Next, auth, "")
	conf.Links.Next = ""
	if json.Unmarshal([]byte(res.body), &conf) != nil || conf.Links.Next != "" {
		t.Errorf("confluence last page: %s", res.body)
	}

	bb := basic(DemoEmail, DemoBitbucketAPIToken)
	res = do(t, c, "GET", s.URL(HostBitbucket)+"/2.0/repositories/"+DemoWorkspace+"?pagelen=1&page=2", bb, "")
	var page struct{ Next, Previous string }
	if json.Unmarshal([]byte(res.body), &page) != nil || page.Next != "" ||
		page.Previous != s.URL(HostBitbucket)+"/2.0/repositories/"+DemoWorkspace+"?pagelen=1&page=1" {
		t.Errorf("bitbucket last page: %s", res.body)
	}
}

package credentials

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

func init() {
	caddy.RegisterModule(APIToken{})
}

// defaultAPIBase is Atlassian's API gateway, where scoped tokens (and OAuth
// tokens) must be sent as /ex/{product}/{cloudId}/… .
const defaultAPIBase = "https://api.atlassian.com"

// APIToken authenticates with an Atlassian API token as HTTP Basic
// `email:token`: Jira and Confluence Cloud, and Bitbucket Cloud API tokens.
//
// Classic (unscoped) tokens are sent to the site itself. Scoped tokens only work
// through Atlassian's API gateway, so with `scoped` the gateway routes the
// client's site-relative request to `{api_base}/ex/{jira|confluence}/{cloudId}/…`,
// discovering the cloudId from the site's `/_edge/tenant_info` endpoint. Paths
// under `/wiki` go to Confluence, all others to Jira.
type APIToken struct {
	// The Atlassian site the client addresses, e.g. `https://acme.atlassian.net`
	// or `https://api.bitbucket.org`. Must be https. Placeholders are resolved at
	// provision time. Required.
	Site string `json:"site,omitempty"`

	// The email address of the Atlassian account that owns the token. Required.
	Email string `json:"email,omitempty"`

	// The API token, as an `{env.NAME}` or `{file.PATH}` placeholder; literal
	// values are refused. Required.
	Token string `json:"token,omitempty"`

	// The token is a scoped API token: route requests through the API gateway
	// (`api_base`) with the site's cloudId. Default false.
	Scoped bool `json:"scoped,omitempty"`

	// Base URL of Atlassian's API gateway for scoped tokens. Default
	// `https://api.atlassian.com`; only changed for tests and simulators.
	APIBase string `json:"api_base,omitempty"`

	// PEM files of the CAs that the upstream's TLS certificate must chain to,
	// replacing the system roots for this credential. Default: system roots.
	TrustedCAFiles []string `json:"trusted_ca_files,omitempty"`

	site, apiBase *url.URL
	header        string
	roots         *x509.CertPool
	client        *http.Client
	cloudID       *cloudIDEntry
}

// CaddyModule returns the Caddy module information.
func (APIToken) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "atlasgate.credentials.api_token",
		New: func() caddy.Module { return new(APIToken) },
	}
}

// Provision resolves the placeholders and checks the URLs.
func (c *APIToken) Provision(ctx caddy.Context) error {
	site, err := atlasgate.ResolveValue("site", c.Site)
	if err != nil {
		return err
	}
	if c.site, err = parseBase("site", site); err != nil {
		return err
	}
	email, err := atlasgate.ResolveValue("email", c.Email)
	if err != nil {
		return err
	}
	if !strings.Contains(email, "@") {
		return errField("email", "must be the email address of the token's Atlassian account")
	}
	token, err := atlasgate.ResolveSecret("token", c.Token)
	if err != nil {
		return err
	}
	c.header = "Basic " + base64.StdEncoding.EncodeToString([]byte(email+":"+token))
	if c.roots, err = loadRoots("trusted_ca_files", c.TrustedCAFiles); err != nil {
		return err
	}
	c.client = newClient(c.roots)
	if c.Scoped {
		base := c.APIBase
		if base == "" {
			base = defaultAPIBase
		}
		if c.apiBase, err = parseBase("api_base", base); err != nil {
			return err
		}
		c.cloudID = acquireCloudID(c.site.String())
	} else if c.APIBase != "" {
		return errField("api_base", "only applies to scoped tokens (add `scoped`)")
	}
	return nil
}

// Cleanup releases the shared cloudId cache entry.
func (c *APIToken) Cleanup() error {
	if c.cloudID != nil {
		_, _ = cloudIDs.Delete(c.cloudID.site)
	}
	return nil
}

// Target implements atlasgate.Credential.
func (c *APIToken) Target(ctx context.Context, path string) (*url.URL, error) {
	if !c.Scoped {
		return c.site, nil
	}
	return exTarget(ctx, c.apiBase, c.cloudID, c.client, path)
}

// exTarget routes a site-relative path through Atlassian's API gateway:
// `{apiBase}/ex/{product}/{cloudId}`, with the cloudId discovered from the site.
func exTarget(ctx context.Context, apiBase *url.URL, entry *cloudIDEntry, client *http.Client, path string) (*url.URL, error) {
	id, err := entry.get(ctx, client)
	if err != nil {
		return nil, &atlasgate.UnavailableError{
			Reason: "the cloudId of " + entry.site + " could not be discovered",
			Remedy: "check that `site` is the Atlassian Cloud site URL and that the gateway can reach it",
			Err:    err,
		}
	}
	return exURL(apiBase, id, path), nil
}

// exURL is `{apiBase}/ex/{product}/{cloudId}` for a site-relative path: paths
// under /wiki are Confluence's, all others Jira's.
func exURL(apiBase *url.URL, cloudID, path string) *url.URL {
	product := "jira"
	if path == "/wiki" || strings.HasPrefix(path, "/wiki/") {
		product = "confluence"
	}
	t := *apiBase
	t.Path = apiBase.Path + "/ex/" + product + "/" + url.PathEscape(cloudID)
	return &t
}

// Origins implements atlasgate.Credential.
func (c *APIToken) Origins() []*url.URL {
	if c.Scoped {
		return []*url.URL{c.apiBase}
	}
	return []*url.URL{c.site}
}

// Home implements atlasgate.Credential.
func (c *APIToken) Home() *url.URL { return c.site }

// Inject implements atlasgate.Credential.
func (c *APIToken) Inject(req *http.Request) error {
	req.Header["Authorization"] = []string{c.header}
	return nil
}

// RootCAs implements atlasgate.Credential.
func (c *APIToken) RootCAs() *x509.CertPool { return c.roots }

// Interface guards
var (
	_ caddy.Provisioner    = (*APIToken)(nil)
	_ caddy.CleanerUpper   = (*APIToken)(nil)
	_ atlasgate.Credential = (*APIToken)(nil)
)

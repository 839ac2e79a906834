package credentials

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

func init() {
	caddy.RegisterModule(Bearer{})
}

// Bearer authenticates with a static bearer token: Data Center personal access
// tokens (Jira 8.14+, Confluence 7.9+, Bitbucket) and Bitbucket Cloud
// repository, project and workspace access tokens.
type Bearer struct {
	// The base URL the client addresses: a Data Center base URL, with its
	// context path if any (`https://jira.example.com`, `https://example.com/confluence`),
	// or `https://api.bitbucket.org`. Must be https. Required.
	Site string `json:"site,omitempty"`

	// The token, as an `{env.NAME}` or `{file.PATH}` placeholder; literal values
	// are refused. Required.
	Token string `json:"token,omitempty"`

	// PEM files of the CAs that the upstream's TLS certificate must chain to,
	// replacing the system roots for this credential (typical for Data Center
	// behind an internal CA). Default: system roots.
	TrustedCAFiles []string `json:"trusted_ca_files,omitempty"`

	site   *url.URL
	header string
	roots  *x509.CertPool
}

// CaddyModule returns the Caddy module information.
func (Bearer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "atlasgate.credentials.bearer",
		New: func() caddy.Module { return new(Bearer) },
	}
}

// Provision resolves the placeholders and checks the URL.
func (c *Bearer) Provision(ctx caddy.Context) error {
	site, err := atlasgate.ResolveValue("site", c.Site)
	if err != nil {
		return err
	}
	if c.site, err = parseBase("site", site); err != nil {
		return err
	}
	token, err := atlasgate.ResolveSecret("token", c.Token)
	if err != nil {
		return err
	}
	c.header = "Bearer " + token
	c.roots, err = loadRoots("trusted_ca_files", c.TrustedCAFiles)
	return err
}

// Target implements atlasgate.Credential.
func (c *Bearer) Target(context.Context, string) (*url.URL, error) { return c.site, nil }

// Origins implements atlasgate.Credential.
func (c *Bearer) Origins() []*url.URL { return []*url.URL{c.site} }

// Home implements atlasgate.Credential.
func (c *Bearer) Home() *url.URL { return c.site }

// Inject implements atlasgate.Credential.
func (c *Bearer) Inject(req *http.Request) error {
	req.Header["Authorization"] = []string{c.header}
	return nil
}

// RootCAs implements atlasgate.Credential.
func (c *Bearer) RootCAs() *x509.CertPool { return c.roots }

func errField(field, msg string) error { return fmt.Errorf("%s: %s", field, msg) }

// Interface guards
var (
	_ caddy.Provisioner    = (*Bearer)(nil)
	_ atlasgate.Credential = (*Bearer)(nil)
)

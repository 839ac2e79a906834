package authhandler

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

func init() {
	caddy.RegisterModule(Provider{})
}

// Provider makes the atlasgate app's authenticators usable from Caddy's own
// `authentication` handler (JSON: `"providers": {"atlasgate": {...}}`), for
// configs that combine them with other Caddy authentication providers. Caddy's
// handler answers every failure with a bare 401 (style it with handle_errors);
// prefer atlasgate_auth, which also answers 503 when an identity provider
// cannot be reached and writes JSON bodies.
type Provider struct {
	// Names of the atlasgate app's authenticators to try, in order. Required.
	Authenticators []string `json:"authenticators,omitempty"`

	// The realm in WWW-Authenticate challenges. Default: `atlasgate`.
	Realm string `json:"realm,omitempty"`

	h Handler
}

// CaddyModule returns the Caddy module information.
func (Provider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.authentication.providers.atlasgate",
		New: func() caddy.Module { return new(Provider) },
	}
}

// Provision resolves the authenticator names.
func (p *Provider) Provision(ctx caddy.Context) error {
	p.h = Handler{Authenticators: p.Authenticators, Realm: p.Realm}
	return p.h.Provision(ctx)
}

// Authenticate implements caddyauth.Authenticator.
func (p *Provider) Authenticate(w http.ResponseWriter, r *http.Request) (caddyauth.User, bool, error) {
	id, name, err := Authenticate(r, p.h.auths)
	if err != nil {
		p.h.metrics.observe(name, outcome(err))
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s"`, p.h.Realm))
		return caddyauth.User{}, false, nil
	}
	p.h.metrics.observe(name, "success")
	caddyhttp.SetVar(r.Context(), IdentityVar, id)
	for _, hdr := range p.h.headers {
		r.Header.Del(hdr) // the gateway's own credential travels no further
	}
	return caddyauth.User{
		ID: id.User,
		Metadata: map[string]string{
			"authenticator": id.Authenticator,
			"kind":          id.Kind,
			"subject":       id.Subject,
			"issuer":        id.Issuer,
			"groups":        strings.Join(id.Groups, ","),
			"scopes":        strings.Join(id.Scopes, " "),
		},
	}, true, nil
}

// lookup finds the named authenticators in the running config's atlasgate app.
func lookup(app *atlasgate.App, names []string) ([]namedAuthenticator, error) {
	var out []namedAuthenticator
	for _, n := range names {
		a, ok := app.Authenticator(n)
		if !ok {
			defined := strings.Join(app.AuthenticatorNames(), ", ")
			if defined == "" {
				defined = "none"
			}
			return nil, fmt.Errorf("authenticator %q is not defined (defined: %s)", n, defined)
		}
		out = append(out, namedAuthenticator{n, a})
	}
	return out, nil
}

// Interface guards
var (
	_ caddy.Provisioner       = (*Provider)(nil)
	_ caddyauth.Authenticator = (*Provider)(nil)
)

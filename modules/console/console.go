// Package console holds the OAuth console (the `atlasgate_console` handler),
// where a person authorizes the gateway's OAuth (3LO) credentials — Authorize →
// Atlassian's consent page → callback — and sees every credential's state, and
// the ways operators see those states without a browser: the
// `GET /atlasgate/credentials` admin route, the `caddy atlasgate-credentials`
// command and the `atlasgate_credential_state` metric.
package console

import (
	"context"
	"fmt"
	"github.com/atlasgate/atlasgate/internal/clock"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/credentials"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultPathPrefix is where the console is mounted unless path_prefix says
// otherwise; an OAuth credential's callback_url is `<prefix>/callback`.
const DefaultPathPrefix = "/atlasgate/oauth"

// Handler serves the OAuth console under PathPrefix:
//
//   - `GET <prefix>/`: every credential of the atlasgate app with its state,
//     and an Authorize button for each OAuth credential;
//   - `GET <prefix>/authorize/<name>`: a page that asks to confirm, whose
//     button posts to the same address (the link error answers carry);
//   - `POST <prefix>/authorize/<name>`: starts the authorization-code flow with
//     a single-use state kept in Caddy's storage and bound to the browser by
//     a cookie, and redirects to the credential's authorize URL;
//   - `GET <prefix>/callback`: completes it (the credentials' callback_url).
//
// The console must sit behind inbound authentication (`basic_auth`,
// `atlasgate_auth`): whoever can use it can bind the gateway's credentials to
// their Atlassian account. Requests outside PathPrefix go to the next handler.
type Handler struct {
	// The path the console is mounted at; use `handle` (not `handle_path`) so
	// the handler sees the full path. Default: `/atlasgate/oauth`.
	PathPrefix string `json:"path_prefix,omitempty"`

	creds   source
	storage certmagic.Storage
	logger  *zap.Logger
	audit   *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.atlasgate_console",
		New: func() caddy.Module { return new(Handler) },
	}
}

// source is where the console finds credentials: the atlasgate app.
type source interface {
	CredentialNames() []string
	Credential(name string) (atlasgate.Credential, bool)
}

// authorizer is what the console needs of an OAuth credential
// (*credentials.OAuth).
type authorizer interface {
	AuthCodeURL(state string) string
	CompleteAuthorization(ctx context.Context, code string) error
	Status(ctx context.Context) credentials.OAuthStatus
}

// now is the gateway's one clock (internal/clock): state expiry; tests move
// it with clock.Set.
func now() time.Time { return clock.Now() }

// Provision finds the atlasgate app and Caddy's storage.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.audit = atlasgate.AuditLogger(ctx)
	if h.PathPrefix == "" {
		h.PathPrefix = DefaultPathPrefix
	}
	h.PathPrefix = "/" + strings.Trim(h.PathPrefix, "/")
	appIface, err := ctx.App("atlasgate")
	if err != nil {
		return fmt.Errorf("loading the atlasgate app: %v", err)
	}
	h.creds = appIface.(*atlasgate.App)
	h.storage = ctx.Storage()
	return registerMetrics(ctx)
}

// Validate checks the path prefix.
func (h *Handler) Validate() error {
	if strings.ContainsAny(h.PathPrefix, "*?#%{} ") || h.PathPrefix == "/" {
		return fmt.Errorf("path_prefix %q: must be a plain path such as %s", h.PathPrefix, DefaultPathPrefix)
	}
	return nil
}

// ServeHTTP routes the console's requests.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rest, ok := strings.CutPrefix(r.URL.Path, h.PathPrefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return next.ServeHTTP(w, r)
	}
	switch {
	case rest == "" || rest == "/":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return h.methodNotAllowed(w, "GET, HEAD")
		}
		return h.serveIndex(w, r)
	case strings.HasPrefix(rest, "/authorize/"):
		name := strings.TrimPrefix(rest, "/authorize/")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			// A link (from an error answer) only shows the confirmation
			// page: nothing changes on GET.
			return h.serveConfirm(w, r, name)
		case http.MethodPost:
			return h.serveAuthorize(w, r, name)
		}
		return h.methodNotAllowed(w, "GET, HEAD, POST")
	case strings.HasPrefix(rest, "/check/"):
		if r.Method != http.MethodPost {
			return h.methodNotAllowed(w, "POST")
		}
		return h.serveCheck(w, r, strings.TrimPrefix(rest, "/check/"))
	case rest == "/callback":
		if r.Method != http.MethodGet {
			return h.methodNotAllowed(w, "GET")
		}
		return h.serveCallback(w, r)
	}
	return h.errorPage(w, http.StatusNotFound, "Not found", "There is no console page at this address.")
}

func (h *Handler) methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return h.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "This console address accepts "+allow+" only.")
}

// securityHeaders are set on every console page. The pages carry no script;
// the CSP lets forms post only to the console itself, and the redirect that
// follows the Authorize form only to the credentials' authorization servers
// (browsers apply form-action to redirects after a form submission).
func (h *Handler) securityHeaders(w http.ResponseWriter) {
	formAction := append([]string{"'self'"}, h.authorizeOrigins()...)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action "+strings.Join(formAction, " ")+"; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Referrer-Policy", "no-referrer")
}

// authorizeOrigins lists the origins of the OAuth credentials' authorize URLs.
func (h *Handler) authorizeOrigins() []string {
	var out []string
	for _, name := range h.creds.CredentialNames() {
		c, _ := h.creds.Credential(name)
		a, ok := c.(authorizer)
		if !ok {
			continue
		}
		if u, err := url.Parse(a.AuthCodeURL("")); err == nil && u.Host != "" {
			if o := u.Scheme + "://" + u.Host; !slices.Contains(out, o) {
				out = append(out, o)
			}
		}
	}
	return out
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ authorizer                  = (*credentials.OAuth)(nil)
	_ source                      = (*atlasgate.App)(nil)
)

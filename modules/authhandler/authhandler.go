// Package authhandler holds the atlasgate_auth handler, which ties every request
// to an identity by trying the app's named authenticators, and the ways
// operators reach those authenticators: the `atlasgate` provider for Caddy's own
// `authentication` handler, the test-token admin route and CLI subcommand.
package authhandler

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/authn"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// IdentityVar is the name of the Caddy variable that holds the request's
// *authn.Identity once authenticated; the policy handler reads it.
const IdentityVar = authn.IdentityVar

// Handler authenticates every request with the named authenticators of the
// atlasgate app, tried in the order given; the first that accepts the request's
// credential wins. A request no authenticator accepts never goes further:
//
//   - no credential at all: 401, `WWW-Authenticate: Bearer realm="<realm>"`;
//   - an invalid credential: 401 with RFC 6750 `error="invalid_token"` (or
//     `invalid_request`) and a description that names no secret;
//   - a credential that could not be checked (identity provider down or slow):
//     503 — never allowed through.
//
// Bodies are JSON: `{"error": "<code>", "message": "<description>"}`. On
// success it sets the placeholders `{http.auth.user.id}` (the identity's user),
// `{http.auth.user.authenticator}`, `{http.auth.user.kind}`,
// `{http.auth.user.subject}`, `{http.auth.user.issuer}`,
// `{http.auth.user.groups}` (comma-separated) and `{http.auth.user.scopes}`
// (space-separated), and stores the identity for the policy handler.
type Handler struct {
	// Names of the atlasgate app's authenticators to try, in order. Required.
	Authenticators []string `json:"authenticators,omitempty"`

	// The realm in WWW-Authenticate challenges. Default: `atlasgate`.
	Realm string `json:"realm,omitempty"`

	auths   []namedAuthenticator
	headers []string // credential headers to remove once authenticated
	metrics *metrics
	logger  *zap.Logger
}

type namedAuthenticator struct {
	name string
	authn.Authenticator
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.atlasgate_auth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves the authenticator names.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Realm == "" {
		h.Realm = "atlasgate"
	}
	if strings.ContainsAny(h.Realm, "\"\\\r\n") {
		return fmt.Errorf("realm: must not contain quotes, backslashes or line breaks")
	}
	if len(h.Authenticators) == 0 {
		return fmt.Errorf("authenticators: at least one is required")
	}
	appIface, err := ctx.App("atlasgate")
	if err != nil {
		return fmt.Errorf("getting atlasgate app: %v", err)
	}
	app := appIface.(*atlasgate.App)
	seen := map[string]bool{}
	for _, name := range h.Authenticators {
		if seen[name] {
			return fmt.Errorf("authenticators: %q is listed twice", name)
		}
		seen[name] = true
		a, ok := app.Authenticator(name)
		if !ok && len(app.AuthenticatorNames()) == 0 {
			return fmt.Errorf("authenticators: %q is not defined: the atlasgate app has no authenticators (add `authenticator <name> <type>` to the global atlasgate block)", name)
		}
		if !ok {
			return fmt.Errorf("authenticators: %q is not defined in the atlasgate app (defined: %s)", name, strings.Join(app.AuthenticatorNames(), ", "))
		}
		h.auths = append(h.auths, namedAuthenticator{name, a})
		if hu, ok := a.(authn.HeaderUser); ok {
			h.headers = append(h.headers, hu.CredentialHeaders()...)
		}
	}
	h.metrics, err = newMetrics(ctx)
	return err
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	id, name, err := Authenticate(r, h.auths)
	if err != nil {
		h.metrics.observe(name, outcome(err))
		h.deny(w, r, name, err)
		return nil
	}
	h.metrics.observe(name, "success")
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	caddyhttp.SetVar(r.Context(), IdentityVar, id)
	mapPlaceholders(repl, r)
	for _, hdr := range h.headers {
		r.Header.Del(hdr)
	}
	if c := h.logger.Check(zapcore.DebugLevel, "authenticated"); c != nil {
		c.Write(zap.String("authenticator", name), zap.String("user", id.User))
	}
	return next.ServeHTTP(w, r)
}

// Authenticate tries the authenticators in order. The first that accepts the
// credential wins; the first that claims it but refuses it (401) or cannot
// check it (503) ends the search: a token one authenticator recognised as its
// own is never handed on to the next (which may be a third party's userinfo
// endpoint). A credential that no authenticator claims is refused as invalid;
// no credential at all is authn.ErrNoCredential. The name returned is the
// authenticator that decided, if any.
func Authenticate(r *http.Request, auths []namedAuthenticator) (*authn.Identity, string, error) {
	for _, a := range auths {
		id, err := a.Authenticate(r)
		if err == nil && id != nil {
			id.Authenticator = a.name
			return id, a.name, nil
		}
		if err == nil || errors.Is(err, authn.ErrNoCredential) {
			continue
		}
		var ae *authn.Error
		if !errors.As(err, &ae) {
			// An authenticator bug must not let anyone in, nor leak details.
			ae = authn.Unavailable("authentication failed unexpectedly", err)
		}
		return nil, a.name, ae
	}
	if hasCredential(r, auths) {
		return nil, "", authn.Invalid("credential not accepted by this gateway", nil)
	}
	return nil, "", authn.ErrNoCredential
}

// hasCredential reports whether r carries anything that looks like a
// credential: an Authorization header or an authenticator's own header.
func hasCredential(r *http.Request, auths []namedAuthenticator) bool {
	if r.Header.Get("Authorization") != "" {
		return true
	}
	for _, a := range auths {
		if hu, ok := a.Authenticator.(authn.HeaderUser); ok {
			for _, h := range hu.CredentialHeaders() {
				if r.Header.Get(h) != "" {
					return true
				}
			}
		}
	}
	return false
}

// deny writes the 401 or 503 answer.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, name string, err error) {
	var ae *authn.Error
	if errors.As(err, &ae) {
		if c := h.logger.Check(zapcore.InfoLevel, "authentication failed"); c != nil {
			c.Write(zap.String("authenticator", name), zap.String("code", ae.Code),
				zap.String("remote_ip", r.RemoteAddr), zap.NamedError("reason", ae.Err))
		}
		if ae.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
			atlasgate.WriteError(w, http.StatusServiceUnavailable, atlasgate.ErrorBody{
				Error:   ae.Code,
				Message: ae.Description,
			})
			return
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s", error="%s", error_description="%s"`,
			h.Realm, ae.Code, quoteSafe(ae.Description)))
		atlasgate.WriteError(w, http.StatusUnauthorized, atlasgate.ErrorBody{Error: ae.Code, Message: ae.Description})
		return
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s"`, h.Realm))
	atlasgate.WriteError(w, http.StatusUnauthorized, atlasgate.ErrorBody{
		Error:   "missing_credential",
		Message: "this gateway requires authentication",
	})
}

// quoteSafe keeps a description inside an RFC 6750 quoted string: the
// characters allowed are %x20-21 / %x23-5B / %x5D-7E.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return ' '
		}
		return r
	}, s)
}

func outcome(err error) string {
	var ae *authn.Error
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable:
		return "unavailable"
	case errors.As(err, &ae):
		return "invalid"
	}
	return "missing"
}

// mapPlaceholders exposes the request's identity (the IdentityVar, read when a
// placeholder is asked for, so a later handler that replaces the identity is
// seen) as the placeholders SetPlaceholders sets. A provider costs one closure
// per request; seven Set calls cost seven boxed strings and two joins, for
// placeholders most configurations never read.
func mapPlaceholders(repl *caddy.Replacer, r *http.Request) {
	ctx := r.Context()
	repl.Map(func(key string) (any, bool) {
		name, ok := strings.CutPrefix(key, "http.auth.user.")
		if !ok {
			return nil, false
		}
		id, _ := caddyhttp.GetVar(ctx, IdentityVar).(*authn.Identity)
		if id == nil {
			return nil, false
		}
		switch name {
		case "id":
			return id.User, true
		case "authenticator":
			return id.Authenticator, true
		case "kind":
			return id.Kind, true
		case "subject":
			return id.Subject, true
		case "issuer":
			return id.Issuer, true
		case "groups":
			return strings.Join(id.Groups, ","), true
		case "scopes":
			return strings.Join(id.Scopes, " "), true
		}
		return nil, false
	})
}

// SetPlaceholders exposes an identity as `http.auth.user.*` placeholders, the
// names Caddy's own authentication handler uses.
func SetPlaceholders(repl *caddy.Replacer, id *authn.Identity) {
	repl.Set("http.auth.user.id", id.User)
	repl.Set("http.auth.user.authenticator", id.Authenticator)
	repl.Set("http.auth.user.kind", id.Kind)
	repl.Set("http.auth.user.subject", id.Subject)
	repl.Set("http.auth.user.issuer", id.Issuer)
	repl.Set("http.auth.user.groups", strings.Join(id.Groups, ","))
	repl.Set("http.auth.user.scopes", strings.Join(id.Scopes, " "))
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

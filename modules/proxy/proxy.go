// Package proxy holds the atlasgate_proxy handler: it removes every credential
// the client sent, routes the request to its credential's Atlassian upstream and
// proxies it with Caddy's own reverse_proxy, injecting the credential at the last
// moment before the request is written upstream.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler proxies requests to Atlassian with a named credential of the
// atlasgate app. It is a terminal handler, like reverse_proxy.
//
// What the client sent as credentials never reaches Atlassian: the
// `Authorization`, `Proxy-Authorization` and `Cookie` headers, request
// trailers and the credential-carrying query and urlencoded form parameters
// (`os_username`, `os_password`, `os_authType`, `access_token`, `jwt`) are
// removed. TRACE, TRACK and CONNECT are refused (405), method overrides
// (`X-HTTP-Method-Override` and its kin, `_method`) and non-canonical paths
// are refused (400), with or without an access policy (see request.go). The credential is then set
// by the upstream transport itself, after every header operation of the proxy,
// so no hop-by-hop trick (`Connection: Authorization`) can remove or replace it,
// and only when the request goes to one of the credential's own origins.
//
// On the way back, `Set-Cookie` is removed (an Atlassian session cookie would let
// the client bypass the gateway) and a `Location` on the credential's own site or
// API route is mapped back to the gateway; a redirect to another host (signed
// media downloads) reaches the client untouched, and the credential never goes
// there.
type Handler struct {
	// The name of the credential to inject, as defined in the atlasgate app.
	// Placeholders are allowed. Default: `{http.atlasgate.policy.credential}`,
	// the credential the access policy chose for the request; a request for
	// which nothing chose a credential is denied (403).
	Credential string `json:"credential,omitempty"`

	// Whether to hold a credential's requests back after Atlassian answered
	// 429 or 503 with Retry-After: until then the gateway answers 429 (or 503)
	// itself, with Retry-After and `{"error": "upstream_rate_limited"}`,
	// instead of hammering Atlassian. `on` (the default) or `off`; when
	// atlasgate_policy decided the request, its `upstream_hold_back` sets the
	// cap (or turns holding back off) unless this says `on` or `off`. A hold
	// lasts at most 5 minutes by default; Jira's per-issue limits
	// (RateLimit-Reason `per-issue`) never hold the credential back.
	UpstreamHoldBack string `json:"upstream_hold_back,omitempty"`

	// Whether URLs on the credential's upstream in JSON answers (Bitbucket's
	// `next`, Jira's `self`, Confluence's `_links.base`, 3LO `/ex/` links)
	// are rewritten to the gateway, so that clients following them stay on
	// it: `on` (the default) or `off`. See links.go.
	RewriteLinks string `json:"rewrite_links,omitempty"`

	// The gateway's base URL as clients see it (e.g.
	// `https://atlassian.example.com`), used for rewritten links. Default:
	// the scheme and host of each request (X-Forwarded-Proto and
	// X-Forwarded-Host from trusted proxies). The mount prefix that
	// handle_path removed is appended either way.
	PublicURL string `json:"public_url,omitempty"`

	app     *atlasgate.App
	holds   *holds
	static  bool
	proxies map[proxyKey]*reverseproxy.Handler
	logger  *zap.Logger

	publicURL *url.URL // PublicURL parsed
}

type proxyKey struct{ credential, origin string }

// PolicyCredentialPlaceholder is where the access policy leaves the name of the
// credential it chose for a request.
const PolicyCredentialPlaceholder = "{http.atlasgate.policy.credential}"

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.atlasgate_proxy",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision looks the credential(s) up and sets up one reverse proxy per
// credential and origin.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Credential == "" {
		h.Credential = PolicyCredentialPlaceholder
	}
	appIface, err := ctx.App("atlasgate")
	if err != nil {
		return fmt.Errorf("getting atlasgate app: %v", err)
	}
	h.app = appIface.(*atlasgate.App)
	switch h.UpstreamHoldBack {
	case "", "on", "off":
	default:
		return fmt.Errorf("upstream_hold_back: %q: use on or off", h.UpstreamHoldBack)
	}
	if err := h.provisionLinks(); err != nil {
		return err
	}
	if h.holds, err = loadHolds(ctx); err != nil {
		return err
	}

	// A fixed name is checked now, so a typo fails `caddy validate` and a reload
	// instead of the first request. A placeholder may name any credential.
	names := h.app.CredentialNames()
	h.static = !strings.Contains(h.Credential, "{")
	if h.static {
		if _, ok := h.app.Credential(h.Credential); !ok {
			return fmt.Errorf("credential: %v", h.app.UnknownCredentialError(h.Credential))
		}
		names = []string{h.Credential}
	}

	h.proxies = make(map[proxyKey]*reverseproxy.Handler)
	for _, name := range names {
		cred, _ := h.app.Credential(name)
		for _, o := range cred.Origins() {
			rp, err := newReverseProxy(ctx, name, cred, o)
			if err != nil {
				return fmt.Errorf("credential %q: setting up proxy to %s: %v", name, o.Host, err)
			}
			h.proxies[proxyKey{name, originKey(o)}] = rp
		}
	}
	return nil
}

// newReverseProxy sets up Caddy's reverse_proxy for one origin of a credential:
// TLS with the credential's roots, SNI and Host of the origin, and the injecting
// transport.
func newReverseProxy(ctx caddy.Context, name string, cred atlasgate.Credential, o *url.URL) (*reverseproxy.Handler, error) {
	ht := &reverseproxy.HTTPTransport{TLS: &reverseproxy.TLSConfig{ServerName: o.Hostname()}}
	if err := ht.Provision(ctx); err != nil {
		return nil, err
	}
	if roots := cred.RootCAs(); roots != nil {
		ht.Transport.TLSClientConfig.RootCAs = roots
	}
	port := o.Port()
	if port == "" {
		port = "443"
	}
	rp := &reverseproxy.Handler{
		Upstreams: reverseproxy.UpstreamPool{{Dial: net.JoinHostPort(o.Hostname(), port)}},
		Headers: &headers.Handler{Request: &headers.HeaderOps{
			Set: http.Header{"Host": []string{o.Host}},
		}},
		Transport: &injectingTransport{base: ht, name: name, cred: cred},
	}
	if err := rp.Provision(ctx); err != nil {
		_ = ht.Cleanup()
		return nil, err
	}
	return rp, nil
}

// Cleanup releases the reverse proxies.
func (h *Handler) Cleanup() error {
	var errs []error
	if h.holds != nil {
		_, err := holdPool.Delete(holdKey)
		errs = append(errs, err)
	}
	for _, rp := range h.proxies {
		errs = append(errs, rp.Cleanup())
		if t, ok := rp.Transport.(*injectingTransport); ok {
			errs = append(errs, t.base.Cleanup())
		}
	}
	return errors.Join(errs...)
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if e := checkRequest(r); e != nil {
		e.write(w)
		return nil
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	name := h.Credential
	if !h.static {
		name = credentialName(repl, h.Credential)
	}
	if name == "" {
		// Deny by default: nothing chose a credential for this request.
		atlasgate.WriteError(w, http.StatusForbidden, atlasgate.ErrorBody{
			Error:   "no_credential",
			Message: "no credential was selected for this request",
		})
		return nil
	}
	cred, ok := h.app.Credential(name)
	if !ok {
		h.logger.Error("unknown credential selected", zap.String("credential", name))
		atlasgate.WriteError(w, http.StatusServiceUnavailable, atlasgate.ErrorBody{
			Error:      "credential_unknown",
			Message:    fmt.Sprintf("credential %q is not configured on this gateway", name),
			Credential: name,
			Remedy:     "define it in the atlasgate app or fix the rule that selects it",
		})
		return nil
	}
	repl.Set("http.atlasgate.credential", name)

	holdMax := h.holdBackMax(r)
	held := holdName(r.Context(), name, cred)
	if holdMax > 0 {
		if hd, ok := h.holds.get(held, now()); ok {
			w.Header().Set("Retry-After", retryAfterSeconds(hd.until.Sub(now())))
			atlasgate.WriteError(w, hd.status, atlasgate.ErrorBody{
				Error:      "upstream_rate_limited",
				Message:    fmt.Sprintf("Atlassian asked the gateway to slow down for credential %q; retry later", name),
				Credential: name,
			})
			return nil
		}
	}

	target, err := cred.Target(r.Context(), r.URL.Path)
	if err != nil {
		return h.unavailable(w, name, err)
	}
	origin := originKey(target)
	rp := h.proxies[proxyKey{name, origin}]
	if rp == nil {
		// Target returned an origin the credential did not declare: never send
		// the credential there.
		return h.unavailable(w, name, &atlasgate.UnavailableError{
			Reason: "it routed the request to an undeclared origin",
			Remedy: "this is a bug in the credential module; please report it",
		})
	}

	if e := stripClientCredentials(r); e != nil {
		e.write(w)
		return nil
	}
	info := &routeInfo{
		target:  target,
		origin:  origin,
		home:    cred.Home(),
		mount:   mountPrefix(r),
		holdMax: holdMax,
		holds:   h.holds,
		held:    held,
	}
	info.links = h.linkRewriter(r, target, info.home, info.mount)
	r.URL.Path = target.Path + r.URL.Path
	if r.URL.RawPath != "" {
		r.URL.RawPath = target.EscapedPath() + r.URL.RawPath
	}
	r = r.WithContext(context.WithValue(r.Context(), routeInfoKey{}, info))
	tw := &trackingWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	if err = rp.ServeHTTP(tw, r, next); err == nil || tw.wrote {
		return err
	}
	var ue *atlasgate.UnavailableError
	if errors.As(err, &ue) {
		// The credential failed at the last moment (its token could not be
		// refreshed while the request was on its way).
		return h.unavailable(w, name, ue)
	}
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode >= 500 {
		// Caddy would answer with an empty body; say what failed instead,
		// without the internals (they are in the log).
		h.logger.Error("upstream request failed", zap.String("credential", name),
			zap.String("upstream", target.Host), zap.Error(err))
		code := "upstream_unreachable"
		if he.StatusCode == http.StatusGatewayTimeout {
			code = "upstream_timeout"
		}
		atlasgate.WriteError(w, he.StatusCode, atlasgate.ErrorBody{
			Error:      code,
			Message:    fmt.Sprintf("the gateway could not get an answer from %s", target.Host),
			Credential: name,
			Remedy:     "check connectivity and TLS trust from the gateway to that host; the gateway log has the cause",
		})
		return nil
	}
	return err
}

// trackingWriter records whether a response was started, so an upstream error
// is turned into a JSON answer only when nothing was sent yet.
type trackingWriter struct {
	*caddyhttp.ResponseWriterWrapper
	wrote bool
}

func (w *trackingWriter) WriteHeader(status int) {
	w.wrote = true
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriterWrapper.Write(b)
}

func (h *Handler) unavailable(w http.ResponseWriter, name string, err error) error {
	var ue *atlasgate.UnavailableError
	if !errors.As(err, &ue) {
		ue = &atlasgate.UnavailableError{Reason: "it failed", Err: err}
	}
	ue.Credential = name
	status, code := http.StatusServiceUnavailable, "credential_unavailable"
	if ue.Status != 0 {
		status, code = ue.Status, ue.Code
	}
	if status >= 500 && !ue.Awaiting {
		h.logger.Error("credential unavailable", zap.String("credential", name), zap.Error(err))
	} else if c := h.logger.Check(zapcore.DebugLevel, "credential not usable for this caller"); c != nil {
		c.Write(zap.String("credential", name), zap.Error(err))
	}
	atlasgate.WriteError(w, status, atlasgate.ErrorBody{
		Error:      code,
		Message:    fmt.Sprintf("credential %q is unavailable: %s", name, ue.Reason),
		Credential: name,
		Remedy:     ue.Remedy,
		Link:       ue.Link,
	})
	return nil
}

// mountPrefix is the escaped path prefix that the client's request had before
// Caddy stripped it (handle_path, uri strip_prefix), so that redirects can be
// mapped back under it. Empty when nothing was stripped or the path was
// rewritten in another way.
func mountPrefix(r *http.Request) string {
	orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	if !ok || orig.URL == nil {
		return ""
	}
	op, cur := orig.URL.EscapedPath(), r.URL.EscapedPath()
	if prefix, found := strings.CutSuffix(op, cur); found && prefix != op {
		return strings.TrimSuffix(prefix, "/")
	}
	return ""
}

// originKey is the scheme and host:port of u, with the default port explicit.
func originKey(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

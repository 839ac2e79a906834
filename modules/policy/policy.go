// Package policy holds the atlasgate_policy handler: the access policy that
// binds authenticated callers to the Atlassian requests they may make and to the
// credential the gateway injects for them. It runs after atlasgate_auth and
// before atlasgate_proxy; every request gets a decision, an audit event and a
// metric, and no rule means 403.
package policy

import (
	"context"
	"errors"
	"fmt"
	"github.com/atlasgate/atlasgate/internal/clock"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/authhandler"
	"github.com/atlasgate/atlasgate/modules/authn"
	"github.com/atlasgate/atlasgate/modules/proxy"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the access policy. Rules are checked in the order given and the
// first that matches decides: an allow rule lets the request on and names the
// credential to inject, a deny rule answers 403. No matching rule: 403.
//
// Before any rule is checked, the request path is brought into its canonical
// form (NormalizePath) or refused with 400, and the request is rewritten to it:
// the path the rules see is the path Atlassian receives.
type Handler struct {
	// A name for this policy in explanations, audit events and metrics.
	// Default: `default`.
	Name string `json:"name,omitempty"`
	// The rules, in evaluation order. At least one is required.
	Rules []Rule `json:"rules,omitempty"`
	// Rate limit per identity over all rules of this policy. Default: none.
	IdentityRate *Rate `json:"identity_rate,omitempty"`
	// Rate limits per credential name, shared by every client that the policy
	// lets use it. Default: none.
	CredentialRates map[string]Rate `json:"credential_rates,omitempty"`
	// Proxies (CIDRs or addresses) whose X-Forwarded-For is believed when
	// working out the client address for `sources`. Default: none, the peer
	// address is the client.
	TrustedProxies []string `json:"trusted_proxies,omitempty"`
	// After Atlassian answers 429 or 503 with Retry-After, atlasgate_proxy
	// holds that credential's requests back until then, for at most this long;
	// `0` or a negative duration turns holding back off. Default: 5m.
	UpstreamHoldBack *caddy.Duration `json:"upstream_hold_back,omitempty"`

	engine    *engine
	credRates map[string]*rate
	idRate    *rate
	limiter   *limiter
	shared    SharedLimiter // nil: per-process buckets only
	holdBack  time.Duration
	logger    *zap.Logger
	audit     *zap.Logger
	metrics   *metrics
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.atlasgate_policy",
		New: func() caddy.Module { return new(Handler) },
	}
}

// CredentialPlaceholder is the placeholder the policy sets to the chosen
// credential's name; atlasgate_proxy uses it by default.
const CredentialPlaceholder = "http.atlasgate.policy.credential"

// RulePlaceholder holds the name of the deciding rule.
const RulePlaceholder = "http.atlasgate.policy.rule"

// AuditLoggerName is the logger of audit events; route it to its own sink
// with a `log` block that includes `atlasgate.audit`.
const AuditLoggerName = "atlasgate.audit"

// DefaultHoldBack caps how long a credential is held back after an upstream 429.
const DefaultHoldBack = 5 * time.Minute

// now is the gateway's one clock (internal/clock): rate limits, time windows
// and audit durations; tests move it with clock.Set.
func now() time.Time { return clock.Now() }

// Provision compiles the rules and checks every credential they name.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.audit = atlasgate.AuditLogger(ctx)
	appIface, err := ctx.App("atlasgate")
	if err != nil {
		return fmt.Errorf("getting atlasgate app: %v", err)
	}
	if err := h.setup(appIface.(*atlasgate.App)); err != nil {
		return err
	}
	if h.metrics, err = newMetrics(ctx); err != nil {
		return err
	}
	lim, _, err := limiters.LoadOrNew(limiterKey, func() (caddy.Destructor, error) { return newLimiter(), nil })
	if err != nil {
		return err
	}
	h.limiter = lim.(*limiter)
	h.shared = sharedLimiterOf(ctx)
	return nil
}

// setup compiles the config; app may be nil in unit tests (no credential check).
func (h *Handler) setup(app *atlasgate.App) error {
	if h.Name == "" {
		h.Name = "default"
	}
	if len(h.Rules) == 0 {
		return fmt.Errorf("rules: at least one rule is required (without rules every request is denied)")
	}
	var err error
	if h.engine, err = newEngine(h.Rules); err != nil {
		return err
	}
	if h.engine.trusted, err = parsePrefixes(h.TrustedProxies); err != nil {
		return fmt.Errorf("trusted_proxies: %v", err)
	}
	if h.IdentityRate != nil {
		if h.idRate, err = h.IdentityRate.compile(); err != nil {
			return fmt.Errorf("identity_rate: %v", err)
		}
	}
	h.credRates = map[string]*rate{}
	for name, r := range h.CredentialRates {
		if h.credRates[name], err = r.compile(); err != nil {
			return fmt.Errorf("credential_rates %q: %v", name, err)
		}
	}
	h.holdBack = DefaultHoldBack
	if h.UpstreamHoldBack != nil {
		h.holdBack = max(0, time.Duration(*h.UpstreamHoldBack))
	}
	if app == nil {
		return nil
	}
	if err := checkIdentityTrust(h.engine.rules, app.AuthenticatorNames()); err != nil {
		return err
	}
	for name, rules := range h.engine.credentialNames() {
		if _, ok := app.Credential(name); !ok {
			return fmt.Errorf("rule %q: %v", rules[0], app.UnknownCredentialError(name))
		}
	}
	for name := range h.CredentialRates {
		if _, ok := app.Credential(name); !ok {
			return fmt.Errorf("credential_rates: %v", app.UnknownCredentialError(name))
		}
	}
	return nil
}

// Cleanup releases the shared rate-limit state.
func (h *Handler) Cleanup() error {
	if h.limiter != nil {
		_, err := limiters.Delete(limiterKey)
		return err
	}
	return nil
}

// errorBody is the JSON of the policy's own answers. It never holds a secret.
type errorBody struct {
	Error      string `json:"error"`
	Message    string `json:"message"`
	Rule       string `json:"rule,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Credential string `json:"credential,omitempty"`
}

// Input builds the decision input for r, with the canonical path; a
// *PathError means the path is refused.
func (h *Handler) Input(r *http.Request) (*Input, error) {
	p, err := NormalizePath(r.URL.EscapedPath())
	if err != nil {
		return nil, err
	}
	host := r.Host
	// Only a host with a port is split: SplitHostPort's error for a bare host
	// costs an allocation per request.
	if strings.IndexByte(host, ':') >= 0 {
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
	}
	id, _ := caddyhttp.GetVar(r.Context(), authhandler.IdentityVar).(*authn.Identity)
	return &Input{
		Identity: id,
		Method:   strings.ToUpper(r.Method),
		Host:     strings.ToLower(host),
		Path:     p,
		Product:  DetectProduct(p),
		ClientIP: clientIP(r.RemoteAddr, r.Header, h.engine.trusted),
		Header:   r.Header,
		Time:     now(),
	}, nil
}

// Decide is the policy's decision for in, as the handler makes it (without
// rate limits, which depend on traffic).
func (h *Handler) Decide(in *Input) Decision { return h.engine.decide(in) }

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	ev := event{start: now(), r: r}
	in, err := h.Input(r)
	if err != nil {
		var pe *PathError
		errors.As(err, &pe)
		ev.decision, ev.reason, ev.status = "invalid_path", pe.Reason, http.StatusBadRequest
		h.finish(&ev)
		atlasgate.WriteError(w, http.StatusBadRequest, atlasgate.ErrorBody{
			Error:   "invalid_path",
			Message: "the request path is not accepted: " + pe.Reason,
		})
		return nil
	}
	ev.in = in
	// From here on the request carries the canonical path, decoded; the
	// upstream receives its standard encoding.
	r.URL.Path, r.URL.RawPath = in.Path, ""

	d := h.engine.decide(in)
	ev.rule, ev.reason, ev.credential = d.Rule, d.Reason, d.Credential
	if !d.Allow {
		ev.decision, ev.status = "deny", d.Status
		h.finish(&ev)
		writeJSON(w, d.Status, errorBody{Error: d.Error, Message: "access denied by policy", Rule: ruleOrNone(d.Rule), Reason: d.Reason})
		return nil
	}
	scope, wait, why := h.limit(r.Context(), in, &d)
	if scope == limitUnavailable {
		ev.decision, ev.reason, ev.status = "rate_limit_unavailable", why, http.StatusServiceUnavailable
		h.finish(&ev)
		w.Header().Set("Retry-After", retryAfter(wait))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "rate_limit_unavailable", Message: "rate limits cannot be checked now; retry later", Rule: d.Rule, Reason: why})
		return nil
	}
	if scope != "" {
		ev.decision, ev.reason, ev.status = "rate_limited", why, http.StatusTooManyRequests
		h.metrics.rateLimited(scope)
		h.finish(&ev)
		w.Header().Set("Retry-After", retryAfter(wait))
		body := errorBody{Error: "rate_limited", Message: "too many requests; retry later", Rule: d.Rule, Reason: why}
		if scope == "credential" {
			body.Credential = d.Credential
		}
		writeJSON(w, http.StatusTooManyRequests, body)
		return nil
	}

	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	mapDecision(repl, d.Credential, d.Rule)
	caddyhttp.SetVar(r.Context(), proxy.HoldBackVar, h.holdBack)
	ev.decision = "allow"
	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	err = next.ServeHTTP(rec, r)
	ev.status = rec.Status()
	if err != nil {
		var he caddyhttp.HandlerError
		if errors.As(err, &he) {
			ev.status = he.StatusCode
		}
	}
	h.finish(&ev)
	return err
}

// limit applies the rate limits to an allowed request. It returns the scope
// that refused it (identity or credential), how long to wait and why.
func (h *Handler) limit(ctx context.Context, in *Input, d *Decision) (string, time.Duration, string) {
	who := identityKey(in)
	var checks []limitCheck
	if d.rule != nil && d.rule.rate != nil {
		checks = append(checks, limitCheck{"rule:" + h.Name + "/" + d.Rule + ":" + who, "identity", "rule " + d.Rule + " rate " + d.rule.rate.text + " per identity", d.rule.rate})
	}
	if h.idRate != nil {
		checks = append(checks, limitCheck{"identity:" + h.Name + ":" + who, "identity", "policy rate " + h.idRate.text + " per identity", h.idRate})
	}
	if r := h.credRates[d.Credential]; r != nil && d.Credential != "" {
		checks = append(checks, limitCheck{"credential:" + d.Credential, "credential", "credential " + d.Credential + " rate " + r.text, r})
	}
	return h.apply(ctx, checks, in.Time)
}

// identityKey names the caller for rate limits: authenticator and user, or
// the client address of an unauthenticated request.
func identityKey(in *Input) string {
	if in.Identity != nil {
		return in.Identity.Authenticator + "/" + in.Identity.User
	}
	return "ip/" + in.ClientIP.String()
}

func ruleOrNone(r string) string {
	if r == "" {
		return "no rule matched"
	}
	return r
}

// writeJSON answers like atlasgate.WriteError, with the policy's own fields.
func writeJSON(w http.ResponseWriter, status int, body errorBody) {
	atlasgate.WriteJSON(w, status, body)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

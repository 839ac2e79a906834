package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/authhandler"
	"github.com/atlasgate/atlasgate/modules/authn"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves `POST /atlasgate/explain`: which rule of the running
// policy decides a request, why the rules before it do not match, and which
// credential would be injected. It decides with the handler's own code.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.atlasgate_explain",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes implements caddy.AdminRouter.
func (adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: "/atlasgate/explain",
		Handler: caddy.AdminHandlerFunc(handleExplain),
	}}
}

// ExplainRequest is the body of POST /atlasgate/explain. Give the caller as an
// identity, or as a token that the atlasgate app's authenticators check.
type ExplainRequest struct {
	// The policy to ask (its name). Default: every policy of the running config.
	Policy string `json:"policy,omitempty"`
	// The caller, as atlasgate_auth would store it.
	Identity *authn.Identity `json:"identity,omitempty"`
	// A bearer token (or API key) to authenticate instead of Identity.
	Token string `json:"token,omitempty"`
	// The authenticator that checks Token. Default: every configured one, in
	// name order; the first that accepts it wins.
	Authenticator string `json:"authenticator,omitempty"`
	// The request line: method and path as sent on the wire (escaped, with
	// an optional query). Required.
	Method string `json:"method"`
	Path   string `json:"path"`
	// The Host header. Default: empty.
	Host string `json:"host,omitempty"`
	// Request headers, e.g. the credential-choosing header.
	Headers map[string]string `json:"headers,omitempty"`
	// The peer address (for `source` and trusted proxies). Default: 127.0.0.1.
	RemoteAddr string `json:"remote_addr,omitempty"`
	// The request time (for `time`). Default: now.
	Time time.Time `json:"time,omitzero"`
}

// Explanation is one policy's answer.
type Explanation struct {
	Policy   string          `json:"policy"`
	Identity *authn.Identity `json:"identity,omitempty"`
	// Status the gateway would answer with before proxying: 200 (allowed,
	// subject to rate limits), 400 (path refused) or 403.
	Status   int       `json:"status"`
	Path     string    `json:"path,omitempty"`
	Product  string    `json:"product,omitempty"`
	ClientIP string    `json:"client_ip,omitempty"`
	Decision *Decision `json:"decision,omitempty"`
	// Error and reason when the path is refused.
	Error  string      `json:"error,omitempty"`
	Reason string      `json:"reason,omitempty"`
	Rules  []RuleTrace `json:"rules,omitempty"`
	// The rate limits the request would count against.
	RateLimits []string `json:"rate_limits,omitempty"`
}

func apiErr(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

func handleExplain(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return apiErr(http.StatusMethodNotAllowed, "method not allowed: use POST")
	}
	var req ExplainRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		return apiErr(http.StatusBadRequest, "decoding request: %v", err)
	}
	policies := activePolicies()
	if req.Policy != "" {
		var keep []*Handler
		for _, p := range policies {
			if p.Name == req.Policy {
				keep = append(keep, p)
			}
		}
		policies = keep
	}
	if len(policies) == 0 {
		return apiErr(http.StatusNotFound, "no atlasgate_policy %sin the running config", orEmpty(req.Policy))
	}
	app, _ := atlasgate.Running() // nil without one: explain then checks no credentials
	out := make([]Explanation, 0, len(policies))
	for _, p := range policies {
		ex, err := Explain(r.Context(), p, app, req)
		if err != nil {
			return apiErr(http.StatusBadRequest, "%v", err)
		}
		out = append(out, ex)
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}

func orEmpty(name string) string {
	if name == "" {
		return ""
	}
	return fmt.Sprintf("named %q ", name)
}

// Explain answers req for the policy h, building the request the gateway would
// see and running the handler's own input and decision code on it.
func Explain(ctx context.Context, h *Handler, app *atlasgate.App, req ExplainRequest) (Explanation, error) {
	ex := Explanation{Policy: h.Name}
	if req.Method == "" || req.Path == "" {
		return ex, errors.New("method and path are required")
	}
	u, err := url.ParseRequestURI(req.Path)
	if err != nil {
		return ex, fmt.Errorf("path: %v", err)
	}
	vars := map[string]any{}
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, vars)
	r, err := http.NewRequestWithContext(ctx, strings.ToUpper(req.Method), "/", nil)
	if err != nil {
		return ex, err
	}
	r.URL, r.RequestURI, r.Host = u, req.Path, req.Host
	for k, v := range req.Headers {
		r.Header.Set(k, v)
	}
	r.RemoteAddr = req.RemoteAddr
	if r.RemoteAddr == "" {
		r.RemoteAddr = "127.0.0.1:0"
	}
	id := req.Identity
	if id == nil && req.Token != "" {
		if id, err = authenticate(app, req.Authenticator, req.Token, r); err != nil {
			return ex, err
		}
	}
	if id != nil {
		vars[authhandler.IdentityVar] = id
	}
	ex.Identity = id

	in, err := h.Input(r)
	if err != nil {
		var pe *PathError
		errors.As(err, &pe)
		ex.Status, ex.Error, ex.Reason = http.StatusBadRequest, "invalid_path", pe.Reason
		return ex, nil
	}
	if !req.Time.IsZero() {
		in.Time = req.Time
	}
	ex.Path, ex.Product, ex.ClientIP = in.Path, in.Product, in.ClientIP.String()
	d := h.Decide(in)
	ex.Decision = &d
	ex.Status = http.StatusOK
	if !d.Allow {
		ex.Status = d.Status
	}
	ex.Rules = h.engine.trace(in)
	if d.Allow {
		if d.rule.rate != nil {
			ex.RateLimits = append(ex.RateLimits, "rule "+d.Rule+": "+d.rule.rate.text+" per identity")
		}
		if h.idRate != nil {
			ex.RateLimits = append(ex.RateLimits, "policy: "+h.idRate.text+" per identity")
		}
		if cr := h.credRates[d.Credential]; cr != nil {
			ex.RateLimits = append(ex.RateLimits, "credential "+d.Credential+": "+cr.text)
		}
	}
	return ex, nil
}

// authenticate checks a token with the app's authenticators, as atlasgate_auth does.
func authenticate(app *atlasgate.App, only, token string, r *http.Request) (*authn.Identity, error) {
	if app == nil {
		return nil, errors.New("token: the atlasgate app is not configured")
	}
	names := app.AuthenticatorNames()
	if only != "" {
		names = []string{only}
	}
	probe := r.Clone(r.Context())
	probe.Header.Set("Authorization", "Bearer "+token)
	for _, n := range names {
		a, ok := app.Authenticator(n)
		if !ok {
			return nil, fmt.Errorf("authenticator %q is not defined (defined: %s)", n, orNone(app.AuthenticatorNames()))
		}
		id, err := a.Authenticate(probe)
		if errors.Is(err, authn.ErrNoCredential) {
			continue
		}
		if err != nil {
			var ae *authn.Error
			if errors.As(err, &ae) {
				return nil, fmt.Errorf("token rejected by authenticator %q: %s: %s", n, ae.Code, ae.Description)
			}
			return nil, fmt.Errorf("token rejected by authenticator %q", n)
		}
		id.Authenticator = n
		return id, nil
	}
	return nil, errors.New("token: no authenticator accepts it")
}

// activePolicies finds the policy handlers of the running config.
func activePolicies() []*Handler {
	appIface, err := caddy.ActiveContext().AppIfConfigured("http")
	if err != nil {
		return nil
	}
	app, ok := appIface.(*caddyhttp.App)
	if !ok {
		return nil
	}
	var out []*Handler
	var walk func(caddyhttp.RouteList)
	walk = func(routes caddyhttp.RouteList) {
		for _, rt := range routes {
			for _, mh := range rt.Handlers {
				switch h := mh.(type) {
				case *Handler:
					out = append(out, h)
				case *caddyhttp.Subroute:
					walk(h.Routes)
				}
			}
		}
	}
	for _, name := range sortedServerNames(app) {
		walk(app.Servers[name].Routes)
	}
	return out
}

func sortedServerNames(app *caddyhttp.App) []string {
	names := make([]string, 0, len(app.Servers))
	for n := range app.Servers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Interface guards
var _ caddy.AdminRouter = (*adminAPI)(nil)

// orNone lists names for an error message, or says "none".
func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

package apikey

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPIBase is where the API key routes live in the admin API.
const adminAPIBase = "/atlasgate/api-keys/"

// adminAPI serves the API key management routes of the admin API:
//
//	POST   /atlasgate/api-keys/<authenticator>              create a key (CreateRequest) → 201 Issued
//	GET    /atlasgate/api-keys/<authenticator>              list keys → 200 []KeyInfo
//	GET    /atlasgate/api-keys/<authenticator>/<id>         one key → 200 KeyInfo
//	DELETE /atlasgate/api-keys/<authenticator>/<id>         revoke → 200 KeyInfo
//	POST   /atlasgate/api-keys/<authenticator>/<id>/rotate  rotate (RotateRequest) → 201 Issued
//
// <authenticator> is the name of an `api_key` authenticator of the running
// atlasgate app. Whoever can reach the admin API can issue keys, as they can
// change the whole config.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.atlasgate_api_keys",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes implements caddy.AdminRouter.
func (adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminAPIBase, Handler: caddy.AdminHandlerFunc(serveAdmin)}}
}

// maxBody bounds management request bodies.
const maxBody = 64 << 10

func serveAdmin(w http.ResponseWriter, r *http.Request) error {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, adminAPIBase), "/")
	if parts[0] == "" {
		return apiError(http.StatusNotFound, fmt.Errorf("missing authenticator name: use %s<authenticator>", adminAPIBase))
	}
	a, err := authenticator(parts[0])
	if err != nil {
		return err
	}
	ctx := r.Context()
	switch {
	case len(parts) == 1 && r.Method == http.MethodGet:
		keys, err := a.List(ctx)
		return respond(w, http.StatusOK, keys, err)
	case len(parts) == 1 && r.Method == http.MethodPost:
		var req CreateRequest
		if err := decodeBody(r, &req); err != nil {
			return err
		}
		issued, err := a.Create(ctx, req)
		if err == nil {
			audit("api key created", parts[0], issued.KeyInfo, r)
		}
		return respond(w, http.StatusCreated, issued, err)
	case len(parts) == 2 && r.Method == http.MethodGet:
		info, err := a.Get(ctx, parts[1])
		return respond(w, http.StatusOK, info, err)
	case len(parts) == 2 && r.Method == http.MethodDelete:
		info, err := a.Revoke(ctx, parts[1])
		if err == nil {
			audit("api key revoked", parts[0], *info, r)
		}
		return respond(w, http.StatusOK, info, err)
	case len(parts) == 3 && parts[2] == "rotate" && r.Method == http.MethodPost:
		var req RotateRequest
		if err := decodeBody(r, &req); err != nil {
			return err
		}
		issued, err := a.Rotate(ctx, parts[1], req)
		if err == nil {
			audit("api key rotated", parts[0], issued.KeyInfo, r, zap.String("replaced_key_id", parts[1]))
		}
		return respond(w, http.StatusCreated, issued, err)
	case len(parts) <= 2 || (len(parts) == 3 && parts[2] == "rotate"):
		return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method not allowed: %s", r.Method))
	}
	return apiError(http.StatusNotFound, fmt.Errorf("resource not found: %s", r.URL.Path))
}

// audit records a key management action on the audit logger (never the key).
func audit(msg, authenticator string, k KeyInfo, r *http.Request, extra ...zap.Field) {
	fields := append([]zap.Field{
		zap.String("authenticator", authenticator), zap.String("key_id", k.ID), zap.String("owner", k.Owner),
		zap.Time("expires", k.Expires), zap.String("admin_remote_addr", r.RemoteAddr),
	}, extra...)
	atlasgate.AuditLogger(caddy.ActiveContext()).Info(msg, fields...)
}

// authenticator finds the named api_key authenticator in the running config.
func authenticator(name string) (*APIKey, error) {
	app, err := atlasgate.Running()
	if err != nil {
		return nil, apiError(http.StatusNotFound, err)
	}
	au, ok := app.Authenticator(name)
	if !ok {
		defined := strings.Join(apiKeyAuthenticators(app), ", ")
		if defined == "" {
			defined = "none"
		}
		return nil, apiError(http.StatusNotFound, fmt.Errorf("authenticator %q is not configured (api_key authenticators: %s)", name, defined))
	}
	a, ok := au.(*APIKey)
	if !ok {
		return nil, apiError(http.StatusBadRequest, fmt.Errorf("authenticator %q is not an api_key authenticator", name))
	}
	return a, nil
}

func apiKeyAuthenticators(app *atlasgate.App) []string {
	var names []string
	for _, n := range app.AuthenticatorNames() {
		if au, _ := app.Authenticator(n); au != nil {
			if _, ok := au.(*APIKey); ok {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		return []string{"none"}
	}
	return names
}

// decodeBody reads a JSON body strictly: unknown fields are refused so that a
// misspelt `expires_in` does not silently issue a default key.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return apiError(http.StatusBadRequest, fmt.Errorf("decoding request body: %w", err))
	}
	return nil
}

func respond(w http.ResponseWriter, status int, v any, err error) error {
	var reqErr *RequestError
	switch {
	case err == nil:
	case errors.As(err, &reqErr):
		return apiError(http.StatusBadRequest, err)
	case errors.Is(err, ErrNotFound):
		return apiError(http.StatusNotFound, err)
	case errors.Is(err, ErrConflict):
		return apiError(http.StatusConflict, err)
	default:
		return apiError(http.StatusInternalServerError, err)
	}
	w.Header().Set("Content-Type", "application/json")
	// Issued keys are shown once: no cache may keep them.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func apiError(status int, err error) error {
	return caddy.APIError{HTTPStatus: status, Err: err}
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
)

package console

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves `GET /atlasgate/credentials`: every credential of the
// running config with its type and, for OAuth credentials, its state —
// never a token. It also registers the credential-state metrics, so that
// they exist whenever the admin API does, with or without a console.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.atlasgate_credentials",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision registers the metrics collector.
func (adminAPI) Provision(ctx caddy.Context) error { return registerMetrics(ctx) }

// Routes implements caddy.AdminRouter.
func (adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: "/atlasgate/credentials",
		Handler: caddy.AdminHandlerFunc(handleCredentials),
	}}
}

func handleCredentials(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed: use GET")}
	}
	app, err := atlasgate.Running()
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(statuses(r.Context(), app))
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)

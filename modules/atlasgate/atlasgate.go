// Package atlasgate holds the atlasgate Caddy app: the gateway's shared state,
// starting with its named Atlassian credentials. Handlers (the proxy, later policy
// and the console) look credentials up here by name.
package atlasgate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the atlasgate app. It holds the named credentials that the gateway
// injects into requests to Atlassian. In the Caddyfile it is the `atlasgate`
// global option block.
//
// Secrets are never part of this config: credential modules accept them only as
// `{env.*}` or `{file.*}` placeholders, resolved when the module is provisioned,
// so neither `caddy adapt` output nor the admin API's `GET /config/` holds one.
type App struct {
	// Credentials by name. Names are lowercase letters, digits, `-`, `_` and `.`,
	// at most 64 characters; handlers refer to credentials by these names. Each
	// value is a credential module from the `atlasgate.credentials` namespace,
	// chosen by its `type` key (`api_token`, `bearer`).
	CredentialsRaw map[string]json.RawMessage `json:"credentials,omitempty" caddy:"namespace=atlasgate.credentials inline_key=type"`

	credentials map[string]Credential
	logger      *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "atlasgate",
		New: func() caddy.Module { return new(App) },
	}
}

var credentialName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Provision loads the credential modules.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.credentials = make(map[string]Credential, len(a.CredentialsRaw))
	for name := range a.CredentialsRaw {
		if !credentialName.MatchString(name) {
			return fmt.Errorf("credentials: invalid name %q: use lowercase letters, digits, '-', '_' and '.', at most 64 characters", name)
		}
	}
	if len(a.CredentialsRaw) == 0 {
		return nil
	}
	mods, err := ctx.LoadModule(a, "CredentialsRaw")
	if err != nil {
		return fmt.Errorf("loading credentials: %w", err)
	}
	for name, mod := range mods.(map[string]any) {
		cred, ok := mod.(Credential)
		if !ok {
			return fmt.Errorf("credential %q: module %T is not an atlasgate credential", name, mod)
		}
		a.credentials[name] = cred
	}
	return nil
}

// Start implements caddy.App. The app runs no background work of its own yet.
func (a *App) Start() error {
	a.logger.Info("atlasgate credentials loaded", zap.Strings("credentials", a.CredentialNames()))
	return nil
}

// Stop implements caddy.App.
func (a *App) Stop() error { return nil }

// Credential returns the credential with the given name.
func (a *App) Credential(name string) (Credential, bool) {
	c, ok := a.credentials[name]
	return c, ok
}

// CredentialNames lists the configured credential names, sorted.
func (a *App) CredentialNames() []string {
	names := make([]string, 0, len(a.credentials))
	for n := range a.credentials {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// UnknownCredentialError describes a reference to a credential that is not
// configured, listing those that are.
func (a *App) UnknownCredentialError(name string) error {
	known := a.CredentialNames()
	if len(known) == 0 {
		return fmt.Errorf("credential %q is not defined: the atlasgate app has no credentials (add one in the global `atlasgate` block)", name)
	}
	return fmt.Errorf("credential %q is not defined in the atlasgate app (defined: %s)", name, strings.Join(known, ", "))
}

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)

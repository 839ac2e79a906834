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

	"github.com/atlasgate/atlasgate/modules/authn"
	"github.com/atlasgate/atlasgate/modules/tokenstore"
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

	// Authenticators by name: how callers of the gateway prove who they are.
	// Same naming rules as credentials. Each value is a module from the
	// `atlasgate.authn` namespace, chosen by its `type` key (`jwt`,
	// `introspection`, `userinfo`, `api_key`, `client_cert`). The
	// `atlasgate_auth` handler tries them by name.
	AuthenticatorsRaw map[string]json.RawMessage `json:"authenticators,omitempty" caddy:"namespace=atlasgate.authn inline_key=type"`

	// The key that encrypts OAuth token sets in Caddy's storage (AES-256-GCM):
	// 32 random bytes, base64- or hex-encoded (`openssl rand -base64 32`), as an
	// `{env.NAME}` or `{file.PATH}` placeholder. Required when an OAuth
	// credential is configured; every replica sharing the storage needs the
	// same key.
	EncryptionKey string `json:"encryption_key,omitempty"`

	credentials    map[string]Credential
	authenticators map[string]authn.Authenticator
	tokens         *tokenstore.Store
	logger         *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "atlasgate",
		New: func() caddy.Module { return new(App) },
	}
}

// ReservedAuthenticatorName qualifies callers that Caddy's own
// authentication (basic_auth) identified: a per-user grant of `caddy:bob`
// belongs to basic_auth's bob, so no authenticator may take the name.
const ReservedAuthenticatorName = "caddy"

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
	a.authenticators = make(map[string]authn.Authenticator, len(a.AuthenticatorsRaw))
	for name := range a.AuthenticatorsRaw {
		if !credentialName.MatchString(name) {
			return fmt.Errorf("authenticators: invalid name %q: use lowercase letters, digits, '-', '_' and '.', at most 64 characters", name)
		}
		if name == ReservedAuthenticatorName {
			return fmt.Errorf("authenticators: the name %q is reserved for Caddy's own authentication (basic_auth users); choose another", name)
		}
	}
	if a.EncryptionKey != "" {
		raw, err := ResolveSecret("encryption_key", a.EncryptionKey)
		if err != nil {
			return err
		}
		key, err := tokenstore.ParseKey(raw)
		if err != nil {
			return fmt.Errorf("encryption_key: %v", err)
		}
		if a.tokens, err = tokenstore.New(ctx.Storage(), key); err != nil {
			return fmt.Errorf("encryption_key: %v", err)
		}
	}
	// Credentials are loaded one by one, so that each finds its own name (and
	// the token store) in its context, and errors name the credential.
	for _, name := range sortedKeys(a.CredentialsRaw) {
		var head struct {
			Type string `json:"type"`
		}
		raw := a.CredentialsRaw[name]
		if err := json.Unmarshal(raw, &head); err != nil || head.Type == "" {
			return fmt.Errorf("credential %q: missing \"type\" (api_token, bearer, oauth, client_credentials)", name)
		}
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(raw, &fields)
		delete(fields, "type")
		body, _ := json.Marshal(fields)
		cctx := ctx.WithValue(tokenStoreKey{}, a.tokens)
		cctx = cctx.WithValue(credentialNameKey{}, name)
		mod, err := cctx.LoadModuleByID("atlasgate.credentials."+head.Type, body)
		if err != nil {
			return fmt.Errorf("credential %q: %w", name, err)
		}
		cred, ok := mod.(Credential)
		if !ok {
			return fmt.Errorf("credential %q: module %T is not an atlasgate credential", name, mod)
		}
		a.credentials[name] = cred
	}
	if len(a.AuthenticatorsRaw) > 0 {
		mods, err := ctx.LoadModule(a, "AuthenticatorsRaw")
		if err != nil {
			return fmt.Errorf("loading authenticators: %w", err)
		}
		for name, mod := range mods.(map[string]any) {
			au, ok := mod.(authn.Authenticator)
			if !ok {
				return fmt.Errorf("authenticator %q: module %T is not an atlasgate authenticator", name, mod)
			}
			a.authenticators[name] = au
		}
	}
	return nil
}

type tokenStoreKey struct{}

type credentialNameKey struct{}

// CredentialName returns the name a credential module is configured under,
// from the context the atlasgate app provisions it with.
func CredentialName(ctx caddy.Context) string {
	n, _ := ctx.Value(credentialNameKey{}).(string)
	return n
}

// TokenStore returns the encrypted token store a credential module keeps its
// tokens in, from the context the atlasgate app provisions credentials with.
// It fails, naming the missing option, when no encryption_key is configured.
func TokenStore(ctx caddy.Context) (*tokenstore.Store, error) {
	if s, _ := ctx.Value(tokenStoreKey{}).(*tokenstore.Store); s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("this credential keeps OAuth tokens, which needs `encryption_key` in the atlasgate block (32 random bytes, e.g. `openssl rand -base64 32`, as an {env.*} or {file.*} placeholder)")
}

// Tokens returns the app's token store, nil without an encryption key.
func (a *App) Tokens() *tokenstore.Store { return a.tokens }

// Authenticator returns the authenticator with the given name.
func (a *App) Authenticator(name string) (authn.Authenticator, bool) {
	au, ok := a.authenticators[name]
	return au, ok
}

// AuthenticatorNames lists the configured authenticator names, sorted.
func (a *App) AuthenticatorNames() []string {
	return sortedKeys(a.authenticators)
}

// Start implements caddy.App. The app runs no background work of its own yet.
func (a *App) Start() error {
	a.logger.Info("atlasgate loaded",
		zap.Strings("credentials", a.CredentialNames()),
		zap.Strings("authenticators", a.AuthenticatorNames()))
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
	return sortedKeys(a.credentials)
}

func sortedKeys[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
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

// auditModule names the audit logger: Caddy names a module's logger after
// its ID, and routes it through the configured logs, so `log audit { include
// atlasgate.audit }` can send the audit events to their own sink.
type auditModule struct{}

func (auditModule) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "atlasgate.audit", New: func() caddy.Module { return auditModule{} }}
}

// AuditLogger returns the logger of audit events (decisions, authorizations,
// admin actions), named `atlasgate.audit`.
func AuditLogger(ctx caddy.Context) *zap.Logger { return ctx.Logger(auditModule{}) }

// Running returns the atlasgate app of the running config, for admin API
// routes and metric collectors, which live outside any one config. It fails
// when the running config has no atlasgate app.
func Running() (*App, error) {
	a, err := caddy.ActiveContext().AppIfConfigured("atlasgate")
	if err != nil {
		return nil, fmt.Errorf("the atlasgate app is not configured")
	}
	app, ok := a.(*App)
	if !ok {
		return nil, fmt.Errorf("the atlasgate app has unexpected type %T", a)
	}
	return app, nil
}

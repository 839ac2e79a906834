package opaque

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/authn"
)

func init() {
	caddy.RegisterModule(Userinfo{})
}

const defaultUserinfoTTL = 60 * time.Second

// Userinfo validates bearer tokens by calling a userinfo-style endpoint of
// their issuer with the token (`Authorization: Bearer <token>`): the token is
// valid when the endpoint answers 200 with the user. Presets cover Microsoft
// Graph, GitHub, GitLab, Google, Slack, Facebook and OpenID Connect userinfo
// endpoints; `custom` calls any URL.
//
// The endpoint accepts any token its provider issued, to any application, so
// restrict who may use the gateway by user or group (policy), not by this
// authenticator alone.
type Userinfo struct {
	// Where the token is read besides `Authorization: Bearer`
	// (`token_header`, `token_header_scheme`); see authn.TokenSource.
	authn.TokenSource

	// The provider preset: `graph` (Microsoft Graph /me, user
	// `userPrincipalName`), `github` (/user, `login`), `gitlab` (/api/v4/user
	// of `instance`, `username`), `google` (OpenID userinfo, `email`, which
	// must be verified), `slack` (openid.connect.userInfo, `email`),
	// `facebook` (/me, `id`), `oidc` (the OpenID Connect userinfo endpoint at
	// `url`, `sub`) or `custom` (`url` and `username_attribute` required).
	// Required.
	Provider string `json:"provider,omitempty"`

	// The endpoint, replacing the preset's. Required for `oidc` and `custom`.
	// Must be https (http is accepted for 127.0.0.1 and ::1 only).
	// Placeholders are resolved.
	URL string `json:"url,omitempty"`

	// Base URL of the GitLab instance, for `gitlab`. Default
	// `https://gitlab.com`.
	Instance string `json:"instance,omitempty"`

	// Dotted JSON path to the username in the response, e.g.
	// `data.user.login`; it becomes {http.auth.user.id}. Default: the
	// preset's.
	UsernameAttribute string `json:"username_attribute,omitempty"`

	// Dotted JSON path to the user's groups in the response (an array or a
	// single string). Default: no groups.
	GroupsAttribute string `json:"groups_attribute,omitempty"`

	// Extra request headers, e.g. an API version. Placeholders in values are
	// resolved. Authorization cannot be set. Default: the preset's.
	Headers map[string]string `json:"headers,omitempty"`

	// How long a valid token's verdict is cached (the endpoint tells no
	// expiry). Default 60s.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// How long a refused token is remembered. Default 10s.
	NegativeCacheTTL caddy.Duration `json:"negative_cache_ttl,omitempty"`

	// Timeout of one call to the endpoint. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	preset   preset
	endpoint *url.URL
	header   http.Header
	client   *http.Client
	checker  *checker
}

// CaddyModule returns the Caddy module information.
func (Userinfo) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "atlasgate.authn.userinfo",
		New: func() caddy.Module { return new(Userinfo) },
	}
}

// Provision applies the preset, resolves placeholders and checks the options.
func (u *Userinfo) Provision(ctx caddy.Context) error {
	if err := authn.RegisterMetrics(ctx); err != nil {
		return err
	}
	if err := u.ValidateTokenSource(); err != nil {
		return err
	}
	p, ok := presets[u.Provider]
	if !ok {
		if u.Provider == "" {
			return fmt.Errorf("provider: required (%s)", presetNames())
		}
		return fmt.Errorf("provider: unknown provider %q: use %s", u.Provider, presetNames())
	}
	u.preset = p
	if u.Instance != "" && u.Provider != "gitlab" {
		return fmt.Errorf("instance: only applies to the gitlab provider")
	}
	raw := p.url
	switch {
	case u.URL != "":
		raw = u.URL
	case u.Provider == "gitlab":
		instance := defaultGitLab
		if u.Instance != "" {
			var err error
			if instance, err = atlasgate.ResolveValue("instance", u.Instance); err != nil {
				return err
			}
		}
		raw = gitlabURL(instance)
	case raw == "":
		return fmt.Errorf("url: required for the %s provider", u.Provider)
	}
	resolved, err := atlasgate.ResolveValue("url", raw)
	if err != nil {
		return err
	}
	if u.endpoint, err = parseEndpoint("url", resolved); err != nil {
		return err
	}
	if u.UsernameAttribute == "" {
		u.UsernameAttribute = p.username
	}
	if u.UsernameAttribute == "" {
		return fmt.Errorf("username_attribute: required for the %s provider", u.Provider)
	}
	u.header = p.header.Clone()
	if u.header == nil {
		u.header = make(http.Header)
	}
	for name, value := range u.Headers {
		if strings.EqualFold(name, "Authorization") {
			return fmt.Errorf("headers: Authorization is the client's token and cannot be set")
		}
		v, err := atlasgate.ResolveValue("headers."+name, value)
		if err != nil {
			return err
		}
		u.header.Set(name, v)
	}
	if u.CacheTTL < 0 || u.NegativeCacheTTL < 0 || u.Timeout < 0 {
		return fmt.Errorf("cache_ttl, negative_cache_ttl and timeout must not be negative")
	}
	if u.CacheTTL == 0 {
		u.CacheTTL = caddy.Duration(defaultUserinfoTTL)
	}
	u.client = newClient()
	u.checker = newChecker("userinfo", u.endpoint.Redacted(), time.Duration(u.Timeout),
		time.Duration(u.NegativeCacheTTL), u.userinfo, ctx.Logger())
	return nil
}

// Authenticate implements authn.Authenticator.
func (u *Userinfo) Authenticate(r *http.Request) (*authn.Identity, error) {
	return u.checker.authenticate(r, u.TokenSource)
}

// userinfo calls the endpoint with the client's token.
func (u *Userinfo) userinfo(ctx context.Context, token string) (*verdict, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.endpoint.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header = u.header.Clone()
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	status, header, body, err := fetch(u.client, req)
	if err != nil {
		return nil, err
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || slices.Contains(u.preset.invalidStatus, status):
		return &verdict{invalid: authn.Invalid("the token was refused by its issuer", nil)}, nil
	case status != http.StatusOK:
		return nil, fmt.Errorf("unexpected status %d", status)
	}
	doc, err := decodeObject(body)
	if err != nil {
		return nil, fmt.Errorf("response is not a JSON object: %v", err)
	}
	if f := u.preset.okField; f != "" {
		if ok, _ := doc[f].(bool); !ok {
			code, _ := doc["error"].(string)
			if slices.Contains(u.preset.unavailableErrors, code) {
				return nil, fmt.Errorf("provider error %q", code)
			}
			return &verdict{invalid: authn.Invalid("the token was refused by its issuer", nil)}, nil
		}
	}
	id := &authn.Identity{Kind: "userinfo", Claims: doc}
	var ok bool
	if id.User, ok = stringAt(doc, u.UsernameAttribute); !ok {
		return &verdict{invalid: authn.Invalid("token lacks the username attribute", nil)}, nil
	}
	if f := u.preset.verifiedField; f != "" && u.UsernameAttribute == u.preset.username {
		// An unverified email address may belong to someone else.
		if v, isBool := doc[f].(bool); isBool && !v {
			return &verdict{invalid: authn.Invalid("the token's email address is not verified", nil)}, nil
		}
	}
	if id.Subject, ok = stringAt(doc, "sub"); !ok {
		id.Subject, _ = stringAt(doc, "id")
	}
	id.Groups = stringsAt(doc, u.GroupsAttribute)
	if h := u.preset.scopesHeader; h != "" {
		for _, s := range strings.Split(header.Get(h), ",") {
			if s = strings.TrimSpace(s); s != "" {
				id.Scopes = append(id.Scopes, s)
			}
		}
	}
	return &verdict{identity: id, until: now().Add(time.Duration(u.CacheTTL))}, nil
}

// Cleanup closes the idle connections to the endpoint.
func (u *Userinfo) Cleanup() error {
	if u.client != nil {
		u.client.CloseIdleConnections()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner   = (*Userinfo)(nil)
	_ caddy.CleanerUpper  = (*Userinfo)(nil)
	_ authn.Authenticator = (*Userinfo)(nil)
)

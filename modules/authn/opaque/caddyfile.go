package opaque

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/atlasgate/atlasgate/modules/internal/cfparse"
)

// UnmarshalCaddyfile sets up an introspection authenticator:
//
//	authenticator <name> introspection {
//	    endpoint           <https://idp.example.com/oauth2/introspect>
//	    client_id          <id>
//	    client_secret      <{env.NAME}|{file.PATH}>
//	    client_auth        basic|post
//	    token_type_hint    <hint>
//	    username_claim     <json.path>
//	    groups_claim       <json.path>
//	    audiences          <aud...>
//	    issuer             <iss>
//	    cache_ttl          <duration>
//	    negative_cache_ttl <duration>
//	    timeout            <duration>
//	    token_header       <header-name> [<scheme>]
//	}
func (in *Introspection) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume authenticator type
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "endpoint":
			err = cfparse.One(d, &in.Endpoint)
		case "client_id":
			err = cfparse.One(d, &in.ClientID)
		case "client_secret":
			err = cfparse.One(d, &in.ClientSecret)
		case "client_auth":
			err = cfparse.One(d, &in.ClientAuth)
			if err == nil && in.ClientAuth != "basic" && in.ClientAuth != "post" {
				return d.Errf("client_auth: %q is not supported: use basic or post", in.ClientAuth)
			}
		case "token_type_hint":
			err = cfparse.One(d, &in.TokenTypeHint)
		case "username_claim":
			err = cfparse.One(d, &in.UsernameClaim)
		case "groups_claim":
			err = cfparse.One(d, &in.GroupsClaim)
		case "audiences", "audience":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			in.Audiences = append(in.Audiences, args...)
		case "issuer":
			err = cfparse.One(d, &in.Issuer)
		case "cache_ttl":
			err = cfparse.PositiveDuration(d, &in.CacheTTL)
		case "negative_cache_ttl":
			err = cfparse.PositiveDuration(d, &in.NegativeCacheTTL)
		case "timeout":
			err = cfparse.PositiveDuration(d, &in.Timeout)
		case "token_header":
			err = cfparse.TokenHeader(d, &in.TokenHeader, &in.TokenHeaderScheme)
		default:
			return d.Errf("introspection: unrecognized option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalCaddyfile sets up a userinfo authenticator. The provider follows
// the type on the same line; `gitlab` may name its instance and `oidc` needs
// the userinfo endpoint:
//
//	authenticator <name> userinfo graph|github|google|slack|facebook
//	authenticator <name> userinfo gitlab [<https://gitlab.example.com>]
//	authenticator <name> userinfo oidc <https://idp.example.com/userinfo>
//	authenticator <name> userinfo <provider> {
//	    url                <https://api.example.com/me>
//	    username_attribute <json.path>
//	    groups_attribute   <json.path>
//	    header             <name> <value>
//	    cache_ttl          <duration>
//	    negative_cache_ttl <duration>
//	    timeout            <duration>
//	    token_header       <header-name> [<scheme>]
//	}
//
// `custom` requires `url` and `username_attribute`.
func (u *Userinfo) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume authenticator type
	if !d.NextArg() {
		return d.Errf("userinfo: missing provider (%s)", presetNames())
	}
	u.Provider = d.Val()
	if _, ok := presets[u.Provider]; !ok {
		return d.Errf("userinfo: unknown provider %q: use %s", u.Provider, presetNames())
	}
	if d.NextArg() {
		switch u.Provider {
		case "gitlab":
			u.Instance = d.Val()
		case "oidc", "custom":
			u.URL = d.Val()
		default:
			return d.ArgErr()
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "url":
			err = cfparse.One(d, &u.URL)
		case "username_attribute":
			err = cfparse.One(d, &u.UsernameAttribute)
		case "groups_attribute":
			err = cfparse.One(d, &u.GroupsAttribute)
		case "header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.ArgErr()
			}
			if u.Headers == nil {
				u.Headers = make(map[string]string)
			}
			u.Headers[args[0]] = args[1]
		case "cache_ttl":
			err = cfparse.PositiveDuration(d, &u.CacheTTL)
		case "negative_cache_ttl":
			err = cfparse.PositiveDuration(d, &u.NegativeCacheTTL)
		case "timeout":
			err = cfparse.PositiveDuration(d, &u.Timeout)
		case "token_header":
			err = cfparse.TokenHeader(d, &u.TokenHeader, &u.TokenHeaderScheme)
		default:
			return d.Errf("userinfo: unrecognized option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Introspection)(nil)
	_ caddyfile.Unmarshaler = (*Userinfo)(nil)
)

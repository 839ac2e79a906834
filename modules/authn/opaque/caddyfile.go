package opaque

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
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
			err = oneArg(d, &in.Endpoint)
		case "client_id":
			err = oneArg(d, &in.ClientID)
		case "client_secret":
			err = oneArg(d, &in.ClientSecret)
		case "client_auth":
			err = oneArg(d, &in.ClientAuth)
			if err == nil && in.ClientAuth != "basic" && in.ClientAuth != "post" {
				return d.Errf("client_auth: %q is not supported: use basic or post", in.ClientAuth)
			}
		case "token_type_hint":
			err = oneArg(d, &in.TokenTypeHint)
		case "username_claim":
			err = oneArg(d, &in.UsernameClaim)
		case "groups_claim":
			err = oneArg(d, &in.GroupsClaim)
		case "audiences", "audience":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			in.Audiences = append(in.Audiences, args...)
		case "issuer":
			err = oneArg(d, &in.Issuer)
		case "cache_ttl":
			err = durationArg(d, &in.CacheTTL)
		case "negative_cache_ttl":
			err = durationArg(d, &in.NegativeCacheTTL)
		case "timeout":
			err = durationArg(d, &in.Timeout)
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
			err = oneArg(d, &u.URL)
		case "username_attribute":
			err = oneArg(d, &u.UsernameAttribute)
		case "groups_attribute":
			err = oneArg(d, &u.GroupsAttribute)
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
			err = durationArg(d, &u.CacheTTL)
		case "negative_cache_ttl":
			err = durationArg(d, &u.NegativeCacheTTL)
		case "timeout":
			err = durationArg(d, &u.Timeout)
		default:
			return d.Errf("userinfo: unrecognized option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	option := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: invalid duration %q: %v", option, s, err)
	}
	if dur <= 0 {
		return d.Errf("%s: invalid duration %q: must be positive", option, s)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Introspection)(nil)
	_ caddyfile.Unmarshaler = (*Userinfo)(nil)
)

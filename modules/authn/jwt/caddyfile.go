package jwt

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/atlasgate/atlasgate/modules/internal/cfparse"
)

// UnmarshalCaddyfile sets up a jwt authenticator:
//
//	authenticator <name> jwt {
//	    preset <entra|okta|keycloak|cognito|google|gitlab|github_actions|kubernetes|oidc> [<args...>]
//	    issuer <url>
//	    discovery <true|false>
//	    jwks_uri <url>
//	    audience <aud...>
//	    audience_fallback_claim <claim>
//	    algorithms <alg...>
//	    leeway <duration>
//	    username_claim <path> [<fallback path...>]
//	    groups_claim <path...>
//	    require_claim <path> <value...>
//	    token_type <typ...>
//	    max_token_age <duration>
//	    cache_size <n>
//	    jwks_refresh <duration>
//	    jwks_min_refetch <duration>
//	    timeout <duration>
//	    trusted_ca_file <pem_file...>
//	    token_header <header-name> [<scheme>]
//	}
//
// `audience`, `algorithms`, `groups_claim`, `token_type`, `require_claim` and
// `trusted_ca_file` may repeat; their values add up.
func (j *JWT) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume authenticator type
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch opt := d.Val(); opt {
		case "preset":
			if j.Preset != nil {
				return d.Err("jwt: preset may appear only once")
			}
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			j.Preset = &Preset{Name: args[0], Args: args[1:]}
		case "issuer":
			err = cfparse.One(d, &j.Issuer)
		case "discovery":
			var v string
			if err = cfparse.One(d, &v); err == nil {
				b, perr := strconv.ParseBool(v)
				if perr != nil {
					return d.Errf("jwt: discovery: %q is not true or false", v)
				}
				j.Discovery = &b
			}
		case "jwks_uri":
			err = cfparse.One(d, &j.JWKSURI)
		case "audience", "audiences":
			err = cfparse.More(d, &j.Audiences)
		case "audience_fallback_claim":
			err = cfparse.One(d, &j.AudienceFallbackClaim)
		case "algorithms", "algorithm":
			err = cfparse.More(d, &j.Algorithms)
		case "leeway":
			err = cfparse.Duration(d, &j.Leeway)
		case "username_claim":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			j.UsernameClaim, j.UsernameFallbackClaims = args[0], args[1:]
		case "groups_claim":
			err = cfparse.More(d, &j.GroupsClaim)
		case "require_claim":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Errf("jwt: usage: require_claim <claim> <value...>")
			}
			j.RequireClaims = append(j.RequireClaims, ClaimRequirement{Claim: args[0], Values: args[1:]})
		case "token_type":
			err = cfparse.More(d, &j.TokenTypes)
		case "max_token_age":
			err = cfparse.Duration(d, &j.MaxTokenAge)
		case "cache_size":
			var v string
			if err = cfparse.One(d, &v); err == nil {
				if j.CacheSize, err = strconv.Atoi(v); err != nil {
					return d.Errf("jwt: cache_size: %q is not a number", v)
				}
			}
		case "jwks_refresh":
			err = cfparse.Duration(d, &j.JWKSRefresh)
		case "jwks_min_refetch":
			err = cfparse.Duration(d, &j.JWKSMinRefetch)
		case "timeout":
			err = cfparse.Duration(d, &j.Timeout)
		case "trusted_ca_file":
			err = cfparse.More(d, &j.TrustedCAFiles)
		case "token_header":
			err = cfparse.TokenHeader(d, &j.TokenHeader, &j.TokenHeaderScheme)
		default:
			return d.Errf("jwt: unrecognized option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*JWT)(nil)

package apikey

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/atlasgate/atlasgate/modules/internal/cfparse"
)

// UnmarshalCaddyfile sets up an api_key authenticator:
//
//	authenticator <name> api_key {
//	    realm            <name>
//	    max_lifetime     <duration>
//	    default_lifetime <duration>
//	    header           <header-name> [<scheme>]
//	}
//
// Durations accept Caddy's units, including `d` for days (`90d`).
func (a *APIKey) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume authenticator type
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "header":
			if err := cfparse.TokenHeader(d, &a.Header, &a.HeaderScheme); err != nil {
				return err
			}
			continue
		case "realm", "max_lifetime", "default_lifetime":
		default:
			return d.Errf("api_key: unrecognized option %q", opt)
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		val := d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		switch opt {
		case "realm":
			a.Realm = val
		case "max_lifetime", "default_lifetime":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("api_key: %s %q: %v", opt, val, err)
			}
			if opt == "max_lifetime" {
				a.MaxLifetime = caddy.Duration(dur)
			} else {
				a.DefaultLifetime = caddy.Duration(dur)
			}
		}
	}
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*APIKey)(nil)

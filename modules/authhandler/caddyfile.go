package authhandler

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("atlasgate_auth", parseCaddyfile)
	// With the other authentication directives: before any route or proxy.
	httpcaddyfile.RegisterDirectiveOrder("atlasgate_auth", httpcaddyfile.After, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	a := new(Handler)
	err := a.UnmarshalCaddyfile(h.Dispenser)
	return a, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	atlasgate_auth [<authenticator...>] {
//	    authenticators <name...>
//	    realm <realm>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	h.Authenticators = append(h.Authenticators, d.RemainingArgs()...)
	for d.NextBlock(0) {
		switch d.Val() {
		case "authenticators":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.Authenticators = append(h.Authenticators, args...)
		case "realm":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.Realm = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("atlasgate_auth: unrecognized option %q", d.Val())
		}
	}
	if len(h.Authenticators) == 0 {
		return d.Err("atlasgate_auth: name at least one authenticator")
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)

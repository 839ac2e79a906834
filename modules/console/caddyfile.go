package console

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("atlasgate_console", parseCaddyfile)
	// A terminal handler, after the authentication directives (basic_auth,
	// atlasgate_auth) that must guard it.
	httpcaddyfile.RegisterDirectiveOrder("atlasgate_console", httpcaddyfile.Before, "respond")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	c := new(Handler)
	err := c.UnmarshalCaddyfile(h.Dispenser)
	return c, err
}

// UnmarshalCaddyfile sets up the console from Caddyfile tokens:
//
//	atlasgate_console [<path_prefix>] {
//	    path_prefix <path>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		h.PathPrefix = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "path_prefix":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.PathPrefix = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("atlasgate_console: unrecognized option %q", d.Val())
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)

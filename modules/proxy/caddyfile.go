package proxy

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("atlasgate_proxy", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("atlasgate_proxy", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	p := new(Handler)
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return p, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	atlasgate_proxy [<credential>] {
//	    credential <name>
//	    upstream_hold_back on|off
//	    rewrite_links on|off
//	    public_url <url>
//	}
//
// The credential name may be a placeholder set by a preceding handler; without
// one, the access policy's choice is used.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		h.Credential = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "credential":
			if h.Credential != "" {
				return d.Err("credential already set")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.Credential = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "upstream_hold_back":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.UpstreamHoldBack = d.Val()
			if h.UpstreamHoldBack != "on" && h.UpstreamHoldBack != "off" {
				return d.Errf("upstream_hold_back: %q: use on or off", d.Val())
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "rewrite_links":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.RewriteLinks = d.Val()
			if h.RewriteLinks != "on" && h.RewriteLinks != "off" {
				return d.Errf("rewrite_links: %q: use on or off", d.Val())
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "public_url":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.PublicURL = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("atlasgate_proxy: unrecognized option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)

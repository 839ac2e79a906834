package clientcert

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up a client_cert authenticator:
//
//	authenticator <name> client_cert {
//	    identity     spiffe|dns|cn
//	    trust_domain <domain>
//	}
//
// The certificate itself is verified by the site's `tls { client_auth { … } }`.
func (c *ClientCert) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume authenticator type
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		var dst *string
		switch opt {
		case "identity":
			dst = &c.Identity
		case "trust_domain":
			dst = &c.TrustDomain
		default:
			return d.Errf("client_cert: unrecognized option %q", opt)
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		*dst = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*ClientCert)(nil)

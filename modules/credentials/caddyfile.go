package credentials

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up an api_token credential:
//
//	credential <name> api_token {
//	    site  <https://site.atlassian.net>
//	    email <address>
//	    token <{env.NAME}|{file.PATH}>
//	    scoped
//	    api_base <https://api.atlassian.com>
//	    trusted_ca_file <pem_file...>
//	}
func (c *APIToken) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume credential type
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "site":
			err = oneArg(d, &c.Site)
		case "email":
			err = oneArg(d, &c.Email)
		case "token":
			err = oneArg(d, &c.Token)
		case "scoped":
			if d.NextArg() {
				return d.ArgErr()
			}
			c.Scoped = true
		case "api_base":
			err = oneArg(d, &c.APIBase)
		case "trusted_ca_file":
			err = moreArgs(d, &c.TrustedCAFiles)
		default:
			return d.Errf("api_token: unrecognized option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalCaddyfile sets up a bearer credential:
//
//	credential <name> bearer {
//	    site  <https://jira.example.com>
//	    token <{env.NAME}|{file.PATH}>
//	    trusted_ca_file <pem_file...>
//	}
func (c *Bearer) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume credential type
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "site":
			err = oneArg(d, &c.Site)
		case "token":
			err = oneArg(d, &c.Token)
		case "trusted_ca_file":
			err = moreArgs(d, &c.TrustedCAFiles)
		default:
			return d.Errf("bearer: unrecognized option %q", d.Val())
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

func moreArgs(d *caddyfile.Dispenser, dst *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*dst = append(*dst, args...)
	return nil
}

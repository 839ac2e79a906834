package credentials

import (
	"github.com/caddyserver/caddy/v2"
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

// UnmarshalCaddyfile sets up an oauth (3LO) credential:
//
//	credential <name> oauth {
//	    client_id     <id>
//	    client_secret <{env.NAME}|{file.PATH}>
//	    scopes        <scope...>            # must include offline_access
//	    site          <https://site.atlassian.net>
//	    callback_url  <https://gateway.example.com/atlasgate/console/callback>
//	    authorize_url <url>
//	    token_url     <url>
//	    api_base      <url>
//	    audience      <audience>
//	    trusted_ca_file <pem_file...>
//	    refresh_before <duration>
//	    keep_alive     <duration>
//	    per_user
//	}
func (c *OAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume credential type
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "client_id":
			err = oneArg(d, &c.ClientID)
		case "client_secret":
			err = oneArg(d, &c.ClientSecret)
		case "scopes":
			err = moreArgs(d, &c.Scopes)
		case "site":
			err = oneArg(d, &c.Site)
		case "callback_url":
			err = oneArg(d, &c.CallbackURL)
		case "authorize_url":
			err = oneArg(d, &c.AuthorizeURL)
		case "token_url":
			err = oneArg(d, &c.TokenURL)
		case "api_base":
			err = oneArg(d, &c.APIBase)
		case "audience":
			err = oneArg(d, &c.Audience)
		case "trusted_ca_file":
			err = moreArgs(d, &c.TrustedCAFiles)
		case "refresh_before":
			err = durationArg(d, &c.RefreshBefore)
		case "keep_alive":
			err = durationArg(d, &c.KeepAlive)
		case "per_user":
			if d.NextArg() {
				return d.ArgErr()
			}
			c.PerUser = true
		default:
			return d.Errf("oauth: unrecognized option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: %v", d.Val(), err)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*APIToken)(nil)
	_ caddyfile.Unmarshaler = (*Bearer)(nil)
	_ caddyfile.Unmarshaler = (*OAuth)(nil)
)

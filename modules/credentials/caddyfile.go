package credentials

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/atlasgate/atlasgate/modules/internal/cfparse"
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
			err = cfparse.One(d, &c.Site)
		case "email":
			err = cfparse.One(d, &c.Email)
		case "token":
			err = cfparse.One(d, &c.Token)
		case "scoped":
			if d.NextArg() {
				return d.ArgErr()
			}
			c.Scoped = true
		case "api_base":
			err = cfparse.One(d, &c.APIBase)
		case "trusted_ca_file":
			err = cfparse.More(d, &c.TrustedCAFiles)
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
			err = cfparse.One(d, &c.Site)
		case "token":
			err = cfparse.One(d, &c.Token)
		case "trusted_ca_file":
			err = cfparse.More(d, &c.TrustedCAFiles)
		default:
			return d.Errf("bearer: unrecognized option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalCaddyfile sets up an oauth (3LO) credential:
//
//	credential <name> oauth {
//	    client_id     <id>
//	    client_secret <{env.NAME}|{file.PATH}>
//	    scopes        <scope...>            # must include offline_access
//	    site          <https://site.atlassian.net>
//	    callback_url  <https://gateway.example.com/atlasgate/oauth/callback>
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
			err = cfparse.One(d, &c.ClientID)
		case "client_secret":
			err = cfparse.One(d, &c.ClientSecret)
		case "scopes":
			err = cfparse.More(d, &c.Scopes)
		case "site":
			err = cfparse.One(d, &c.Site)
		case "callback_url":
			err = cfparse.One(d, &c.CallbackURL)
		case "authorize_url":
			err = cfparse.One(d, &c.AuthorizeURL)
		case "token_url":
			err = cfparse.One(d, &c.TokenURL)
		case "api_base":
			err = cfparse.One(d, &c.APIBase)
		case "audience":
			err = cfparse.One(d, &c.Audience)
		case "trusted_ca_file":
			err = cfparse.More(d, &c.TrustedCAFiles)
		case "refresh_before":
			err = cfparse.Duration(d, &c.RefreshBefore)
		case "keep_alive":
			err = cfparse.Duration(d, &c.KeepAlive)
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

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*APIToken)(nil)
	_ caddyfile.Unmarshaler = (*Bearer)(nil)
	_ caddyfile.Unmarshaler = (*OAuth)(nil)
)

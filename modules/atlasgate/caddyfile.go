package atlasgate

import (
	"encoding/json"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("atlasgate", parseGlobalOption)
}

// parseGlobalOption sets up the atlasgate app from the global option block:
//
//	{
//	    atlasgate {
//	        encryption_key <{env.NAME}|{file.PATH}>
//	        credential <name> <type> {
//	            # options of the credential type, e.g. for api_token:
//	            site  https://acme.atlassian.net
//	            email alice@example.com
//	            token {env.ATLASSIAN_API_TOKEN}
//	        }
//	        authenticator <name> <type> {
//	            # options of the authenticator type (jwt, introspection,
//	            # userinfo, api_key, client_cert)
//	        }
//	    }
//	}
//
// The block may appear once. Credential types are the modules of the
// `atlasgate.credentials` namespace (`api_token`, `bearer`).
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("the atlasgate global option may appear only once")
	}
	app := new(App)
	d.Next() // consume option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "credential":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			name := d.Val()
			if !credentialName.MatchString(name) {
				return nil, d.Errf("credential %q: invalid name: use lowercase letters, digits, '-', '_' and '.', at most 64 characters", name)
			}
			if !d.NextArg() {
				return nil, d.Errf("credential %q: missing type (api_token, bearer, oauth or client_credentials)", name)
			}
			typ := d.Val()
			if _, dup := app.CredentialsRaw[name]; dup {
				return nil, d.Errf("credential %q is defined twice", name)
			}
			unm, err := caddyfile.UnmarshalModule(d, "atlasgate.credentials."+typ)
			if err != nil {
				return nil, err
			}
			if app.CredentialsRaw == nil {
				app.CredentialsRaw = make(map[string]json.RawMessage)
			}
			app.CredentialsRaw[name] = caddyconfig.JSONModuleObject(unm, "type", typ, nil)
		case "encryption_key":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			app.EncryptionKey = d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		case "authenticator":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			name := d.Val()
			if !credentialName.MatchString(name) {
				return nil, d.Errf("authenticator %q: invalid name: use lowercase letters, digits, '-', '_' and '.', at most 64 characters", name)
			}
			if !d.NextArg() {
				return nil, d.Errf("authenticator %q: missing type (jwt, introspection, userinfo, api_key or client_cert)", name)
			}
			typ := d.Val()
			if _, dup := app.AuthenticatorsRaw[name]; dup {
				return nil, d.Errf("authenticator %q is defined twice", name)
			}
			unm, err := caddyfile.UnmarshalModule(d, "atlasgate.authn."+typ)
			if err != nil {
				return nil, err
			}
			if app.AuthenticatorsRaw == nil {
				app.AuthenticatorsRaw = make(map[string]json.RawMessage)
			}
			app.AuthenticatorsRaw[name] = caddyconfig.JSONModuleObject(unm, "type", typ, nil)
		default:
			return nil, d.Errf("atlasgate: unrecognized option %q", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "atlasgate", Value: caddyconfig.JSON(app, nil)}, nil
}

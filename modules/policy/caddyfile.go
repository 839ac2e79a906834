package policy

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("atlasgate_policy", parseCaddyfile)
	// Directive order may only refer to standard directives. atlasgate_auth
	// sits right after basic_auth; the policy comes after request_header, so
	// after authentication and header edits, and before handle, route and
	// atlasgate_proxy (ordered before reverse_proxy).
	httpcaddyfile.RegisterDirectiveOrder("atlasgate_policy", httpcaddyfile.After, "request_header")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	p := new(Handler)
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return p, err
}

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens:
//
//	atlasgate_policy [<name>] {
//	    rule <name> {
//	        allow | deny
//	        users <user...>
//	        subjects <subject...>
//	        groups <group...>
//	        scopes <scope...>
//	        claim <claim> <value...>
//	        label <key>=<value>...
//	        authenticator <name...>
//	        methods <method...>
//	        read_only
//	        product jira|confluence|bitbucket...
//	        host <host...>
//	        paths <pattern...>
//	        source <cidr...>
//	        time <days> [<HH:MM>-<HH:MM>] [<time zone>]
//	        credential <name>
//	        credential_from_header <header> <name...>
//	        rate <requests>/<period> [burst <n>]
//	    }
//	    identity_rate <requests>/<period> [burst <n>]
//	    credential_rate <name> <requests>/<period> [burst <n>]
//	    trusted_proxies <cidr...>
//	    upstream_hold_back <max duration>|off
//	}
//
// List options may repeat; their values add up.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		h.Name = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "rule":
			r, err := parseRule(d)
			if err != nil {
				return err
			}
			h.Rules = append(h.Rules, r)
		case "identity_rate":
			r, err := parseRate(d, d.RemainingArgs())
			if err != nil {
				return err
			}
			h.IdentityRate = &r
		case "credential_rate":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.ArgErr()
			}
			r, err := parseRate(d, args[1:])
			if err != nil {
				return err
			}
			if h.CredentialRates == nil {
				h.CredentialRates = map[string]Rate{}
			}
			h.CredentialRates[args[0]] = r
		case "trusted_proxies":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.TrustedProxies = append(h.TrustedProxies, args...)
		case "upstream_hold_back":
			if !d.NextArg() {
				return d.ArgErr()
			}
			var dur caddy.Duration
			if d.Val() != "off" {
				v, err := caddy.ParseDuration(d.Val())
				if err != nil {
					return d.Errf("upstream_hold_back %q: %v", d.Val(), err)
				}
				dur = caddy.Duration(v)
			}
			h.UpstreamHoldBack = &dur
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("atlasgate_policy: unrecognized option %q", d.Val())
		}
	}
	return nil
}

var clockRange = regexp.MustCompile(`^(\d\d:\d\d)-(\d\d:\d\d)$`)

func parseRule(d *caddyfile.Dispenser) (Rule, error) {
	var r Rule
	if !d.NextArg() {
		return r, d.Err("rule: a name is required")
	}
	r.Name = d.Val()
	if d.NextArg() {
		return r, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		args := d.RemainingArgs()
		need := func(n int) error {
			if len(args) < n {
				return d.Errf("rule %s: %s: missing arguments", r.Name, opt)
			}
			return nil
		}
		switch opt {
		case "allow", "deny":
			if len(args) > 0 {
				return r, d.ArgErr()
			}
			if r.Action != "" {
				return r, d.Errf("rule %s: allow or deny, once", r.Name)
			}
			r.Action = opt
		case "read_only":
			if len(args) > 0 {
				return r, d.ArgErr()
			}
			r.ReadOnly = true
		case "users", "subjects", "groups", "scopes", "authenticator", "methods", "product", "host", "paths", "source":
			if err := need(1); err != nil {
				return r, err
			}
			dst := map[string]*[]string{"users": &r.Users, "subjects": &r.Subjects, "groups": &r.Groups,
				"scopes": &r.Scopes, "authenticator": &r.Authenticators, "methods": &r.Methods,
				"product": &r.Products, "host": &r.Hosts, "paths": &r.Paths, "source": &r.Sources}[opt]
			*dst = append(*dst, args...)
		case "claim":
			if err := need(2); err != nil {
				return r, err
			}
			if r.Claims == nil {
				r.Claims = map[string][]string{}
			}
			r.Claims[args[0]] = append(r.Claims[args[0]], args[1:]...)
		case "label":
			if err := need(1); err != nil {
				return r, err
			}
			if r.Labels == nil {
				r.Labels = map[string][]string{}
			}
			for _, a := range args {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return r, d.Errf("rule %s: label %q: use <key>=<value>", r.Name, a)
				}
				r.Labels[k] = append(r.Labels[k], v)
			}
		case "time":
			if err := need(1); err != nil {
				return r, err
			}
			tw := TimeWindow{Days: args[0]}
			rest := args[1:]
			if len(rest) > 0 {
				if m := clockRange.FindStringSubmatch(rest[0]); m != nil {
					tw.Start, tw.End = m[1], m[2]
					rest = rest[1:]
				}
			}
			if len(rest) > 1 {
				return r, d.ArgErr()
			}
			if len(rest) == 1 {
				tw.TimeZone = rest[0]
			}
			r.Times = append(r.Times, tw)
		case "credential":
			if len(args) != 1 {
				return r, d.ArgErr()
			}
			r.Credential = args[0]
		case "credential_from_header":
			if err := need(2); err != nil {
				return r, err
			}
			r.CredentialHeader = args[0]
			r.CredentialChoices = append(r.CredentialChoices, args[1:]...)
		case "rate":
			rt, err := parseRate(d, args)
			if err != nil {
				return r, err
			}
			r.Rate = &rt
		default:
			return r, d.Errf("rule %s: unrecognized option %q", r.Name, opt)
		}
	}
	return r, nil
}

// parseRate reads `<requests>/<period> [burst <n>]`.
func parseRate(d *caddyfile.Dispenser, args []string) (Rate, error) {
	if len(args) != 1 && len(args) != 3 {
		return Rate{}, d.ArgErr()
	}
	r, err := ParseRate(args[0])
	if err != nil {
		return r, d.Err(err.Error())
	}
	if len(args) == 3 {
		n, err := strconv.Atoi(args[2])
		if args[1] != "burst" || err != nil || n < 1 {
			return r, d.Errf("rate: expected `burst <n>`, got %q %q", args[1], args[2])
		}
		r.Burst = n
	}
	return r, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)

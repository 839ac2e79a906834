// Package cfparse holds the small Caddyfile argument helpers that the
// atlasgate modules share.
package cfparse

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// One reads exactly one argument of the current option into dst.
func One(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// TokenHeader reads `<name> [<scheme>]`, the header an authenticator takes
// the caller's token from.
func TokenHeader(d *caddyfile.Dispenser, name, scheme *string) error {
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return d.ArgErr()
	}
	*name = args[0]
	if len(args) == 2 {
		*scheme = args[1]
	}
	return nil
}

// More appends the option's arguments, at least one, to dst.
func More(d *caddyfile.Dispenser, dst *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*dst = append(*dst, args...)
	return nil
}

// Duration reads one duration argument (Caddy's units, including d for days);
// negative durations are refused.
func Duration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	return duration(d, dst, false)
}

// PositiveDuration is Duration that also refuses zero.
func PositiveDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	return duration(d, dst, true)
}

func duration(d *caddyfile.Dispenser, dst *caddy.Duration, positive bool) error {
	option := d.Val()
	var s string
	if err := One(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: invalid duration %q: %v", option, s, err)
	}
	if dur < 0 || positive && dur == 0 {
		return d.Errf("%s: invalid duration %q: must be positive", option, s)
	}
	*dst = caddy.Duration(dur)
	return nil
}

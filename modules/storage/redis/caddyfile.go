package redisstorage

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/atlasgate/atlasgate/modules/internal/cfparse"
)

// UnmarshalCaddyfile sets up the storage from the global `storage` option:
//
//	storage redis [<address>...] {
//	    addresses       <host:port>...
//	    master_name     <name>
//	    cluster
//	    db              <number>
//	    username        {env.REDIS_USER}
//	    password        {env.REDIS_PASSWORD}
//	    tls {
//	        ca_file     <pem file>
//	        server_name <name>
//	    }
//	    key_prefix      <prefix>
//	    timeout         <duration>
//	    lock_lease      <duration>
//	    limits_on_error open|closed
//	}
//
// A bare `tls` turns TLS on with the system roots.
func (s *Storage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "redis"
	s.Addresses = append(s.Addresses, d.RemainingArgs()...)
	for d.NextBlock(0) {
		opt := d.Val()
		var err error
		switch opt {
		case "addresses":
			err = cfparse.More(d, &s.Addresses)
		case "master_name":
			err = cfparse.One(d, &s.MasterName)
		case "cluster":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.Cluster = true
		case "db":
			var v string
			if err = cfparse.One(d, &v); err == nil {
				if s.DB, err = strconv.Atoi(v); err != nil || s.DB < 0 {
					return d.Errf("db: %q is not a database number", v)
				}
			}
		case "username":
			err = cfparse.One(d, &s.Username)
		case "password":
			err = cfparse.One(d, &s.Password)
		case "key_prefix":
			err = cfparse.One(d, &s.KeyPrefix)
		case "timeout":
			err = cfparse.PositiveDuration(d, &s.Timeout)
		case "lock_lease":
			err = cfparse.PositiveDuration(d, &s.LockLease)
		case "limits_on_error":
			err = cfparse.One(d, &s.LimitsOnError)
		case "tls":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.TLS = &TLS{}
			for nest := d.Nesting(); d.NextBlock(nest); {
				switch d.Val() {
				case "ca_file":
					err = cfparse.One(d, &s.TLS.CAFile)
				case "server_name":
					err = cfparse.One(d, &s.TLS.ServerName)
				default:
					return d.Errf("redis storage: tls: unrecognized option %q", d.Val())
				}
				if err != nil {
					return err
				}
			}
		default:
			return d.Errf("redis storage: unrecognized option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Storage)(nil)

// Package redisstorage is `caddy.storage.redis`: Caddy's storage (certmagic's
// Storage and Locker) in Redis, standalone, Sentinel or Cluster, through
// go-redis's universal client. Replicas that share it share TLS certificates,
// OAuth token sets, API keys and console states; it also carries what only a
// shared engine can do well: atomic compare-and-swap, leased and fenced locks,
// rate limits (GCRA in one script) and upstream hold-backs across replicas, and
// revocation messages (pub/sub).
package redisstorage

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

func init() {
	caddy.RegisterModule(Storage{})
}

// Storage is Caddy storage in Redis. Every key lives under KeyPrefix, inside
// one Redis Cluster hash slot (the prefix is the hash tag), so the scripts that
// touch several keys run atomically in Cluster mode too.
type Storage struct {
	// Redis addresses (host:port). One address: a standalone server (or a
	// Cluster entry point with `cluster`); several: Cluster nodes; with
	// `master_name`: Sentinel addresses. Default: 127.0.0.1:6379.
	Addresses []string `json:"addresses,omitempty"`
	// The Sentinel master name; set it to use Sentinel. Default: none.
	MasterName string `json:"master_name,omitempty"`
	// Use Redis Cluster even with a single address (a configuration
	// endpoint). Default: false (Cluster only with several addresses).
	Cluster bool `json:"cluster,omitempty"`
	// The database number (standalone and Sentinel only). Default: 0.
	DB int `json:"db,omitempty"`
	// ACL user name: an {env.*} or {file.*} placeholder. Default: none.
	Username string `json:"username,omitempty"`
	// Password (also used for Sentinel): an {env.*} or {file.*} placeholder;
	// never a literal. Default: none.
	Password string `json:"password,omitempty"`
	// TLS to Redis. Default: plain TCP.
	TLS *TLS `json:"tls,omitempty"`
	// Prefix of every key, so that several gateways can share one Redis; it
	// may not hold `{`, `}` or spaces. Default: `atlasgate`.
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Timeout of one Redis command (dial, read, write). Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Lease of a lock: a holder renews it every third of the lease while it
	// holds the lock; a holder that dies stops renewing, and its lock is free
	// when the lease runs out. Default: 5s; at least 1s.
	LockLease caddy.Duration `json:"lock_lease,omitempty"`
	// What the policy's shared rate limits do while Redis cannot be reached:
	// `open` falls back to each replica's own buckets (the limits still hold,
	// per replica), `closed` refuses rate-limited requests with 503.
	// Default: open.
	LimitsOnError string `json:"limits_on_error,omitempty"`

	prefix string // the hash-tagged key prefix, `{atlasgate}:`
	lease  time.Duration
	shared *shared
	logger *zap.Logger
}

// TLS configures TLS to Redis.
type TLS struct {
	// PEM file of the CA certificates that sign the server's certificate.
	// Default: the system roots.
	CAFile string `json:"ca_file,omitempty"`
	// Server name to verify. Default: the host of the address.
	ServerName string `json:"server_name,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Storage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.storage.redis",
		New: func() caddy.Module { return new(Storage) },
	}
}

const (
	defaultAddress = "127.0.0.1:6379"
	defaultPrefix  = "atlasgate"
	defaultTimeout = 3 * time.Second
	defaultLease   = 5 * time.Second
)

// Provision resolves the secrets and opens (or joins) the shared client.
func (s *Storage) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	opts, key, err := s.options()
	if err != nil {
		return err
	}
	s.prefix = "{" + s.KeyPrefix + "}:"
	s.lease = time.Duration(s.LockLease)
	v, _, err := clients.LoadOrNew(key, func() (caddy.Destructor, error) {
		sh := newShared(redis.NewUniversalClient(opts), s.prefix, s.logger)
		sh.key = key
		return sh, nil
	})
	if err != nil {
		return err
	}
	s.shared = v.(*shared)
	return nil
}

// options checks the config, applies defaults and builds the client options.
// The pool key is a hash of everything that makes a client, secrets included,
// so a changed password opens a new client and no secret sits in the key.
func (s *Storage) options() (*redis.UniversalOptions, string, error) {
	if len(s.Addresses) == 0 {
		s.Addresses = []string{defaultAddress}
	}
	for _, a := range s.Addresses {
		if !strings.Contains(a, ":") || strings.ContainsAny(a, "/ ") {
			return nil, "", fmt.Errorf("addresses: %q is not host:port", a)
		}
	}
	if s.MasterName != "" && s.Cluster {
		return nil, "", fmt.Errorf("master_name and cluster: choose Sentinel or Cluster, not both")
	}
	if s.DB != 0 && (s.Cluster || (s.MasterName == "" && len(s.Addresses) > 1)) {
		return nil, "", fmt.Errorf("db: Redis Cluster has only database 0")
	}
	if s.KeyPrefix == "" {
		s.KeyPrefix = defaultPrefix
	}
	if strings.ContainsAny(s.KeyPrefix, "{} \t\n") {
		return nil, "", fmt.Errorf("key_prefix: %q may not hold braces or spaces", s.KeyPrefix)
	}
	if s.Timeout < 0 || s.LockLease < 0 {
		return nil, "", fmt.Errorf("timeout and lock_lease must be positive")
	}
	if s.Timeout == 0 {
		s.Timeout = caddy.Duration(defaultTimeout)
	}
	if s.LockLease == 0 {
		s.LockLease = caddy.Duration(defaultLease)
	}
	if time.Duration(s.LockLease) < time.Second {
		return nil, "", fmt.Errorf("lock_lease: at least 1s (renewals run every third of it)")
	}
	switch s.LimitsOnError {
	case "":
		s.LimitsOnError = "open"
	case "open", "closed":
	default:
		return nil, "", fmt.Errorf("limits_on_error: %q is neither open nor closed", s.LimitsOnError)
	}
	opts := &redis.UniversalOptions{
		Addrs:           s.Addresses,
		MasterName:      s.MasterName,
		IsClusterMode:   s.Cluster,
		DB:              s.DB,
		DialTimeout:     time.Duration(s.Timeout),
		ReadTimeout:     time.Duration(s.Timeout),
		WriteTimeout:    time.Duration(s.Timeout),
		MaxRetries:      1,
		DisableIdentity: true,
		// Fail fast while Redis is down: callers have their own fallbacks
		// (local limits, cached credentials) and must not queue.
		DialerRetries:      1,
		DialerRetryTimeout: 50 * time.Millisecond,
	}
	var err error
	if s.Username != "" {
		if opts.Username, err = atlasgate.ResolveSecret("username", s.Username); err != nil {
			return nil, "", err
		}
	}
	if s.Password != "" {
		if opts.Password, err = atlasgate.ResolveSecret("password", s.Password); err != nil {
			return nil, "", err
		}
		opts.SentinelPassword = opts.Password
	}
	if s.TLS != nil {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.TLS.ServerName}
		if s.TLS.CAFile != "" {
			pem, err := os.ReadFile(s.TLS.CAFile)
			if err != nil {
				return nil, "", fmt.Errorf("tls ca_file: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, "", fmt.Errorf("tls ca_file %s: no PEM certificate found", s.TLS.CAFile)
			}
			opts.TLSConfig.RootCAs = pool
		}
	}
	fp, _ := json.Marshal([]any{opts.Addrs, opts.MasterName, opts.IsClusterMode, opts.DB, opts.Username,
		opts.Password, s.TLS, s.Timeout, s.KeyPrefix})
	if s.TLS != nil && s.TLS.CAFile != "" {
		pem, _ := os.ReadFile(s.TLS.CAFile)
		fp = append(fp, pem...)
	}
	sum := sha256.Sum256(fp)
	return opts, "redis:" + hex.EncodeToString(sum[:]), nil
}

// CertMagicStorage returns the storage itself: it is the certmagic.Storage,
// so the optional interfaces (compare-and-swap, shared limits) are visible to
// modules through ctx.Storage().
func (s *Storage) CertMagicStorage() (certmagic.Storage, error) { return s, nil }

// Cleanup releases this config's use of the shared client; the last user
// closes it.
func (s *Storage) Cleanup() error {
	if s.shared == nil {
		return nil
	}
	_, err := clients.Delete(s.shared.key)
	return err
}

// String names the storage in Caddy's logs, without secrets.
func (s *Storage) String() string {
	return fmt.Sprintf("redis %s prefix %s", strings.Join(s.Addresses, ","), s.KeyPrefix)
}

// Interface guards
var (
	_ caddy.Provisioner      = (*Storage)(nil)
	_ caddy.CleanerUpper     = (*Storage)(nil)
	_ caddy.StorageConverter = (*Storage)(nil)
	_ certmagic.Storage      = (*Storage)(nil)
	_ certmagic.TryLocker    = (*Storage)(nil)
)

// Package preflight holds the checks `make run` and `make demo` make before
// they start the gateway, for the mistakes Caddy itself reports badly: a
// listen address another process already holds (Caddy listens with
// SO_REUSEPORT, so a second gateway would start silently and share the
// traffic), an {env.*} variable left unset, and a password where basic_auth
// wants a hash.
package preflight

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/crypto/bcrypt"
)

// FreeAddrs fails, naming the first address, when something already listens
// on one of addrs (host:port; an empty host means every interface). A plain
// listen without SO_REUSEPORT conflicts with any listener on the port, Caddy's
// included. Ports the caller may not bind (below 1024 without privileges) are
// left for Caddy to report.
func FreeAddrs(addrs ...string) error {
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err == nil {
			ln.Close()
			continue
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%s is already in use: another gateway (make run, make demo) or another program listens there; stop it first", a)
		}
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EADDRNOTAVAIL) {
			continue
		}
		return fmt.Errorf("checking %s: %v", a, err)
	}
	return nil
}

var envPlaceholder = regexp.MustCompile(`\{env\.([^{}]+)\}`)

// Config checks an adapted Caddy JSON config: every {env.*} variable it names
// must be set and not empty, and every basic_auth password taken from a
// variable must be a bcrypt hash. It also returns the config's listen
// addresses (the HTTP servers' and the admin API's) for FreeAddrs.
func Config(adapted []byte) (listen []string, err error) {
	var cfg struct {
		Admin struct {
			Listen string `json:"listen"`
		} `json:"admin"`
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		return nil, fmt.Errorf("reading the adapted config: %v", err)
	}
	var unset []string
	seen := map[string]bool{}
	for _, m := range envPlaceholder.FindAllSubmatch(adapted, -1) {
		name := string(m[1])
		if seen[name] {
			continue
		}
		seen[name] = true
		if strings.TrimSpace(os.Getenv(name)) == "" {
			unset = append(unset, name)
		}
	}
	if len(unset) > 0 {
		sort.Strings(unset)
		if len(unset) == 1 {
			return nil, fmt.Errorf("environment variable %s is not set (the config reads {env.%[1]s}; see the Caddyfile's header)", unset[0])
		}
		return nil, fmt.Errorf("environment variables %s are not set (the config reads them as {env.*}; see the Caddyfile's header)", strings.Join(unset, ", "))
	}
	var doc any
	_ = json.Unmarshal(adapted, &doc)
	if err := checkBasicAuth(doc); err != nil {
		return nil, err
	}
	for _, s := range cfg.Apps.HTTP.Servers {
		for _, l := range s.Listen {
			listen = append(listen, strings.TrimPrefix(l, "tcp/"))
		}
	}
	admin := cfg.Admin.Listen
	if admin == "" {
		admin = os.Getenv("CADDY_ADMIN")
	}
	if admin == "" {
		admin = "localhost:2019"
	}
	if !strings.HasPrefix(admin, "unix/") {
		listen = append(listen, strings.TrimPrefix(admin, "tcp/"))
	}
	return listen, nil
}

// checkBasicAuth walks the config for http_basic accounts whose password is an
// {env.*} placeholder and checks that the variable holds a bcrypt hash, since
// Caddy reports a plain password as a base64 error.
func checkBasicAuth(v any) error {
	switch v := v.(type) {
	case map[string]any:
		if basic, ok := v["http_basic"].(map[string]any); ok {
			accounts, _ := basic["accounts"].([]any)
			for _, a := range accounts {
				acct, _ := a.(map[string]any)
				pw, _ := acct["password"].(string)
				m := envPlaceholder.FindStringSubmatch(pw)
				if m == nil || m[0] != pw {
					continue
				}
				if _, err := bcrypt.Cost([]byte(os.Getenv(m[1]))); err != nil {
					return fmt.Errorf("environment variable %s is not a bcrypt hash (a plain password?): set it to the output of `bin/caddy hash-password`, which asks for the password", m[1])
				}
			}
		}
		for _, x := range v {
			if err := checkBasicAuth(x); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range v {
			if err := checkBasicAuth(x); err != nil {
				return err
			}
		}
	}
	return nil
}

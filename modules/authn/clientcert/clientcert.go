// Package clientcert implements the `client_cert` authenticator: callers
// authenticate with a TLS client certificate that Caddy verified (the
// `client_auth` of the site's `tls` block), identified by their SPIFFE ID, DNS
// name or common name.
package clientcert

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/atlasgate/atlasgate/modules/authn"
)

func init() {
	caddy.RegisterModule(ClientCert{})
}

// Identity sources.
const (
	FromSPIFFE = "spiffe"
	FromDNS    = "dns"
	FromCN     = "cn"
)

// notAccepted is all a client learns about a refused certificate.
const notAccepted = "client certificate not accepted"

// ClientCert authenticates requests by the TLS client certificate that Caddy
// verified. It does no certificate verification of its own: configure
// `client_auth` with `mode require_and_verify` (or `verify_if_given`) and a
// trust pool in the site's `tls` block. A connection without a verified chain
// carries no credential of this kind, so the next authenticator is tried.
//
// The identity: kind `client_cert`, user = subject = the certificate's SPIFFE
// ID, DNS name or common name, issuer = the issuer's DN, labels with the
// subject's fields, and the certificate's expiry.
type ClientCert struct {
	// Identity is where the user name comes from: `spiffe` (the URI SAN with
	// scheme spiffe), `dns` (the first DNS SAN) or `cn` (the subject common
	// name). Default: the SPIFFE ID if the certificate has one, else the
	// first DNS name, else the common name. With trust_domain set, the
	// default is `spiffe`.
	Identity string `json:"identity,omitempty"`

	// TrustDomain is the SPIFFE trust domain the SPIFFE ID must belong to,
	// e.g. `example.org` accepts `spiffe://example.org/...` only. Default:
	// any trust domain that the trust pool vouches for.
	TrustDomain string `json:"trust_domain,omitempty"`

	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (ClientCert) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "atlasgate.authn.client_cert",
		New: func() caddy.Module { return new(ClientCert) },
	}
}

// Provision applies the defaults.
func (c *ClientCert) Provision(ctx caddy.Context) error {
	c.logger = ctx.Logger()
	c.applyDefaults()
	return nil
}

func (c *ClientCert) applyDefaults() {
	c.TrustDomain = strings.ToLower(strings.TrimSpace(c.TrustDomain))
	if c.TrustDomain != "" && c.Identity == "" {
		c.Identity = FromSPIFFE
	}
}

// Validate checks the configuration.
func (c *ClientCert) Validate() error {
	switch c.Identity {
	case "", FromSPIFFE, FromDNS, FromCN:
	default:
		return fmt.Errorf("identity %q: use spiffe, dns or cn", c.Identity)
	}
	if c.TrustDomain != "" {
		if c.Identity != FromSPIFFE {
			return fmt.Errorf("trust_domain applies to SPIFFE IDs only: use identity spiffe")
		}
		if strings.ContainsAny(c.TrustDomain, ":/") {
			return fmt.Errorf("trust_domain %q: give the trust domain name (example.org), not a URI", c.TrustDomain)
		}
	}
	return nil
}

// Authenticate implements authn.Authenticator.
func (c *ClientCert) Authenticate(r *http.Request) (*authn.Identity, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, authn.ErrNoCredential
	}
	leaf := r.TLS.VerifiedChains[0][0]
	name, spiffeID, err := c.name(leaf)
	if err != nil {
		if ce := c.logger.Check(zapcore.DebugLevel, "client certificate rejected"); ce != nil {
			ce.Write(zap.String("subject", leaf.Subject.String()), zap.String("serial", leaf.SerialNumber.Text(16)), zap.Error(err))
		}
		return nil, authn.Invalid(notAccepted, err)
	}
	if !now().Before(leaf.NotAfter) {
		// Caddy verified the chain at handshake time; a long-lived
		// connection can outlast the certificate.
		return nil, authn.Invalid(notAccepted, errors.New("certificate expired"))
	}
	return identity(leaf, name, spiffeID), nil
}

// now is the gateway's one clock (internal/clock); tests move it with
// clock.Set.
func now() time.Time { return gclock.Now() }

// name picks the identity of leaf according to the configuration.
func (c *ClientCert) name(leaf *x509.Certificate) (name, spiffeID string, err error) {
	spiffeID, serr := spiffeIDOf(leaf)
	switch c.Identity {
	case FromSPIFFE:
		if serr != nil {
			return "", "", serr
		}
		if spiffeID == "" {
			return "", "", errors.New("certificate has no SPIFFE ID")
		}
	case FromDNS:
		if len(leaf.DNSNames) == 0 {
			return "", "", errors.New("certificate has no DNS name")
		}
		return leaf.DNSNames[0], spiffeID, nil
	case FromCN:
		if leaf.Subject.CommonName == "" {
			return "", "", errors.New("certificate has no common name")
		}
		return leaf.Subject.CommonName, spiffeID, nil
	default:
		if serr != nil {
			return "", "", serr
		}
		switch {
		case spiffeID != "":
		case len(leaf.DNSNames) > 0:
			return leaf.DNSNames[0], "", nil
		case leaf.Subject.CommonName != "":
			return leaf.Subject.CommonName, "", nil
		default:
			return "", "", errors.New("certificate has no SPIFFE ID, DNS name or common name")
		}
	}
	if c.TrustDomain != "" {
		u, _ := url.Parse(spiffeID)
		if u.Host != c.TrustDomain {
			return "", "", fmt.Errorf("SPIFFE ID %s is not in trust domain %s", spiffeID, c.TrustDomain)
		}
	}
	return spiffeID, spiffeID, nil
}

// spiffeIDOf returns the SPIFFE ID of cert ("" if none). A SPIFFE SVID has
// exactly one URI SAN; a certificate with a malformed or more than one SPIFFE
// ID is refused rather than guessed at.
func spiffeIDOf(cert *x509.Certificate) (string, error) {
	var id string
	for _, u := range cert.URIs {
		if !strings.EqualFold(u.Scheme, "spiffe") {
			continue
		}
		if id != "" {
			return "", errors.New("certificate has more than one SPIFFE ID")
		}
		if u.Host == "" || u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" ||
			u.Opaque != "" || u.Host != strings.ToLower(u.Host) || strings.ToLower(u.Scheme) != u.Scheme {
			return "", fmt.Errorf("malformed SPIFFE ID %q", u.String())
		}
		id = u.String()
	}
	return id, nil
}

func identity(leaf *x509.Certificate, name, spiffeID string) *authn.Identity {
	fp := sha256.Sum256(leaf.Raw)
	labels := map[string]string{
		"serial":      leaf.SerialNumber.Text(16),
		"subject":     leaf.Subject.String(),
		"subject_cn":  leaf.Subject.CommonName,
		"issuer":      leaf.Issuer.String(),
		"issuer_cn":   leaf.Issuer.CommonName,
		"spiffe_id":   spiffeID,
		"subject_o":   strings.Join(leaf.Subject.Organization, ","),
		"subject_ou":  strings.Join(leaf.Subject.OrganizationalUnit, ","),
		"subject_c":   strings.Join(leaf.Subject.Country, ","),
		"subject_l":   strings.Join(leaf.Subject.Locality, ","),
		"subject_st":  strings.Join(leaf.Subject.Province, ","),
		"dns_names":   strings.Join(leaf.DNSNames, ","),
		"emails":      strings.Join(leaf.EmailAddresses, ","),
		"not_before":  leaf.NotBefore.UTC().Format(time.RFC3339),
		"not_after":   leaf.NotAfter.UTC().Format(time.RFC3339),
		"fingerprint": "sha256:" + hex.EncodeToString(fp[:]),
	}
	claims := make(map[string]any, len(labels)+1)
	for k, v := range labels {
		if v == "" {
			delete(labels, k)
			continue
		}
		claims[k] = v
	}
	uris := make([]any, 0, len(leaf.URIs))
	for _, u := range leaf.URIs {
		uris = append(uris, u.String())
	}
	if len(uris) > 0 {
		claims["uris"] = uris
	}
	return &authn.Identity{
		Kind:      "client_cert",
		User:      name,
		Subject:   name,
		Issuer:    leaf.Issuer.String(),
		Labels:    labels,
		Claims:    claims,
		ExpiresAt: leaf.NotAfter,
	}
}

// Interface guards
var (
	_ caddy.Provisioner   = (*ClientCert)(nil)
	_ caddy.Validator     = (*ClientCert)(nil)
	_ authn.Authenticator = (*ClientCert)(nil)
)

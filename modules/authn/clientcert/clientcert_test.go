package clientcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	gclock "github.com/atlasgate/atlasgate/internal/clock"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/atlasgate/atlasgate/modules/authn"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// issue makes a certificate signed by a throwaway CA, as Caddy would present
// it in VerifiedChains.
func issue(t *testing.T, tmpl x509.Certificate) []*x509.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl.SerialNumber = big.NewInt(0xbeef)
	tmpl.NotBefore, tmpl.NotAfter = t0.Add(-time.Hour), t0.Add(time.Hour)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return []*x509.Certificate{leaf, caCert}
}

func uris(t *testing.T, raw ...string) []*url.URL {
	var out []*url.URL
	for _, r := range raw {
		u, err := url.Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func request(chain []*x509.Certificate) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: chain, VerifiedChains: [][]*x509.Certificate{chain}}
	return r
}

func TestIdentity(t *testing.T) {
	t.Cleanup(gclock.Set(func() time.Time { return t0 }))

	full := x509.Certificate{
		Subject:  pkix.Name{CommonName: "billing", Organization: []string{"Acme"}, OrganizationalUnit: []string{"Payments"}},
		DNSNames: []string{"billing.internal", "billing2.internal"},
		URIs:     uris(t, "https://example.com/x", "spiffe://example.org/ns/prod/sa/billing"),
	}
	dnsOnly := x509.Certificate{Subject: pkix.Name{CommonName: "cn-only"}, DNSNames: []string{"svc.internal"}}
	cnOnly := x509.Certificate{Subject: pkix.Name{CommonName: "cn-only"}}
	nothing := x509.Certificate{Subject: pkix.Name{Organization: []string{"Acme"}}}
	twoSpiffe := x509.Certificate{URIs: uris(t, "spiffe://example.org/a", "spiffe://example.org/b")}
	badSpiffe := x509.Certificate{URIs: uris(t, "spiffe://Example.org:8443/a")}
	otherDomain := x509.Certificate{URIs: uris(t, "spiffe://evil.org/ns/prod/sa/billing")}

	for _, tc := range []struct {
		name string
		cfg  ClientCert
		cert x509.Certificate
		want string // "" → 401
	}{
		{"default prefers SPIFFE", ClientCert{}, full, "spiffe://example.org/ns/prod/sa/billing"},
		{"default falls back to DNS", ClientCert{}, dnsOnly, "svc.internal"},
		{"default falls back to CN", ClientCert{}, cnOnly, "cn-only"},
		{"default with nothing", ClientCert{}, nothing, ""},
		{"dns", ClientCert{Identity: "dns"}, full, "billing.internal"},
		{"cn", ClientCert{Identity: "cn"}, full, "billing"},
		{"spiffe required", ClientCert{Identity: "spiffe"}, dnsOnly, ""},
		{"dns required", ClientCert{Identity: "dns"}, cnOnly, ""},
		{"cn required", ClientCert{Identity: "cn"}, nothing, ""},
		{"trust domain matches", ClientCert{TrustDomain: "Example.org"}, full, "spiffe://example.org/ns/prod/sa/billing"},
		{"trust domain differs", ClientCert{TrustDomain: "example.org"}, otherDomain, ""},
		{"trust domain without SPIFFE ID", ClientCert{TrustDomain: "example.org"}, dnsOnly, ""},
		{"two SPIFFE IDs", ClientCert{}, twoSpiffe, ""},
		{"malformed SPIFFE ID", ClientCert{}, badSpiffe, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			c.logger = zap.NewNop()
			c.applyDefaults()
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			chain := issue(t, tc.cert)
			id, err := c.Authenticate(request(chain))
			if tc.want == "" {
				var ae *authn.Error
				if !errors.As(err, &ae) || ae.Status != 401 || ae.Description != notAccepted {
					t.Fatalf("got %v, %v; want 401 %q", id, err, notAccepted)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Kind != "client_cert" || id.User != tc.want || id.Subject != tc.want ||
				!id.ExpiresAt.Equal(chain[0].NotAfter) || id.Issuer != "CN=Test CA" {
				t.Errorf("identity %+v", id)
			}
			if id.Labels["serial"] != "beef" || !strings.HasPrefix(id.Labels["fingerprint"], "sha256:") ||
				id.Claims["issuer_cn"] != "Test CA" {
				t.Errorf("labels %v claims %v", id.Labels, id.Claims)
			}
		})
	}

	// Subject fields become labels.
	c := ClientCert{logger: zap.NewNop()}
	id, err := c.Authenticate(request(issue(t, full)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"subject_cn": "billing", "subject_o": "Acme", "subject_ou": "Payments",
		"dns_names": "billing.internal,billing2.internal", "spiffe_id": "spiffe://example.org/ns/prod/sa/billing",
	} {
		if id.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, id.Labels[k], v)
		}
	}
	if _, ok := id.Labels["emails"]; ok {
		t.Error("empty labels are kept")
	}

	// A connection that outlives the certificate.
	gclock.Set(func() time.Time { return t0.Add(2 * time.Hour) })
	if _, err := c.Authenticate(request(issue(t, full))); err == nil {
		t.Error("expired certificate accepted")
	}
}

func TestNoVerifiedChain(t *testing.T) {
	c := ClientCert{logger: zap.NewNop()}
	plain := httptest.NewRequest(http.MethodGet, "/", nil)
	unverified := httptest.NewRequest(http.MethodGet, "/", nil)
	unverified.TLS = &tls.ConnectionState{PeerCertificates: issue(t, x509.Certificate{Subject: pkix.Name{CommonName: "x"}})}
	for name, r := range map[string]*http.Request{"plain http": plain, "unverified cert": unverified} {
		if _, err := c.Authenticate(r); !errors.Is(err, authn.ErrNoCredential) {
			t.Errorf("%s: %v, want ErrNoCredential", name, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []ClientCert{
		{Identity: "email"},
		{Identity: "dns", TrustDomain: "example.org"},
		{TrustDomain: "spiffe://example.org"},
	} {
		c.applyDefaults()
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	var c ClientCert
	err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser("client_cert {\nidentity spiffe\ntrust_domain example.org\n}"))
	if err != nil || c.Identity != "spiffe" || c.TrustDomain != "example.org" {
		t.Errorf("%+v %v", c, err)
	}
	for _, in := range []string{"client_cert x", "client_cert {\nidentity\n}", "client_cert {\nsubject cn\n}"} {
		if err := new(ClientCert).UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

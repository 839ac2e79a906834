package apikeys

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
)

// caddyRoots trusts the local CA that `tls internal` created in storage.
func caddyRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(gw.storage, "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		blk, _ := pem.Decode(b)
		t.Fatalf("no certificate in Caddy's root.crt: %v", blk)
	}
	return pool
}

func TestClientCertificateSPIFFE(t *testing.T) {
	roots := caddyRoots(t)
	url := fmt.Sprintf("https://127.0.0.1:%d/rest/api/3/myself", gw.tlsPort)
	host := fmt.Sprintf("localhost:%d", gw.tlsPort)
	get := func(c *http.Client) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}

	cert, err := pki.client("spiffe://example.org/ns/ci/sa/deployer")
	if err != nil {
		t.Fatal(err)
	}
	client := tlsClient(cert, roots)
	// Caddy obtains the site certificate from its internal CA in the
	// background; the first handshakes may find none yet.
	var resp *http.Response
	var body []byte
	itest.Eventually(10*time.Second, func() bool {
		resp, body, err = get(client)
		return err == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, resp, body, http.StatusOK)
	if got := resp.Header.Get("X-Atlasgate-User"); got != "spiffe://example.org/ns/ci/sa/deployer" {
		t.Errorf("{http.auth.user.id} = %q", got)
	}
	if rec := lastAtSim(t); rec.Principal != atlassim.DemoAccountID {
		t.Errorf("Atlassian saw principal %q", rec.Principal)
	}

	// Same CA, another trust domain: Caddy verifies the chain, the
	// authenticator refuses the identity.
	evil, err := pki.client("spiffe://evil.org/ns/ci/sa/deployer")
	if err != nil {
		t.Fatal(err)
	}
	resp, body, err = get(tlsClient(evil, roots))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, resp, body, http.StatusUnauthorized)

	// Without a client certificate the handshake itself fails.
	if _, _, err := get(tlsClient(nil, roots)); err == nil {
		t.Error("request without a client certificate succeeded")
	}
}

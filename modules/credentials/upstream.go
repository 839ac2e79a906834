// Package credentials holds the credential modules of the
// `atlasgate.credentials` namespace: where a credential's requests go and how
// they are authenticated.
package credentials

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// parseBase parses and checks an https base URL such as an Atlassian site or a
// Data Center base URL (which may carry a context path, e.g. /jira). Credentials
// are only ever sent over TLS, so http:// is refused.
func parseBase(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid URL: %v", field, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("%s: %q must be an https:// URL: credentials are never sent in clear text", field, raw)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s: %q must be a base URL like https://example.atlassian.net, without user info, query or fragment", field, raw)
	}
	if _, port, err := net.SplitHostPort(u.Host); err == nil && port == "" {
		return nil, fmt.Errorf("%s: %q has an empty port", field, raw)
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	// A Cloud site has no context path: Confluence lives under /wiki on the
	// same host, and clients send /wiki/… themselves. A copied Confluence URL
	// (https://acme.atlassian.net/wiki) would otherwise make every request a
	// 404 for /wiki/wiki/….
	if u.Path != "" && isCloudHost(u.Hostname()) {
		return nil, fmt.Errorf("%s: %q has a path, but an Atlassian Cloud site has none: write %s://%s (clients send /wiki/… and /rest/… paths themselves)", field, raw, u.Scheme, u.Host)
	}
	return u, nil
}

// isCloudHost reports whether host is an Atlassian Cloud site's host.
func isCloudHost(host string) bool {
	return strings.HasSuffix(host, ".atlassian.net") || strings.HasSuffix(host, ".jira.com")
}

// loadRoots builds a certificate pool from PEM files. With no files it returns
// nil: the system roots apply. With files, only their certificates are trusted,
// which pins a Data Center's internal CA (or the simulator's) for this credential.
func loadRoots(field string, files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", field, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", field, f)
		}
	}
	return pool, nil
}

// newClient returns the HTTP client a credential uses for its own calls
// (cloudId discovery, later token endpoints). It never follows redirects, so
// nothing it sends can be carried to another host.
func newClient(roots *x509.CertPool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{
		Transport: tr,
		Timeout:   15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

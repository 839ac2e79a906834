package console

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
)

// simClient talks to the simulator's hosts, trusting its CA, and shows
// redirects instead of following them.
func simClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(sim.CACertPEM())
	return &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: noRedirects.CheckRedirect,
	}
}

package oauth

import (
	"crypto/tls"
	"crypto/x509"
)

func tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(sim.CACertPEM())
	return &tls.Config{RootCAs: pool}
}

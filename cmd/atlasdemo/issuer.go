package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The demo's JWT issuer: an OpenID discovery document and a JWKS on
// http://127.0.0.1:9449 (the jwt authenticator accepts http for loopback
// issuers), and tokens it signs for the demo's users. It stands in for an
// identity provider (Entra ID, Okta, Keycloak…) so that atlasgate_auth and
// the policy have callers to decide about without any account.
const (
	issuerAddr     = "127.0.0.1:9449"
	issuerURL      = "http://" + issuerAddr
	demoAudience   = "atlasgate-demo"
	demoKeyID      = "atlasdemo-1"
	demoTokenValid = 12 * time.Hour
)

type issuer struct {
	key *rsa.PrivateKey
	srv *http.Server
}

// startIssuer listens on issuerAddr with a fresh signing key; tokens of an
// earlier demo are therefore refused.
func startIssuer() (*issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", issuerAddr)
	if err != nil {
		return nil, fmt.Errorf("the demo JWT issuer: %v", err)
	}
	iss := &issuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"issuer": issuerURL, "jwks_uri": issuerURL + "/jwks.json",
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: demoKeyID, Algorithm: "RS256", Use: "sig"}}})
	})
	iss.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go iss.srv.Serve(ln)
	return iss, nil
}

// token signs a JWT for user with groups, valid for demoTokenValid.
func (i *issuer) token(user string, groups ...string) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: i.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", demoKeyID))
	if err != nil {
		return "", err
	}
	now := time.Now()
	extra := map[string]any{"name": user}
	if len(groups) > 0 {
		extra["groups"] = groups
	}
	return jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: issuerURL, Subject: user, Audience: jwt.Audience{demoAudience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(demoTokenValid)),
	}).Claims(extra).Serialize()
}

func (i *issuer) Close() { _ = i.srv.Close() }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

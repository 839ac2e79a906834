package opaqueauth

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// provider is a real OpenID Provider (zitadel's op package with its example
// storage) on 127.0.0.1. It issues opaque access tokens to the client
// credentials clients below and serves token introspection (to the gateway's
// own client, authenticated with client_secret_basic or client_secret_post)
// and userinfo.
type provider struct {
	issuer  string
	addr    string
	srv     *http.Server
	storage *opStorage
	crypto  op.Crypto
}

// The OP's client credentials clients: their secrets and the audience of their
// tokens. The introspection endpoint only reports a token as active to a
// client in its audience.
var opClients = map[string]struct{ secret, audience string }{
	"app":       {"app-secret", gatewayClientID},
	"other-app": {"other-secret", "some-other-api"},
}

// The gateway's client at the OP, for introspection.
const (
	gatewayClientID     = "atlasgate"
	gatewayClientSecret = "gateway-introspection-secret"
)

// users: each client credentials client acts as the user of the same ID, so
// that introspection and userinfo have a profile to report.
var users = opUsers{
	"app":       {ID: "app", Username: "svc-app", FirstName: "Service", LastName: "App", Email: "svc-app@example.com", EmailVerified: true},
	"other-app": {ID: "other-app", Username: "svc-other", FirstName: "Other", LastName: "App", Email: "svc-other@example.com"},
}

var cryptoKey = [32]byte{7, 7, 7}

func startProvider(addr string) (*provider, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &provider{issuer: "http://" + l.Addr().String(), addr: l.Addr().String()}
	p.storage = &opStorage{Storage: storage.NewStorageWithClients(users, map[string]*storage.Client{
		gatewayClientID: storage.WebClient(gatewayClientID, gatewayClientSecret),
	})}
	if err := p.serve(l); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *provider) serve(l net.Listener) error {
	cfg := &op.Config{CryptoKey: cryptoKey, CodeMethodS256: true, AuthMethodPost: true}
	prov, err := op.NewProvider(cfg, p.storage, op.StaticIssuer(p.issuer), op.WithAllowInsecure())
	if err != nil {
		l.Close()
		return err
	}
	p.crypto = prov.Crypto()
	// The server interface (rather than the provider's own router) accepts
	// client_secret_post at the introspection endpoint, too.
	handler := op.RegisterLegacyServer(op.NewLegacyServer(prov, prov.Endpoints()), op.AuthorizeCallbackHandler(prov))
	p.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go p.srv.Serve(l)
	return nil
}

func (p *provider) stop() { _ = p.srv.Close() }

// restart serves again on the same address, with the same tokens.
func (p *provider) restart() error {
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	return p.serve(l)
}

// revoke revokes an access token at the OP.
func (p *provider) revoke(token string) error {
	idSubject, err := p.crypto.Decrypt(token)
	if err != nil {
		return err
	}
	tokenID, subject, _ := strings.Cut(idSubject, ":")
	// Client credentials tokens belong to no application in the example storage.
	if oerr := p.storage.RevokeToken(context.Background(), tokenID, subject, ""); oerr != nil {
		return oerr
	}
	return nil
}

// opStorage is the example storage with our client credentials clients.
type opStorage struct {
	*storage.Storage
}

// ccClient is a client credentials client with opaque access tokens.
type ccClient struct {
	*storage.Client
}

func (ccClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (ccClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials}
}

func (s *opStorage) ClientCredentials(_ context.Context, id, secret string) (op.Client, error) {
	c, ok := opClients[id]
	if !ok || c.secret != secret {
		return nil, errors.New("wrong client or secret")
	}
	return ccClient{storage.WebClient(id, secret)}, nil
}

func (s *opStorage) ClientCredentialsTokenRequest(_ context.Context, id string, scopes []string) (op.TokenRequest, error) {
	c, ok := opClients[id]
	if !ok {
		return nil, errors.New("unknown client")
	}
	return &oidc.JWTTokenRequest{Subject: id, Audience: []string{c.audience}, Scopes: scopes}, nil
}

// opUsers is a storage.UserStore.
type opUsers map[string]*storage.User

func (u opUsers) GetUserByID(id string) *storage.User { return u[id] }

func (u opUsers) GetUserByUsername(name string) *storage.User {
	for _, user := range u {
		if user.Username == name {
			return user
		}
	}
	return nil
}

func (u opUsers) ExampleClientID() string { return storage.ServiceUserID }

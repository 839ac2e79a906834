package jwtauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// provider is a real OpenID Provider (zitadel's op package with its example
// storage) on 127.0.0.1, issuing JWT access tokens to the clients below with
// the client credentials grant, with signing keys the test can rotate.
type provider struct {
	issuer   string
	srv      *http.Server
	storage  *opStorage
	jwksHits atomic.Int64
	// jwksCacheControl, when set, is the Cache-Control of the JWKS answers,
	// as many IdPs send it (zitadel's op sends none).
	jwksCacheControl atomic.Value
}

// The OP's clients: their secrets, and the audience of their tokens.
var opClients = map[string]struct{ secret, audience string }{
	"app":       {"app-secret", "atlasgate"},
	"other-app": {"other-secret", "some-other-api"},
}

func startProvider() (*provider, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &provider{issuer: "http://" + l.Addr().String()}
	p.storage = &opStorage{Storage: storage.NewStorage(storage.NewUserStore(p.issuer))}
	p.storage.rotate()
	cfg := &op.Config{CryptoKey: [32]byte{1, 2, 3}, CodeMethodS256: true, AuthMethodPost: true}
	handler, err := op.NewProvider(cfg, p.storage, op.StaticIssuer(p.issuer), op.WithAllowInsecure())
	if err != nil {
		l.Close()
		return nil, err
	}
	keysPath := handler.KeysEndpoint().Relative()
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == keysPath {
			p.jwksHits.Add(1)
			if cc, _ := p.jwksCacheControl.Load().(string); cc != "" {
				w.Header().Set("Cache-Control", cc)
			}
		}
		handler.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go p.srv.Serve(l)
	return p, nil
}

func (p *provider) stop() { _ = p.srv.Close() }

// opStorage is the example storage with JWT access tokens for our clients
// (the example keeps a client's access-token type unexported) and rotatable
// signing keys.
type opStorage struct {
	*storage.Storage

	mu     sync.Mutex
	active *opKey
	keys   []*opKey // published in the JWKS, the active one first
}

type opKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *opKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *opKey) Key() any                                    { return k.key }
func (k *opKey) ID() string                                  { return k.id }

type opPublicKey struct{ k *opKey }

func (p opPublicKey) ID() string                         { return p.k.id }
func (p opPublicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p opPublicKey) Use() string                        { return "sig" }
func (p opPublicKey) Key() any                           { return &p.k.key.PublicKey }

var keySerial atomic.Int64

// rotate makes a new key the signing key; the previous one stays published.
func (s *opStorage) rotate() *opKey {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	k := &opKey{id: "op-key-" + string(rune('a'+keySerial.Add(1))), key: key}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active = k
	s.keys = append([]*opKey{k}, s.keys...)
	if len(s.keys) > 2 {
		s.keys = s.keys[:2]
	}
	return k
}

// retire stops publishing every key but the signing key.
func (s *opStorage) retire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = []*opKey{s.active}
}

func (s *opStorage) signingKey() *opKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

func (s *opStorage) SigningKey(context.Context) (op.SigningKey, error) { return s.signingKey(), nil }

func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *opStorage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]op.Key, len(s.keys))
	for i, k := range s.keys {
		out[i] = opPublicKey{k}
	}
	return out, nil
}

// ccClient is a client credentials client whose access tokens are JWTs.
type ccClient struct {
	*storage.Client
}

func (ccClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
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

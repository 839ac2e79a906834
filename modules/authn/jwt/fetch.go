package jwt

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// fetch gets the issuer's current keys: through discovery unless jwks_uri is
// configured, then the JWKS itself.
func (s *keySource) fetch() (*keySet, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.timeout)
	defer cancel()
	uri := s.cfg.jwksURI
	if uri == "" {
		var err error
		if uri, err = s.discover(ctx); err != nil {
			return nil, err
		}
	}
	s.fetches.Add(1)
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	hdr, err := s.getJSON(ctx, uri, &doc)
	if err != nil {
		return nil, err
	}
	set := &keySet{maxAge: maxAge(hdr)}
	skipped := 0
	for _, raw := range doc.Keys {
		if len(set.keys) == maxKeys {
			break
		}
		var k jose.JSONWebKey
		// A key this gateway cannot use (another type, an encryption key)
		// is skipped, not fatal: issuers publish such keys next to theirs.
		if err := k.UnmarshalJSON(raw); err != nil || k.Use == "enc" {
			skipped++
			continue
		}
		k = k.Public()
		if !k.Valid() || !usableKey(k.Key) {
			skipped++
			continue
		}
		set.keys = append(set.keys, k)
	}
	if len(set.keys) == 0 {
		return nil, fmt.Errorf("JWKS %s: no usable signing key (%d skipped)", uri, skipped)
	}
	return set, nil
}

// usableKey accepts the public key types of the supported algorithms, and RSA
// keys of at least 2048 bits.
func usableKey(key any) bool {
	if k, ok := key.(*rsa.PublicKey); ok {
		return k.Size()*8 >= minRSABits
	}
	return keyFits(key, "ES256") || keyFits(key, "ES384") || keyFits(key, "ES512") || keyFits(key, "EdDSA")
}

// discover reads jwks_uri from the issuer's OpenID configuration, which must
// name the same issuer (OpenID Connect Discovery 1.0 §4.3).
func (s *keySource) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(s.cfg.issuer, "/") + "/.well-known/openid-configuration"
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if _, err := s.getJSON(ctx, u, &doc); err != nil {
		return "", err
	}
	if doc.Issuer != s.cfg.issuer {
		return "", fmt.Errorf("discovery %s: names the issuer %q, not %q", u, doc.Issuer, s.cfg.issuer)
	}
	if err := checkURL("jwks_uri", doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery %s: %w", u, err)
	}
	return doc.JWKSURI, nil
}

func (s *keySource) getJSON(ctx context.Context, u string, v any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxDocumentSize {
		return nil, fmt.Errorf("GET %s: response larger than %d bytes", u, maxDocumentSize)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, errors.New("response is not the expected JSON"))
	}
	return resp.Header, nil
}

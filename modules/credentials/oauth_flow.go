package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/atlasgate/atlasgate/internal/clock"
	"github.com/atlasgate/atlasgate/modules/tokenstore"
)

// AuthCodeURL is where the console sends a person to consent, with the given
// single-use state.
func (c *OAuth) AuthCodeURL(state string) string {
	return c.config.AuthCodeURL(state,
		oauth2.SetAuthURLParam("audience", orDefault(c.Audience, "api.atlassian.com")),
		oauth2.SetAuthURLParam("prompt", "consent"))
}

// CompleteAuthorization exchanges an authorization code, picks the configured
// site from the sites the grant covers, and stores the token set.
//
// In per-user mode the grant is stored for the caller identified in ctx (the
// authenticated user of the console's callback request).
func (c *OAuth) CompleteAuthorization(ctx context.Context, code string) error {
	mgr, err := c.manager(ctx)
	if err != nil {
		return fmt.Errorf("a per-user credential is authorized by an authenticated user: %s", noCallerRemedy)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.client)
	tok, err := c.config.Exchange(ctx, code)
	if err != nil {
		return fmt.Errorf("exchanging the authorization code: %w", tokenError(err))
	}
	if tok.RefreshToken == "" {
		return fmt.Errorf("Atlassian issued no refresh token: the grant lacks offline_access; authorize again and accept every scope")
	}
	cloudID, err := c.pickSite(ctx, tok.AccessToken)
	if err != nil {
		return err
	}
	now := clock.Now()
	ts := &tokenstore.TokenSet{
		AccessToken:  tok.AccessToken,
		RefreshToken: tok.RefreshToken,
		TokenType:    tok.TokenType,
		Expiry:       expiry(tok, now),
		Scopes:       scopes(tok, c.Scopes),
		CloudID:      cloudID,
		SiteURL:      c.site.String(),
		GrantedAt:    now,
		RefreshedAt:  now,
	}
	if err := mgr.Authorize(ctx, ts); err != nil {
		return fmt.Errorf("storing the token set: %w", err)
	}
	c.logger.Info("credential authorized", zap.String("credential", c.name), zap.String("cloud_id", cloudID))
	return nil
}

// accessibleResource is one entry of Atlassian's accessible-resources.
type accessibleResource struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	URL    string   `json:"url"`
	Scopes []string `json:"scopes"`
}

// pickSite returns the cloudId of the configured site among the sites the
// token may access (the list comes in no meaningful order).
func (c *OAuth) pickSite(ctx context.Context, accessToken string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.apiBase.String()+"/oauth/token/accessible-resources", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("listing accessible sites: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("listing accessible sites: HTTP %d", resp.StatusCode)
	}
	var sites []accessibleResource
	if err := json.Unmarshal(body, &sites); err != nil {
		return "", fmt.Errorf("listing accessible sites: %v", err)
	}
	var seen []string
	for _, s := range sites {
		if u, err := parseBase("url", s.URL); err == nil && u.String() == c.site.String() {
			return s.ID, nil
		}
		seen = append(seen, s.URL)
	}
	return "", fmt.Errorf("the grant does not cover %s (it covers: %s); authorize again and choose that site", c.site, strings.Join(seen, ", "))
}

// refresh is the tokenstore.RefreshFunc: Atlassian's refresh_token grant,
// client authentication in the body.
func (c *OAuth) refresh(ctx context.Context, ts *tokenstore.TokenSet) (*tokenstore.TokenSet, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.client)
	tok, err := c.config.TokenSource(ctx, &oauth2.Token{RefreshToken: ts.RefreshToken}).Token()
	if err != nil {
		return nil, tokenError(err)
	}
	out := &tokenstore.TokenSet{
		AccessToken: tok.AccessToken,
		TokenType:   tok.TokenType,
		Expiry:      expiry(tok, clock.Now()),
		Scopes:      scopes(tok, nil),
	}
	// x/oauth2 fills in the previous refresh token when the response has
	// none; the Manager keeps it either way.
	if tok.RefreshToken != ts.RefreshToken {
		out.RefreshToken = tok.RefreshToken
	}
	return out, nil
}

// tokenError turns an invalid_grant answer into a *tokenstore.GrantError;
// other errors pass (network, 5xx: retried later).
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
		return &tokenstore.GrantError{Description: orDefault(re.ErrorDescription, "invalid_grant")}
	}
	if errors.As(err, &re) {
		// Never the response body: it could echo a token.
		return fmt.Errorf("token endpoint answered HTTP %d %s", re.Response.StatusCode, re.ErrorCode)
	}
	return err
}

// expiry computes the access token's expiry from expires_in on the
// credential's clock (x/oauth2 uses the wall clock).
func expiry(tok *oauth2.Token, now time.Time) time.Time {
	if tok.ExpiresIn > 0 {
		return now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	if v, ok := tok.Extra("expires_in").(float64); ok && v > 0 {
		return now.Add(time.Duration(v) * time.Second)
	}
	if s, ok := tok.Extra("expires_in").(string); ok {
		if n, err := strconv.Atoi(s); err == nil {
			return now.Add(time.Duration(n) * time.Second)
		}
	}
	return now.Add(time.Hour) // Atlassian's documented lifetime
}

func scopes(tok *oauth2.Token, def []string) []string {
	if s, ok := tok.Extra("scope").(string); ok && s != "" {
		return strings.Fields(s)
	}
	return def
}

// maintain refreshes ahead of expiry and keeps an idle grant alive, so that a
// quiet credential neither expires nor reaches Atlassian's 90-day inactivity
// limit. Every replica runs it; the Manager's lock and re-read make one
// refresh out of many attempts. It stops with the config.
func (c *OAuth) maintain(ctx context.Context) {
	t := time.NewTicker(maintainEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Maintain(ctx)
		}
	}
}

// maintainEvery is how often maintain looks at the token set.
var maintainEvery = time.Minute

// Maintain runs one round of maintenance for the shared grant or every
// stored per-user grant: re-read, recover a refresh another replica left
// unfinished, retry an unsaved set, and keep an idle grant alive.
func (c *OAuth) Maintain(ctx context.Context) {
	if !c.PerUser {
		c.keepAlive(ctx, c.mgr)
		return
	}
	names, err := c.store.List(ctx, c.usersPrefix())
	if err != nil {
		c.logger.Warn("listing per-user grants", zap.String("credential", c.name), zap.Error(err))
		return
	}
	for _, name := range names {
		// Callers not among the recent ones get a short-lived manager: the
		// stored grant is the state, and the cache stays bounded.
		mgr := c.users.peek(name)
		if mgr == nil {
			mgr = c.newManager(name)
		}
		c.keepAlive(ctx, mgr)
	}
}

func (c *OAuth) keepAlive(ctx context.Context, mgr *tokenstore.Manager) {
	// Only a grant idle for keep_alive is refreshed here: a grant in use is
	// refreshed by its engine (in the background, before expiry), and an
	// idle one needs no fresh access token until someone calls.
	keep := time.Duration(c.KeepAlive)
	if keep <= 0 {
		keep = 30 * 24 * time.Hour
	}
	if err := mgr.Engine().Maintain(ctx, keep); err != nil {
		c.logger.Warn("token maintenance failed", zap.String("credential", c.name), zap.Error(err))
	}
}

// OAuthStatus is what the console, the admin API and the CLI show of an OAuth
// credential. It never holds a token.
type OAuthStatus struct {
	Name         string    `json:"name"`
	Type         string    `json:"type"`
	Site         string    `json:"site"`
	State        string    `json:"state"`
	Reason       string    `json:"reason,omitempty"`
	CloudID      string    `json:"cloud_id,omitempty"`
	Scopes       []string  `json:"scopes,omitempty"`
	AccessExpiry time.Time `json:"access_token_expiry,omitzero"`
	// NextRefresh is when the access token is due for refresh
	// (refresh_before ahead of its expiry): the first request from then
	// on refreshes it in the background.
	NextRefresh    time.Time `json:"next_refresh,omitzero"`
	GrantedAt      time.Time `json:"granted_at,omitzero"`
	RefreshedAt    time.Time `json:"refreshed_at,omitzero"`
	AbsoluteExpiry time.Time `json:"absolute_expiry,omitzero"`
	Generation     uint64    `json:"generation,omitempty"`
	Warnings       []string  `json:"warnings,omitempty"`
	// PerUser credentials: the number of callers with a stored grant; the
	// other fields then describe the calling user's own grant, if any.
	PerUser bool `json:"per_user,omitempty"`
	Users   int  `json:"users,omitempty"`
}

// Status reads the stored token set and reports the credential's state.
func (c *OAuth) Status(ctx context.Context) OAuthStatus {
	st := OAuthStatus{Name: c.name, Type: "oauth", Site: c.site.String(), State: tokenstore.StateUnauthorized, PerUser: c.PerUser}
	if c.PerUser {
		names, _ := c.store.List(ctx, c.usersPrefix())
		st.Users = len(names)
	}
	mgr, err := c.manager(ctx)
	if err != nil {
		return st // per-user, no caller: only the count
	}
	ts, err := c.store.Load(ctx, mgr.Name)
	if errors.Is(err, tokenstore.ErrNotFound) {
		return st
	}
	if err != nil {
		st.State, st.Reason = tokenstore.StateUnreadable, err.Error()
		return st
	}
	st.State, st.Reason, st.CloudID, st.Scopes = ts.State, ts.Reason, ts.CloudID, ts.Scopes
	st.AccessExpiry, st.GrantedAt, st.RefreshedAt, st.Generation = ts.Expiry, ts.GrantedAt, ts.RefreshedAt, ts.Generation
	st.AbsoluteExpiry = ts.GrantedAt.Add(365 * 24 * time.Hour)
	now := clock.Now()
	if ts.State == tokenstore.StateReady && !ts.Expiry.IsZero() {
		before := time.Duration(c.RefreshBefore)
		if before <= 0 {
			before = 5 * time.Minute // the token manager's default
		}
		st.NextRefresh = ts.Expiry.Add(-before)
	}
	if ts.State == tokenstore.StateReady {
		if left := st.AbsoluteExpiry.Sub(now); left < 30*24*time.Hour {
			st.Warnings = append(st.Warnings, fmt.Sprintf("the grant reaches Atlassian's 365-day limit in %d days: authorize again before %s", int(left.Hours()/24), st.AbsoluteExpiry.Format("2006-01-02")))
		}
		if now.After(ts.Expiry) && now.Sub(ts.RefreshedAt) > 5*time.Minute {
			st.Warnings = append(st.Warnings, "the access token has expired and has not been refreshed yet")
		}
	}
	return st
}

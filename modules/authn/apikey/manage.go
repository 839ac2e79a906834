package apikey

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// CreateRequest is the body of `POST /atlasgate/api-keys/<authenticator>`.
type CreateRequest struct {
	// Owner is who the key authenticates as. Required.
	Owner string `json:"owner"`
	// Description is free text for people.
	Description string `json:"description,omitempty"`
	// Labels become the identity's labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Groups become the identity's groups.
	Groups []string `json:"groups,omitempty"`
	// ExpiresIn is the key's lifetime as a duration (`720h`, `30d`). Default:
	// the authenticator's default_lifetime; at most its max_lifetime.
	ExpiresIn string `json:"expires_in,omitempty"`
}

// RotateRequest is the body of `POST /atlasgate/api-keys/<authenticator>/<id>/rotate`.
type RotateRequest struct {
	// ExpiresIn is the new key's lifetime, as for CreateRequest.
	ExpiresIn string `json:"expires_in,omitempty"`
	// GracePeriod keeps the old key working this long (never past its own
	// expiry) so that clients can switch over. Default 0: the old key is
	// revoked at once.
	GracePeriod string `json:"grace_period,omitempty"`
}

// KeyInfo is what the management API tells about a key: never the key, never
// its hash.
type KeyInfo struct {
	ID          string            `json:"id"`
	Owner       string            `json:"owner"`
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Groups      []string          `json:"groups,omitempty"`
	Created     time.Time         `json:"created"`
	Expires     time.Time         `json:"expires"`
	LastUsed    time.Time         `json:"last_used,omitzero"`
	Revoked     bool              `json:"revoked,omitempty"`
	RevokedAt   time.Time         `json:"revoked_at,omitzero"`
	RotatedTo   string            `json:"rotated_to,omitempty"`
	RotatedFrom string            `json:"rotated_from,omitempty"`
	// Status is active, revoked or expired.
	Status string `json:"status"`
}

// Issued is a new key with its metadata. The key is shown only this once.
type Issued struct {
	Key string `json:"key"`
	KeyInfo
}

// RequestError is a management request that cannot be carried out as asked
// (400); ErrNotFound and ErrConflict are the other outcomes callers branch on.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

var (
	// ErrNotFound means there is no key with the given id.
	ErrNotFound = errors.New("no API key with this id")
	// ErrConflict means the key is revoked or expired and cannot be rotated.
	ErrConflict = errors.New("API key is revoked or expired")
)

func badRequest(format string, args ...any) error {
	return &RequestError{Msg: fmt.Sprintf(format, args...)}
}

var labelName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)

const (
	maxTextLen = 256
	maxItems   = 64
)

func checkText(field, v string, required bool) error {
	if v == "" {
		if required {
			return badRequest("%s: required", field)
		}
		return nil
	}
	if len(v) > maxTextLen*4 || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return badRequest("%s: at most %d characters, no control characters", field, maxTextLen*4)
	}
	return nil
}

func (req *CreateRequest) check() error {
	req.Owner = strings.TrimSpace(req.Owner)
	if err := checkText("owner", req.Owner, true); err != nil {
		return err
	}
	if len(req.Owner) > maxTextLen {
		return badRequest("owner: at most %d characters", maxTextLen)
	}
	if err := checkText("description", req.Description, false); err != nil {
		return err
	}
	if len(req.Labels) > maxItems || len(req.Groups) > maxItems {
		return badRequest("at most %d labels and %d groups", maxItems, maxItems)
	}
	for k, v := range req.Labels {
		if !labelName.MatchString(k) {
			return badRequest("label %q: names are letters, digits, '.', '_', '/' and '-', at most 63 characters", k)
		}
		if err := checkText("label "+k, v, false); err != nil {
			return err
		}
	}
	for _, g := range req.Groups {
		if err := checkText("groups", g, true); err != nil {
			return err
		}
	}
	return nil
}

// lifetime parses expires_in (default: default_lifetime) and enforces
// max_lifetime: every key expires, and none outlives the maximum.
func (a *APIKey) lifetime(expiresIn string) (time.Duration, error) {
	if strings.TrimSpace(expiresIn) == "" {
		return time.Duration(a.DefaultLifetime), nil
	}
	d, err := caddy.ParseDuration(strings.TrimSpace(expiresIn))
	if err != nil {
		return 0, badRequest("expires_in %q: not a duration (e.g. 720h or 30d)", expiresIn)
	}
	if d <= 0 {
		return 0, badRequest("expires_in must be positive: keys without an expiry are not issued")
	}
	if d > time.Duration(a.MaxLifetime) {
		return 0, badRequest("expires_in %s exceeds max_lifetime %s", d, time.Duration(a.MaxLifetime))
	}
	return d, nil
}

// Create issues a new key.
func (a *APIKey) Create(ctx context.Context, req CreateRequest) (*Issued, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	life, err := a.lifetime(req.ExpiresIn)
	if err != nil {
		return nil, err
	}
	t := now().UTC()
	rec := &Record{
		Owner:       req.Owner,
		Description: req.Description,
		Labels:      req.Labels,
		Groups:      req.Groups,
		Created:     t,
		Expires:     t.Add(life),
	}
	key, err := a.insert(ctx, rec)
	if err != nil {
		return nil, err
	}
	a.logger.Info("API key created", zap.String("realm", a.Realm), zap.String("key_id", rec.ID),
		zap.String("owner", rec.Owner), zap.Time("expires", rec.Expires))
	return &Issued{Key: key, KeyInfo: a.info(rec, time.Time{})}, nil
}

// insert generates a key with an id not yet in storage, fills in rec's id
// and hash and stores it.
func (a *APIKey) insert(ctx context.Context, rec *Record) (string, error) {
	for range 5 {
		key, err := newKey()
		if err != nil {
			return "", fmt.Errorf("generating API key: %w", err)
		}
		id, _ := parseKey(key)
		if id == rec.RotatedFrom {
			continue // its lock is held by Rotate
		}
		h := hashKey(key)
		rec.ID, rec.Hash = id, hex.EncodeToString(h[:])
		taken := false
		err = a.store.withLock(ctx, id, func() error {
			if taken = a.store.exists(ctx, id); taken {
				return nil
			}
			return a.store.save(ctx, rec)
		})
		if err != nil {
			return "", fmt.Errorf("storing API key: %w", err)
		}
		if !taken {
			return key, nil
		}
	}
	return "", fmt.Errorf("storing API key: no free key id after 5 attempts")
}

// List returns the realm's keys, oldest first, without keys or hashes.
func (a *APIKey) List(ctx context.Context) ([]KeyInfo, error) {
	recs, err := a.store.list(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing API keys: %w", err)
	}
	out := make([]KeyInfo, 0, len(recs))
	for _, rec := range recs {
		out = append(out, a.info(rec, a.store.lastUsed(ctx, rec.ID)))
	}
	return out, nil
}

// Get returns one key's metadata.
func (a *APIKey) Get(ctx context.Context, id string) (*KeyInfo, error) {
	rec, err := a.load(ctx, id)
	if err != nil {
		return nil, err
	}
	info := a.info(rec, a.store.lastUsed(ctx, id))
	return &info, nil
}

// Revoke revokes a key. Every replica refuses it within a second. Revoking a
// revoked key changes nothing.
func (a *APIKey) Revoke(ctx context.Context, id string) (*KeyInfo, error) {
	var rec *Record
	err := a.store.withLock(ctx, id, func() error {
		var err error
		if rec, err = a.load(ctx, id); err != nil {
			return err
		}
		if rec.Revoked {
			return nil
		}
		rec.Revoked, rec.RevokedAt = true, now().UTC()
		return a.store.save(ctx, rec)
	})
	if rec != nil {
		a.forget(rec)
	}
	if err != nil {
		return nil, err
	}
	a.logger.Info("API key revoked", zap.String("realm", a.Realm), zap.String("key_id", id), zap.String("owner", rec.Owner))
	info := a.info(rec, a.store.lastUsed(ctx, id))
	return &info, nil
}

// Rotate issues a new key with the metadata of key id and revokes id, at once
// or after req.GracePeriod.
func (a *APIKey) Rotate(ctx context.Context, id string, req RotateRequest) (*Issued, error) {
	life, err := a.lifetime(req.ExpiresIn)
	if err != nil {
		return nil, err
	}
	var grace time.Duration
	if g := strings.TrimSpace(req.GracePeriod); g != "" {
		if grace, err = caddy.ParseDuration(g); err != nil || grace < 0 {
			return nil, badRequest("grace_period %q: not a non-negative duration (e.g. 10m)", req.GracePeriod)
		}
	}
	var issued *Issued
	err = a.store.withLock(ctx, id, func() error {
		old, err := a.load(ctx, id)
		if err != nil {
			return err
		}
		t := now().UTC()
		if old.Revoked || !t.Before(old.Expires) {
			return ErrConflict
		}
		rec := &Record{
			Owner:       old.Owner,
			Description: old.Description,
			Labels:      old.Labels,
			Groups:      old.Groups,
			Created:     t,
			Expires:     t.Add(life),
			RotatedFrom: old.ID,
		}
		key, err := a.insert(ctx, rec)
		if err != nil {
			return err
		}
		old.RotatedTo = rec.ID
		if grace > 0 {
			old.Expires = minTime(old.Expires, t.Add(grace))
		} else {
			old.Revoked, old.RevokedAt = true, t
		}
		if err := a.store.save(ctx, old); err != nil {
			return fmt.Errorf("retiring rotated API key %s: %w", id, err)
		}
		a.forget(old)
		issued = &Issued{Key: key, KeyInfo: a.info(rec, time.Time{})}
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.logger.Info("API key rotated", zap.String("realm", a.Realm), zap.String("key_id", id),
		zap.String("new_key_id", issued.ID), zap.Duration("grace_period", grace))
	return issued, nil
}

func (a *APIKey) load(ctx context.Context, id string) (*Record, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	rec, err := a.store.load(ctx, id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading API key %s: %w", id, err)
	}
	return rec, nil
}

func (a *APIKey) info(rec *Record, lastUsed time.Time) KeyInfo {
	status := "active"
	switch {
	case rec.Revoked:
		status = "revoked"
	case !now().Before(rec.Expires):
		status = "expired"
	}
	return KeyInfo{
		ID: rec.ID, Owner: rec.Owner, Description: rec.Description, Labels: rec.Labels, Groups: rec.Groups,
		Created: rec.Created, Expires: rec.Expires, LastUsed: lastUsed, Revoked: rec.Revoked,
		RevokedAt: rec.RevokedAt, RotatedTo: rec.RotatedTo, RotatedFrom: rec.RotatedFrom, Status: status,
	}
}

package apikey

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
)

// storagePrefix is where API keys live in Caddy storage, one directory per
// realm.
const storagePrefix = "atlasgate/api_keys"

// Record is what storage holds about a key: its metadata and the SHA-256 of
// the key, never the key itself.
type Record struct {
	// ID is the key id: the first 8 random characters of the key.
	ID string `json:"id"`
	// Hash is the hex SHA-256 of the whole key.
	Hash string `json:"hash"`
	// Owner is who the key authenticates as (Identity.User).
	Owner string `json:"owner"`
	// Description is free text for people.
	Description string `json:"description,omitempty"`
	// Labels become Identity.Labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Groups become Identity.Groups.
	Groups []string `json:"groups,omitempty"`
	// Created is when the key was issued.
	Created time.Time `json:"created"`
	// Expires is when the key stops working. Every key expires.
	Expires time.Time `json:"expires"`
	// Revoked is set when the key was revoked, at RevokedAt.
	Revoked   bool      `json:"revoked,omitempty"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// RotatedTo is the id of the key that replaced this one.
	RotatedTo string `json:"rotated_to,omitempty"`
	// RotatedFrom is the id of the key this one replaced.
	RotatedFrom string `json:"rotated_from,omitempty"`
}

// store reads and writes the records of one realm.
type store struct {
	s      certmagic.Storage
	prefix string
}

func newStore(s certmagic.Storage, realm string) *store {
	return &store{s: s, prefix: path.Join(storagePrefix, realm)}
}

func (st *store) recordKey(id string) string { return path.Join(st.prefix, id+".json") }

// lastUsedKey is a separate object so that the best-effort last-used write
// can never overwrite a revocation made meanwhile by another replica.
func (st *store) lastUsedKey(id string) string { return path.Join(st.prefix, id+".last_used") }

func (st *store) lockName(id string) string { return path.Join(st.prefix, id) }

// load returns the record of id; fs.ErrNotExist if there is none.
func (st *store) load(ctx context.Context, id string) (*Record, error) {
	b, err := st.s.Load(ctx, st.recordKey(id))
	if err != nil {
		return nil, err
	}
	rec := new(Record)
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("decoding API key record %s: %w", id, err)
	}
	if rec.ID != id {
		return nil, fmt.Errorf("API key record %s holds id %q", id, rec.ID)
	}
	return rec, nil
}

func (st *store) save(ctx context.Context, rec *Record) error {
	b, err := json.MarshalIndent(rec, "", "\t")
	if err != nil {
		return err
	}
	return st.s.Store(ctx, st.recordKey(rec.ID), b)
}

func (st *store) exists(ctx context.Context, id string) bool {
	return st.s.Exists(ctx, st.recordKey(id))
}

// lastUsed returns when id was last seen in use (zero: never or unknown).
func (st *store) lastUsed(ctx context.Context, id string) time.Time {
	b, err := st.s.Load(ctx, st.lastUsedKey(id))
	if err != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, string(b))
	return t
}

func (st *store) touch(ctx context.Context, id string, t time.Time) error {
	return st.s.Store(ctx, st.lastUsedKey(id), []byte(t.UTC().Format(time.RFC3339Nano)))
}

// withLock runs f holding the storage lock of id, so that management
// operations on one key (revoke, rotate) do not interleave across replicas.
func (st *store) withLock(ctx context.Context, id string, f func() error) error {
	name := st.lockName(id)
	if err := st.s.Lock(ctx, name); err != nil {
		return fmt.Errorf("locking API key %s: %w", id, err)
	}
	defer func() { _ = st.s.Unlock(context.WithoutCancel(ctx), name) }()
	return f()
}

// list returns every record of the realm, oldest first.
func (st *store) list(ctx context.Context) ([]*Record, error) {
	keys, err := st.s.List(ctx, st.prefix, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var recs []*Record
	for _, k := range keys {
		id, ok := strings.CutSuffix(path.Base(k), ".json")
		if !ok || !validID(id) {
			continue
		}
		rec, err := st.load(ctx, id)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool {
		if !recs[i].Created.Equal(recs[j].Created) {
			return recs[i].Created.Before(recs[j].Created)
		}
		return recs[i].ID < recs[j].ID
	})
	return recs, nil
}

// hashBytes decodes a stored hash; a corrupt one decodes to nothing, which
// matches no key.
func (r *Record) hashBytes() []byte {
	b, err := hex.DecodeString(r.Hash)
	if err != nil {
		return nil
	}
	return b
}

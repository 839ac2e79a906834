package credentials

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/sync/singleflight"

	"github.com/atlasgate/atlasgate/internal/clock"
)

// cloudIDs caches discovered cloudIds per site across config reloads: a reload
// must not trigger a new discovery round for every site.
var cloudIDs = caddy.NewUsagePool()

// Discovery timings. A site's cloudId never changes, so a success is kept for a
// day; a failure is remembered briefly so a broken site cannot be hammered by
// every request.
var (
	cloudIDTTL         = 24 * time.Hour
	cloudIDNegativeTTL = 5 * time.Second
)

// cloudIDEntry is the shared, single-flight discovery state of one site.
type cloudIDEntry struct {
	site string

	sf       singleflight.Group
	mu       sync.Mutex // guards the fields below, never held across a fetch
	id       string
	fetched  time.Time
	err      error
	failedAt time.Time
}

func (*cloudIDEntry) Destruct() error { return nil }

func acquireCloudID(site string) *cloudIDEntry {
	v, _, _ := cloudIDs.LoadOrNew(site, func() (caddy.Destructor, error) {
		return &cloudIDEntry{site: site}, nil
	})
	return v.(*cloudIDEntry)
}

// get returns the site's cloudId, discovering it through the site's
// /_edge/tenant_info endpoint (which needs no credential) when not cached.
// Concurrent callers share one discovery; each waits only as long as its own
// context allows.
func (e *cloudIDEntry) get(ctx context.Context, client *http.Client) (string, error) {
	t := clock.Now()
	e.mu.Lock()
	id, fetched, failErr, failedAt := e.id, e.fetched, e.err, e.failedAt
	e.mu.Unlock()
	if id != "" && t.Sub(fetched) < cloudIDTTL {
		return id, nil
	}
	if failErr != nil && t.Sub(failedAt) < cloudIDNegativeTTL {
		if id != "" {
			return id, nil // keep serving a known id while the site is unreachable
		}
		return "", failErr
	}
	// The discovery serves every waiting request, so it must not die with the
	// request that happened to start it (a client hanging up).
	ch := e.sf.DoChan("discover", func() (any, error) {
		e.mu.Lock()
		if e.id != "" && clock.Now().Sub(e.fetched) < cloudIDTTL {
			defer e.mu.Unlock()
			return e.id, nil // a flight that just ended found it
		}
		if e.err != nil && clock.Now().Sub(e.failedAt) < cloudIDNegativeTTL {
			defer e.mu.Unlock()
			return "", e.err
		}
		e.mu.Unlock()
		id, err := fetchCloudID(context.WithoutCancel(ctx), client, e.site)
		e.mu.Lock()
		defer e.mu.Unlock()
		if err != nil {
			e.err, e.failedAt = err, clock.Now()
			return "", err
		}
		e.id, e.fetched, e.err = id, clock.Now(), nil
		return id, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			if id != "" {
				return id, nil
			}
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func fetchCloudID(ctx context.Context, client *http.Client, site string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, site+"/_edge/tenant_info", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s/_edge/tenant_info: HTTP %d", site, resp.StatusCode)
	}
	var info struct {
		CloudID string `json:"cloudId"`
	}
	if err := json.Unmarshal(body, &info); err != nil || info.CloudID == "" {
		return "", fmt.Errorf("GET %s/_edge/tenant_info: no cloudId in the response", site)
	}
	return info.CloudID, nil
}

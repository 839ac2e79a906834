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
	now                = time.Now
)

// cloudIDEntry is the shared, single-flight discovery state of one site.
type cloudIDEntry struct {
	site string

	mu       sync.Mutex
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
// Concurrent callers wait for one discovery.
func (e *cloudIDEntry) get(ctx context.Context, client *http.Client) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := now()
	if e.id != "" && t.Sub(e.fetched) < cloudIDTTL {
		return e.id, nil
	}
	if e.err != nil && t.Sub(e.failedAt) < cloudIDNegativeTTL {
		if e.id != "" {
			return e.id, nil // keep serving a known id while the site is unreachable
		}
		return "", e.err
	}
	// The discovery serves every waiting request, so it must not die with the
	// request that happened to start it (a client hanging up).
	id, err := fetchCloudID(context.WithoutCancel(ctx), client, e.site)
	if err != nil {
		e.err, e.failedAt = err, t
		if e.id != "" {
			return e.id, nil
		}
		return "", err
	}
	e.id, e.fetched, e.err = id, t, nil
	return id, nil
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

package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/atlasgate/atlasgate/internal/clock"
	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/credentials"
)

// perUser is a credential that acts as each caller's own Atlassian account.
type perUser interface{ IsPerUser() bool }

// holdName is what a hold applies to: the credential, or, for a per-user
// credential, the caller's grant — Atlassian rate-limits each account on its
// own, so one caller's 429 must not hold back every other user.
func holdName(ctx context.Context, name string, cred atlasgate.Credential) string {
	if pu, ok := cred.(perUser); ok && pu.IsPerUser() {
		if who := credentials.Caller(ctx); who != "" {
			sum := sha256.Sum256([]byte(who))
			return name + "/" + hex.EncodeToString(sum[:12])
		}
	}
	return name
}

// HoldBackVar is the Caddy variable (a time.Duration) through which the
// access policy turns upstream hold-back on for a request and caps it.
const HoldBackVar = "atlasgate.upstream_hold_back"

// defaultHoldBackMax caps a hold when atlasgate_proxy turns it on itself.
const defaultHoldBackMax = 5 * time.Minute

// holds remembers, per credential name, until when Atlassian asked the
// gateway to stay away. It lives in a caddy.UsagePool so that a config reload
// does not forget a hold; it is per process (per replica).
type holds struct {
	mu    sync.Mutex
	until map[string]hold
	share atomic.Pointer[sharedHoldsRef] // the newest config's storage, when it shares holds
}

type hold struct {
	until  time.Time
	status int
}

// Destruct implements caddy.Destructor.
func (*holds) Destruct() error { return nil }

var holdPool = caddy.NewUsagePool()

const holdKey = "atlasgate.proxy.holds"

func loadHolds(ctx caddy.Context) (*holds, error) {
	v, _, err := holdPool.LoadOrNew(holdKey, func() (caddy.Destructor, error) {
		return &holds{until: map[string]hold{}}, nil
	})
	if err != nil {
		return nil, err
	}
	h := v.(*holds)
	h.attach(ctx)
	return h, nil
}

// get returns the hold on a credential that is still in force.
func (h *holds) get(name string, t time.Time) (hold, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hd, ok := h.until[name]
	if !ok {
		return hold{}, false
	}
	if !t.Before(hd.until) {
		delete(h.until, name)
		return hold{}, false
	}
	return hd, true
}

// observe sets a hold when an upstream response asks the client to back off:
// 429 or 503 with Retry-After. A per-resource limit (Jira's RateLimit-Reason
// `jira-per-issue-on-write`) concerns one issue, not the credential, so it
// never holds the credential back.
func (h *holds) observe(name string, resp *http.Response, t time.Time, maxHold time.Duration) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return
	}
	if strings.Contains(strings.ToLower(resp.Header.Get("RateLimit-Reason")), "per-issue") {
		return
	}
	d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t)
	if !ok || d <= 0 {
		return
	}
	until := t.Add(min(d, maxHold))
	if h.set(name, until, resp.StatusCode) {
		h.publish(name, until, resp.StatusCode)
	}
}

// set records a hold unless a longer one is in force; it reports whether it
// changed anything.
func (h *holds) set(name string, until time.Time, status int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur, ok := h.until[name]; !ok || until.After(cur.until) {
		h.until[name] = hold{until: until, status: status}
		return true
	}
	return false
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, t time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(s) * time.Second, s >= 0
	}
	if at, err := http.ParseTime(v); err == nil {
		return at.Sub(t), true
	}
	return 0, false
}

// holdBackMax is the hold-back cap for r, 0 when holding back is off. On by
// default; the handler's `off` turns it off, and the access policy (through
// HoldBackVar) sets the cap or, with 0, turns it off unless the handler says
// `on`.
func (h *Handler) holdBackMax(r *http.Request) time.Duration {
	if h.UpstreamHoldBack == "off" {
		return 0
	}
	if d, ok := caddyhttp.GetVar(r.Context(), HoldBackVar).(time.Duration); ok {
		if d > 0 {
			return d
		}
		if h.UpstreamHoldBack != "on" {
			return 0
		}
	}
	return defaultHoldBackMax
}

func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// now is the gateway's one clock (internal/clock); tests move it with
// clock.Set.
func now() time.Time { return clock.Now() }

// Interface guards
var _ caddy.Destructor = (*holds)(nil)

package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Rate is a token bucket: Requests per Per on average, bursts up to Burst.
type Rate struct {
	// Requests allowed per Per. Required, at least 1.
	Requests int `json:"requests"`
	// The period. Default: 1s.
	Per caddy.Duration `json:"per,omitempty"`
	// Requests that may arrive at once. Default: Requests.
	Burst int `json:"burst,omitempty"`
}

type rate struct {
	perSecond float64
	burst     float64
	text      string
}

func (r Rate) compile() (*rate, error) {
	if r.Requests < 1 {
		return nil, fmt.Errorf("requests must be at least 1")
	}
	per := time.Duration(r.Per)
	if per == 0 {
		per = time.Second
	}
	if per < 0 || r.Burst < 0 {
		return nil, fmt.Errorf("per and burst must be positive")
	}
	burst := r.Burst
	if burst == 0 {
		burst = r.Requests
	}
	return &rate{
		perSecond: float64(r.Requests) / per.Seconds(),
		burst:     float64(burst),
		text:      fmt.Sprintf("%d/%s burst %d", r.Requests, per, burst),
	}, nil
}

// ParseRate reads `10/s`, `100/m`, `1000/h`, `5/30s` (requests per period).
func ParseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(s, "/")
	reqs, err := strconv.Atoi(n)
	if !ok || err != nil || reqs < 1 {
		return Rate{}, fmt.Errorf("rate %q: use <requests>/<period>, e.g. 10/s or 1000/h", s)
	}
	var d time.Duration
	switch per {
	case "s":
		d = time.Second
	case "m":
		d = time.Minute
	case "h":
		d = time.Hour
	case "d":
		d = 24 * time.Hour
	default:
		if d, err = caddy.ParseDuration(per); err != nil || d <= 0 {
			return Rate{}, fmt.Errorf("rate %q: period %q: use s, m, h, d or a duration", s, per)
		}
	}
	return Rate{Requests: reqs, Per: caddy.Duration(d)}, nil
}

// limiter holds token buckets by key. It lives in a caddy.UsagePool so that
// buckets survive config reloads; it is per process (per replica).
type limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	takes   int
}

type bucket struct {
	tokens float64
	last   time.Time
	rate   *rate // the bucket's own rate: sweep judges idleness by it
}

// maxIdleBuckets bounds memory: beyond it, full (idle) buckets are dropped,
// which changes nothing for their owners.
const maxIdleBuckets = 100_000

func newLimiter() *limiter { return &limiter{buckets: make(map[string]*bucket)} }

// Destruct implements caddy.Destructor.
func (l *limiter) Destruct() error { return nil }

// take takes one token from key's bucket. When the bucket is empty it returns
// false and how long until a token is back.
func (l *limiter) take(key string, r *rate, t time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok, wait := l.peekLocked(key, r, t); !ok {
		return false, wait
	}
	l.takeLocked(key, r, t)
	return true, 0
}

// takeAll takes a token from every check's bucket, or from none when one of
// them is empty (its index and wait are returned; -1 when all had one). One
// lock for the look and the take: two requests racing for the last token of
// one bucket cannot both pass the look and leave the other buckets charged
// for a request that is then refused.
func (l *limiter) takeAll(checks []limitCheck, t time.Time) (int, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, c := range checks {
		if ok, wait := l.peekLocked(c.key, c.r, t); !ok {
			return i, wait
		}
	}
	for _, c := range checks {
		l.takeLocked(c.key, c.r, t)
	}
	return -1, 0
}

// peekLocked is peek with l.mu held.
func (l *limiter) peekLocked(key string, r *rate, t time.Time) (bool, time.Duration) {
	b := l.buckets[key]
	if b == nil {
		return true, 0
	}
	tokens := math.Min(r.burst, b.tokens+max(t.Sub(b.last).Seconds(), 0)*r.perSecond)
	if tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - tokens) / r.perSecond * float64(time.Second))
}

// takeLocked refills key's bucket to t and takes a token; the caller (with
// l.mu held) has seen that one is there.
func (l *limiter) takeLocked(key string, r *rate, t time.Time) {
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: r.burst, last: t, rate: r}
		l.buckets[key] = b
		l.takes++
		if l.takes%1024 == 0 && len(l.buckets) > maxIdleBuckets {
			l.sweep(t)
		}
	}
	if el := t.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(r.burst, b.tokens+el*r.perSecond)
		b.last = t
	}
	b.tokens--
}

func (l *limiter) sweep(t time.Time) {
	for k, b := range l.buckets {
		if b.tokens+t.Sub(b.last).Seconds()*b.rate.perSecond >= b.rate.burst {
			delete(l.buckets, k)
		}
	}
}

// limiters is shared by all policy handlers of all config generations.
var limiters = caddy.NewUsagePool()

const limiterKey = "atlasgate.policy.limiter"

// retryAfter is a Retry-After value in whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// Interface guards
var _ caddy.Destructor = (*limiter)(nil)

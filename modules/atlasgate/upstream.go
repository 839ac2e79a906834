package atlasgate

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// What Atlassian answered, per credential, as the proxy saw it: the one place
// the console, the admin API, the CLI and the metrics read it from. A static
// credential (an API token, a PAT) has no state of its own, but Atlassian's
// answers tell whether it still works: API tokens expire (1 to 365 days) and a
// revoked one is refused with 401 on every call.

// Upstream verdicts.
const (
	UpstreamWorking     = "working"      // the last answer was not one of the below
	UpstreamRejected    = "rejected"     // 401: Atlassian refuses the credential
	UpstreamRateLimited = "rate_limited" // 429, or 503 with Retry-After
	UpstreamFailing     = "failing"      // another 5xx, or no answer at all
)

// UpstreamSeen is what the gateway last saw from Atlassian through one
// credential, and how much it used it in the last hour. It never holds a
// secret.
type UpstreamSeen struct {
	// Verdict is one of the Upstream* constants; empty until the credential
	// is first used.
	Verdict string `json:"verdict,omitempty"`
	// Since is when the current verdict began (the first of a run of 401s).
	Since time.Time `json:"since,omitzero"`
	// LastStatus is the HTTP status of the last answer; 0 when the last
	// attempt got none (connection or TLS failure, timeout).
	LastStatus int       `json:"last_status,omitempty"`
	LastAt     time.Time `json:"last_at,omitzero"`
	// RateLimitRemaining is Atlassian's last X-RateLimit-Remaining, absent
	// until an answer carried it; RateLimitNearLimit its last
	// X-RateLimit-NearLimit.
	RateLimitRemaining *int64    `json:"rate_limit_remaining,omitempty"`
	RateLimitNearLimit bool      `json:"rate_limit_near_limit,omitempty"`
	RateLimitSeenAt    time.Time `json:"rate_limit_seen_at,omitzero"`
	// Requests and errors (401, 429, 5xx, no answer) in the last 60 minutes,
	// on this replica.
	RequestsLastHour int `json:"requests_last_hour"`
	ErrorsLastHour   int `json:"errors_last_hour"`
}

type upstreamEntry struct {
	seen    UpstreamSeen
	buckets [60]minuteCount
}

type minuteCount struct {
	minute        int64 // Unix minute the counts belong to
	requests, err int
}

// The observations outlive config reloads (they are about Atlassian, not the
// config) and are per process.
var upstream = struct {
	sync.Mutex
	m map[string]*upstreamEntry
}{m: map[string]*upstreamEntry{}}

// ObserveUpstream records Atlassian's answer to a request sent with the named
// credential: status 0 for an attempt that got no answer.
func ObserveUpstream(credential string, status int, h http.Header, t time.Time) {
	verdict, isErr := UpstreamWorking, false
	switch {
	case status == http.StatusUnauthorized:
		verdict, isErr = UpstreamRejected, true
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable && h.Get("Retry-After") != "":
		verdict, isErr = UpstreamRateLimited, true
	case status == 0 || status >= 500:
		verdict, isErr = UpstreamFailing, true
	}
	upstream.Lock()
	defer upstream.Unlock()
	e := upstream.m[credential]
	if e == nil {
		e = &upstreamEntry{}
		upstream.m[credential] = e
	}
	if e.seen.Verdict != verdict {
		e.seen.Verdict, e.seen.Since = verdict, t
	}
	e.seen.LastStatus, e.seen.LastAt = status, t
	if rem := h.Get("X-RateLimit-Remaining"); rem != "" {
		if n, err := strconv.ParseInt(strings.TrimSpace(rem), 10, 64); err == nil {
			e.seen.RateLimitRemaining = &n
			e.seen.RateLimitSeenAt = t
		}
	}
	if near := h.Get("X-RateLimit-NearLimit"); near != "" {
		e.seen.RateLimitNearLimit = strings.EqualFold(strings.TrimSpace(near), "true")
		e.seen.RateLimitSeenAt = t
	}
	min := t.Unix() / 60
	b := &e.buckets[min%60]
	if b.minute != min {
		*b = minuteCount{minute: min}
	}
	b.requests++
	if isErr {
		b.err++
	}
}

// Upstream returns what the gateway has seen from Atlassian through the
// named credential, with the counts of the hour before t.
func Upstream(credential string, t time.Time) UpstreamSeen {
	upstream.Lock()
	defer upstream.Unlock()
	e := upstream.m[credential]
	if e == nil {
		return UpstreamSeen{}
	}
	out := e.seen
	if out.RateLimitRemaining != nil {
		n := *out.RateLimitRemaining
		out.RateLimitRemaining = &n
	}
	now := t.Unix() / 60
	for _, b := range e.buckets {
		if b.minute > now-60 && b.minute <= now {
			out.RequestsLastHour += b.requests
			out.ErrorsLastHour += b.err
		}
	}
	return out
}

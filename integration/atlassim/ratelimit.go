package atlassim

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimit makes the simulator answer the next Count matching requests with
// a rate-limit (or overload) response, so tests can drive the gateway's retry
// and pass-through behaviour deterministically. Rules are checked in the
// order added, before authentication, and a rule is dropped once spent.
type RateLimit struct {
	Host       string // virtual host name; "" matches any host
	PathPrefix string // "" matches any path; compared with the path as received
	Count      int    // how many responses to serve before the rule is spent
	RetryAfter int    // seconds for Retry-After; 0 omits the header (not every 429 carries it)
	// Headers adds X-RateLimit-Limit, X-RateLimit-Remaining: 0,
	// X-RateLimit-Reset (ISO 8601 UTC), X-RateLimit-NearLimit: true and
	// RateLimit-Reason, as Jira Cloud does for burst limits.
	Headers bool
	Reason  string // RateLimit-Reason value; default "jira-burst-based"
	Status  int    // default 429; 503 simulates an overloaded node
}

// AddRateLimit adds a rule. The rule is copied; Count ≤ 0 adds nothing.
func (s *Sim) AddRateLimit(r RateLimit) {
	if r.Count <= 0 {
		return
	}
	if r.Status == 0 {
		r.Status = http.StatusTooManyRequests
	}
	if r.Reason == "" {
		r.Reason = "jira-burst-based"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimits = append(s.rateLimits, &r)
}

// rateLimited answers the request from the first matching rule, if any.
func (s *Sim) rateLimited(c *call) bool {
	s.mu.Lock()
	var rule RateLimit
	found := false
	for i, rl := range s.rateLimits {
		if (rl.Host == "" || rl.Host == c.vh.name) && strings.HasPrefix(c.r.URL.Path, rl.PathPrefix) {
			rule, found = *rl, true
			if rl.Count--; rl.Count <= 0 {
				s.rateLimits = append(s.rateLimits[:i], s.rateLimits[i+1:]...)
			}
			break
		}
	}
	s.mu.Unlock()
	if !found {
		return false
	}
	h := c.Header()
	if rule.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(rule.RetryAfter))
	}
	if rule.Headers {
		reset := s.now().Add(time.Duration(max(rule.RetryAfter, 1)) * time.Second).UTC()
		h.Set("X-RateLimit-Limit", "100")
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", reset.Format("2006-01-02T15:04:05Z"))
		h.Set("X-RateLimit-NearLimit", "true")
		h.Set("RateLimit-Reason", rule.Reason)
	}
	c.json(rule.Status, map[string]any{"code": rule.Status, "message": http.StatusText(rule.Status)})
	return true
}

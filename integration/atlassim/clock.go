package atlassim

import (
	"sync"
	"time"
)

// ManualClock is a clock that moves only when told to. Pass its Now method
// as Config.Clock, then Advance it to expire tokens, codes and grants
// without sleeping. Safe for concurrent use; the zero value starts at the
// zero time, so prefer NewManualClock.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock returns a clock that reads start until moved.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{t: start} }

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d (backward if d is negative) and
// returns the new time.
func (c *ManualClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// Set moves the clock to t.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Now returns the simulator's current time: Config.Clock (or the wall
// clock) plus everything passed to Advance.
func (s *Sim) Now() time.Time { return s.now() }

// Advance moves the simulator's notion of time forward by d, whatever clock
// it runs on, so a test (or a demo with the wall clock) can jump hours or
// months ahead: every token, code and grant expiry is judged by it. It does
// not touch TLS certificates, which always use the wall clock.
func (s *Sim) Advance(d time.Duration) { s.clockOffset.Add(int64(d)) }

package atlassim

import (
	"net/http"
	"sync"
	"time"
)

// TokenHold holds requests to the token endpoint (HostAuth POST /oauth/token)
// until released, so that a test can act while a client's token request is
// in flight: kill the client, say, between sending a refresh and reading the
// answer. Held requests are processed normally once released — also those
// whose client is gone by then, as Atlassian processes a request it has
// received whether or not anyone reads the answer.
type TokenHold struct {
	arrived     chan struct{}
	released    chan struct{}
	arriveOnce  sync.Once
	releaseOnce sync.Once
}

// holdMaxWait bounds how long a request is held, so a test that forgets to
// release cannot hang the simulator's handlers forever.
const holdMaxWait = 2 * time.Minute

// holdSlot is a simulator's current hold. It lives outside Sim (keyed by it)
// and its handler is registered with Handle on first use.
type holdSlot struct {
	mu  sync.Mutex
	cur *TokenHold
}

var holdSlots sync.Map // *Sim → *holdSlot

// HoldTokenEndpoint starts holding token requests and returns the hold;
// Release ends it. A hold replaces any earlier one (releasing it). It takes
// over the "POST /oauth/token" pattern on HostAuth via Handle, so a test
// cannot also Handle that pattern.
func (s *Sim) HoldTokenEndpoint() *TokenHold {
	v, loaded := holdSlots.LoadOrStore(s, &holdSlot{})
	slot := v.(*holdSlot)
	if !loaded {
		s.Handle(HostAuth, "POST /oauth/token", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := r.Context().Value(callKey{}).(*call)
			if c == nil {
				http.Error(w, "no call", http.StatusInternalServerError)
				return
			}
			slot.mu.Lock()
			h := slot.cur
			slot.mu.Unlock()
			if h != nil {
				h.arriveOnce.Do(func() { close(h.arrived) })
				select {
				case <-h.released:
				case <-time.After(holdMaxWait):
				}
			}
			s.oauthToken(c)
		}))
	}
	h := &TokenHold{arrived: make(chan struct{}), released: make(chan struct{})}
	slot.mu.Lock()
	prev := slot.cur
	slot.cur = h
	slot.mu.Unlock()
	if prev != nil {
		prev.Release()
	}
	return h
}

// Arrived is closed when the first request reaches the held endpoint.
func (h *TokenHold) Arrived() <-chan struct{} { return h.arrived }

// Release lets the held requests through and stops holding new ones. Safe
// to call more than once.
func (h *TokenHold) Release() {
	h.releaseOnce.Do(func() { close(h.released) })
}

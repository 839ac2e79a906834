// Package clock is the gateway's one time source for token lifecycles:
// credentials, the token engine and cloudId discovery read it, and tests move
// it (together with the Atlassian simulator's clock) instead of each package
// keeping a clock variable and a setter of its own.
package clock

import (
	"sync/atomic"
	"time"
)

var current atomic.Pointer[func() time.Time]

// Now returns the current time: the wall clock unless a test set another.
func Now() time.Time {
	if f := current.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}

// Set makes Now call f (nil: the wall clock) and returns a function that
// restores the previous clock. For tests; safe while other goroutines read
// the clock.
func Set(f func() time.Time) (restore func()) {
	var next *func() time.Time
	if f != nil {
		next = &f
	}
	prev := current.Swap(next)
	return func() { current.Store(prev) }
}

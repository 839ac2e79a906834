package itest

import "time"

// tick is how often Eventually asks again: short, so that a test waits barely
// longer than the condition takes.
const tick = 10 * time.Millisecond

// Eventually reports whether cond became true within timeout, asking at once
// and then every few milliseconds. Tests wait on the condition they need (a
// log line written, a key revoked, a listener up) instead of sleeping; the
// timeout only bounds how long a broken gateway can hang the test, and the
// caller fails with a message saying what did not happen.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-deadline.C:
			return cond()
		case <-t.C:
		}
	}
}

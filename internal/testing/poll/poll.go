// Package poll is how tests wait for something another goroutine, process
// or server does: poll a condition until it holds, with a deadline that
// only turns a hang into a failure. Tests never sleep for a guessed time
// (TEAM.md) and never assert how long a wait took.
package poll

import (
	"testing"
	"time"
)

// Poll intervals: the first look comes at once, later ones back off from
// firstInterval to maxInterval, so a quick condition is seen within a
// millisecond and a slow one (a Redis read, an HTTP call) is not hammered.
const (
	firstInterval = time.Millisecond
	maxInterval   = 16 * time.Millisecond
)

// WaitFor polls cond until it returns true and fails tb (Fatalf, so call
// it from the test's goroutine) when it has not within timeout, naming
// what it waited for.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Until(timeout, cond) {
		tb.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Until polls cond until it returns true (then Until returns true) or
// timeout passes (false): for a caller that reports the failure itself,
// with what it saw.
func Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	wait := firstInterval
	for !cond() {
		tick := time.NewTimer(wait)
		select {
		case <-deadline.C:
			tick.Stop()
			return cond()
		case <-tick.C:
		}
		wait = min(2*wait, maxInterval)
	}
	return true
}

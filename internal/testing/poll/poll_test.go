package poll

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	t.Parallel()
	// A condition that holds is given far more time than it needs (the
	// look that sees it comes after milliseconds): on a loaded machine the
	// deadline's timer may be ready by the time a poll interval's is, and
	// Until would then stop early. Only the condition that never holds
	// waits its timeout out.
	tests := []struct {
		name     string
		trueFrom int64 // the call from which cond holds; 0: never
		timeout  time.Duration
		want     bool
	}{
		{"holds at once", 1, 20 * time.Second, true},
		{"holds on a later look", 5, 20 * time.Second, true},
		{"never holds", 0, 200 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			got := Until(tt.timeout, func() bool {
				n := calls.Add(1)
				return tt.trueFrom > 0 && n >= tt.trueFrom
			})
			if got != tt.want {
				t.Errorf("Until = %v, want %v", got, tt.want)
			}
			if tt.want && calls.Load() != tt.trueFrom {
				t.Errorf("cond called %d times, want it to stop at the first true (call %d)", calls.Load(), tt.trueFrom)
			}
			if !tt.want && calls.Load() < 2 {
				t.Errorf("cond called %d times before giving up, want it polled", calls.Load())
			}
		})
	}
}

// TestUntilSeesChange: a condition made true by another goroutine is seen.
func TestUntilSeesChange(t *testing.T) {
	t.Parallel()
	var done atomic.Bool
	go func() { done.Store(true) }()
	if !Until(20*time.Second, done.Load) {
		t.Fatal("Until missed a condition another goroutine made true")
	}
}

// fakeTB records a Fatalf instead of ending the test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestWaitForFailsNamingWhat(t *testing.T) {
	t.Parallel()
	tb := &fakeTB{TB: t}
	WaitFor(tb, 10*time.Millisecond, "the moon", func() bool { return false })
	if !strings.Contains(tb.failed, "the moon") {
		t.Fatalf("WaitFor on a condition that never holds: failure %q, want one naming what it waited for", tb.failed)
	}
	tb = &fakeTB{TB: t}
	WaitFor(tb, time.Second, "a sure thing", func() bool { return true })
	if tb.failed != "" {
		t.Errorf("WaitFor failed on a condition that holds: %s", tb.failed)
	}
}

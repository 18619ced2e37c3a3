package clock

import (
	"testing"
	"time"
)

func TestFake(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(t0)
	if !f.Now().Equal(t0) {
		t.Fatalf("Now = %v", f.Now())
	}
	if got := f.Advance(time.Hour); !got.Equal(t0.Add(time.Hour)) || !f.Now().Equal(got) {
		t.Fatalf("Advance = %v, Now = %v", got, f.Now())
	}
	f.Set(t0)
	if !f.Now().Equal(t0) {
		t.Fatalf("Set: %v", f.Now())
	}
	var _ Clock = Real{}
	if d := time.Since(Real{}.Now()); d < 0 || d > time.Minute {
		t.Fatalf("Real clock is off by %v", d)
	}
}

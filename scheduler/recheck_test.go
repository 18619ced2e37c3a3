package scheduler

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// TestRecheckAfterOutage: once a datasource's breaker closed, a tick
// enqueues the checks of the connections not attempted meanwhile, at most
// RecheckPerTick a tick; one whose check is queued already is not enqueued
// twice but stays listed until its check is attempted, and nothing is
// enqueued while the breaker is open.
func TestRecheckAfterOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 168*time.Hour)
	ctx := context.Background()
	rules := store.HealthRules{Window: time.Minute, MinChecks: 1, DownRatio: 0.5, DegradedRatio: 0.5, ProbesPerMinute: 1}
	co := e.company(t, "Acme")
	var ids []string
	for _, u := range []string{"a", "b", "c"} {
		ids = append(ids, e.connection(t, co, u).ID)
	}
	rec := &recorder{}
	s := mustNew(t, e.st, rec, func(c *Config) { c.Clock, c.RecheckPerTick = e.clk, 2 })
	rechecks := func() []string {
		var out []string
		for _, p := range rec.take() {
			if p.Reason == tasks.ReasonBreakerClosed {
				out = append(out, p.ConnectionID)
			}
		}
		slices.Sort(out)
		return out
	}
	tick := func() TickStats {
		t.Helper()
		e.clk.Advance(time.Minute)
		st, err := s.Tick(ctx, e.clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// Their first checks are swept, and their queued marks end unchecked
	// (as a lost task's would).
	tick()
	rec.take()
	e.clk.Advance(time.Hour)
	// The breaker opens; the minute's probe goes to another connection,
	// the three are not attempted.
	if _, _, err := e.st.RecordOutcome(ctx, "sandbox", "cn_other", rules, checks.ConnWebsiteDown, time.Second, false, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if adm, _, _ := e.st.AdmitCheck(ctx, "sandbox", "cn_other", rules, e.clk.Now()); adm != store.Probe {
		t.Fatalf("first admission %v, want the minute's probe", adm)
	}
	for _, id := range ids {
		if adm, _, _ := e.st.AdmitCheck(ctx, "sandbox", id, rules, e.clk.Now()); adm != store.NotAttempted {
			t.Fatalf("%s: %v, want NotAttempted", id, adm)
		}
	}
	if st := tick(); st.Rechecked != 0 || len(rechecks()) != 0 {
		t.Fatalf("a tick while the breaker is open re-checked %d", st.Rechecked)
	}
	// A probe reaches the website: closed.
	if _, ch, _ := e.st.RecordOutcome(ctx, "sandbox", "cn_other", rules, checks.ConnConnected, time.Second, true, e.clk.Now()); ch != store.BreakerClosed {
		t.Fatalf("the probe's success: %v, want BreakerClosed", ch)
	}
	st := tick()
	first := rechecks()
	if st.Rechecked != 2 || len(first) != 2 {
		t.Fatalf("first tick after closing: %d re-checked (%v), want 2 (RecheckPerTick)", st.Rechecked, first)
	}
	// Their checks are still queued: the next tick enqueues the third only.
	st = tick()
	second := rechecks()
	if st.Rechecked != 1 || len(second) != 1 || slices.Contains(first, second[0]) {
		t.Fatalf("second tick: %d re-checked (%v), want the third alone (first %v)", st.Rechecked, second, first)
	}
	// All three attempted: nothing is left.
	for _, id := range ids {
		if _, _, err := e.st.RecordOutcome(ctx, "sandbox", id, rules, checks.ConnConnected, time.Second, false, e.clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.Advance(time.Hour) // the queued marks have ended
	if st := tick(); st.Rechecked != 0 || len(rechecks()) != 0 {
		t.Fatalf("after every check was attempted: %d re-checked", st.Rechecked)
	}
}

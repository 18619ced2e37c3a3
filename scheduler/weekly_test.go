package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// checkOnce records a successful check of id started at at, as the worker
// would: the connection's first check, after which only its weekly slot
// makes it due.
func (e *env) checkOnce(tb testing.TB, id string, at time.Time) {
	tb.Helper()
	ctx := context.Background()
	tg, err := e.st.LoadCheck(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.st.RecordCheck(ctx, tg, store.CheckResult{Attempt: "first", StartedAt: at, FinishedAt: at,
		Result: checks.Result{Status: checks.ConnConnected}}); err != nil {
		tb.Fatal(err)
	}
}

// TestWeeklyFailedEnqueueRetriesNextTick: a weekly slot whose enqueue failed
// is retried by the next tick with the same slot (so the same task ID),
// and the cursor does not make the sweep read the others again.
func TestWeeklyFailedEnqueueRetriesNextTick(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, defaultInterval)
	cns := e.connections(t, e.company(t, "Acme"), 40)
	for _, cn := range cns {
		e.checkOnce(t, cn.ID, t0)
	}
	failing := map[string]bool{}
	for _, cn := range cns[:6] {
		failing[cn.ID] = true
	}
	var mu sync.Mutex
	down := true
	rec := &recorder{fail: func(p tasks.CheckPayload) error {
		mu.Lock()
		defer mu.Unlock()
		if down && failing[p.ConnectionID] {
			return errors.New("redis: connection refused")
		}
		return nil
	}}
	s := mustNew(t, e.st, rec, func(c *Config) { c.BatchSize = 7 })
	if st, err := s.Tick(ctx, t0); err != nil || st.Claimed != 0 {
		t.Fatalf("first tick (starts the cursor): %+v %v", st, err)
	}
	week := t0.Add(defaultInterval)
	st, err := s.Tick(ctx, week)
	if err != nil {
		t.Fatal(err)
	}
	if st.Claimed != 40 || st.Enqueued != 34 || st.Failed != 6 {
		t.Fatalf("weekly tick %+v, want 40 claimed, 34 enqueued, 6 failed", st)
	}
	for _, p := range rec.take() {
		if want := checks.NextSlot(p.ConnectionID, t0, defaultInterval).UnixMilli(); p.Slot != want {
			t.Fatalf("%s enqueued for slot %d, want its weekly slot %d", p.ConnectionID, p.Slot, want)
		}
	}
	mu.Lock()
	down = false
	mu.Unlock()
	st, err = s.Tick(ctx, week.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if st.Claimed != 6 || st.Enqueued != 6 {
		t.Fatalf("next tick %+v, want the 6 failed ones only", st)
	}
	for _, p := range rec.take() {
		if !failing[p.ConnectionID] {
			t.Errorf("%s enqueued again", p.ConnectionID)
		}
		if want := checks.NextSlot(p.ConnectionID, t0, defaultInterval).UnixMilli(); p.Slot != want {
			t.Errorf("%s retried for slot %d, want its weekly slot %d (the same task ID)", p.ConnectionID, p.Slot, want)
		}
	}
	if n, err := e.st.DueBacklog(ctx, week.Add(time.Minute)); err != nil || n != 0 {
		t.Fatalf("backlog %d, %v; want 0", n, err)
	}
}

// TestWeeklySweepOneSchedulerAtATime: while one scheduler holds the sweep,
// another's tick enqueues nothing weekly; after it ends, the next tick
// continues from the cursor.
func TestWeeklySweepOneSchedulerAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, defaultInterval)
	for _, cn := range e.connections(t, e.company(t, "Acme"), 30) {
		e.checkOnce(t, cn.ID, t0)
	}
	rec := &recorder{}
	s := mustNew(t, e.st, rec)
	if _, err := s.Tick(ctx, t0); err != nil {
		t.Fatal(err)
	}
	week := t0.Add(defaultInterval)
	held, err := e.st.BeginSweep(ctx, week, time.Minute) // another scheduler sweeping
	if err != nil || held == nil {
		t.Fatalf("BeginSweep = %v, %v", held, err)
	}
	if st, err := s.Tick(ctx, week); err != nil || st.Claimed != 0 {
		t.Fatalf("tick while another scheduler sweeps: %+v %v; want nothing", st, err)
	}
	if err := held.End(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Tick(ctx, week); err != nil || st.Enqueued != 30 {
		t.Fatalf("tick after the other sweep ended: %+v %v; want 30 enqueued", st, err)
	}
	if d := rec.dupes(); len(d) > 0 {
		t.Fatalf("enqueued twice: %v", d)
	}
}

// TestReclaimedClaimKeepsWeeklySlot: a scheduler died after enqueueing an
// on-demand claim and before acknowledging it, and the check ran. When a
// tick reclaims that claim (its lease over) in the tick that also sweeps
// the connection's weekly slot, the weekly slot is still enqueued: the
// reclaimed task is for the old slot (asynq may refuse it as done, the
// worker skips it as served), so skipping the weekly slot for it would
// leave the connection unchecked for an interval.
func TestReclaimedClaimKeepsWeeklySlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, defaultInterval)
	const lease = 5 * time.Minute
	co := e.company(t, "Acme")
	var cn store.Connection
	for i := 0; ; i++ { // one whose weekly slot comes after the lease
		cn = e.connection(t, co, fmt.Sprint("user_", i))
		if checks.NextSlot(cn.ID, t0, defaultInterval).After(t0.Add(lease + time.Minute)) {
			break
		}
	}
	weekly := checks.NextSlot(cn.ID, t0, defaultInterval)
	// The scheduler that died: its claims (every connection created), then
	// the worker's first checks; no acknowledgement.
	items, err := e.st.SweepOnDemand(t0, lease).Next(ctx, 100)
	if err != nil || len(items) == 0 {
		t.Fatalf("claim: %v %v", items, err)
	}
	for _, it := range items {
		e.checkOnce(t, it.ConnectionID, t0.Add(time.Second))
	}

	rec := &recorder{}
	s := mustNew(t, e.st, rec, func(c *Config) { c.Lease = lease })
	e.clk.Set(weekly.Add(time.Second))
	if _, err := s.Tick(ctx, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	var slots []time.Time
	for _, p := range rec.take() {
		if p.ConnectionID == cn.ID {
			slots = append(slots, time.UnixMilli(p.Slot))
		}
	}
	if !slices.ContainsFunc(slots, weekly.Equal) {
		t.Errorf("tasks of %s for slots %v: its weekly slot %v is missing", cn.ID, slots, weekly)
	}
	if !slices.ContainsFunc(slots, t0.Equal) {
		t.Errorf("tasks of %s for slots %v: the reclaimed claim's slot %v is missing", cn.ID, slots, t0)
	}
}

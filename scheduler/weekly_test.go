package scheduler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/tasks"
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
	e := newEnv(t, store.DefaultInterval)
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
	s := mustNew(t, e.st, rec, Config{BatchSize: 7})
	if st, err := s.Tick(ctx, t0); err != nil || st.Claimed != 0 {
		t.Fatalf("first tick (starts the cursor): %+v %v", st, err)
	}
	week := t0.Add(store.DefaultInterval)
	st, err := s.Tick(ctx, week)
	if err != nil {
		t.Fatal(err)
	}
	if st.Claimed != 40 || st.Enqueued != 34 || st.Failed != 6 {
		t.Fatalf("weekly tick %+v, want 40 claimed, 34 enqueued, 6 failed", st)
	}
	for _, p := range rec.take() {
		if want := checks.NextSlot(p.ConnectionID, t0, store.DefaultInterval).UnixMilli(); p.Slot != want {
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
		if want := checks.NextSlot(p.ConnectionID, t0, store.DefaultInterval).UnixMilli(); p.Slot != want {
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
	e := newEnv(t, store.DefaultInterval)
	for _, cn := range e.connections(t, e.company(t, "Acme"), 30) {
		e.checkOnce(t, cn.ID, t0)
	}
	rec := &recorder{}
	s := mustNew(t, e.st, rec, Config{})
	if _, err := s.Tick(ctx, t0); err != nil {
		t.Fatal(err)
	}
	week := t0.Add(store.DefaultInterval)
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

package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// runP1: the sweep. Baseline: raw asynq.Client enqueues of the same tasks
// (same IDs, payloads and options) with the best goroutine count found on a
// probe. Then scheduler.Tick enqueues the N new connections due on demand
// (P1.new, their first checks), the queues are flushed, and one interval
// later a tick enqueues all N at their weekly slots and moves the sweep
// cursor past them (P1).
func runP1(ctx context.Context, e *env) (r Result) {
	r = Result{ID: "P1", Name: "sweep", Unit: "conn/s", Goal: "ratio ≥ 0.9 and sweep ≤ 60 s"}
	d := e.ds
	n := len(d.ids)
	sch, err := e.newScheduler(e.st, e.aq, n, e.sz.SweepConcurrency)
	if err != nil {
		r.Err = err
		return r
	}
	cfg := sch.Config()
	opts := []asynq.Option{asynq.Queue(cfg.Queue), asynq.Timeout(cfg.TaskTimeout), asynq.MaxRetry(cfg.MaxRetry)}
	slotOf := func(i int) time.Time { return d.created[i] }
	if err := flushAsynq(ctx, e.rdb); err != nil {
		r.Err = err
		return r
	}

	// Baseline: find the best goroutine count on a probe, then run it on n.
	probe := min(e.sz.RawProbe, n)
	best, bestRate := 0, 0.0
	var probes []string
	for _, g := range e.sz.RawGoroutines {
		took, err := enqueueChecks(ctx, e.aq, d.ids, probe, slotOf, g, opts...)
		if err != nil {
			r.Err = fmt.Errorf("raw probe with %d goroutines: %w", g, err)
			return r
		}
		rate := float64(probe) / took.Seconds()
		probes = append(probes, fmt.Sprintf("%d goroutines %.0f/s", g, rate))
		e.logf("P1: raw probe %d tasks, %d goroutines: %.0f/s", probe, g, rate)
		if rate > bestRate {
			best, bestRate = g, rate
		}
		if err := flushAsynq(ctx, e.rdb); err != nil {
			r.Err = err
			return r
		}
	}
	e.logf("P1: raw asynq enqueue of %d tasks with %d goroutines", n, best)
	m := startMeter(ctx, e.rdb, e.rt)
	if _, err := enqueueChecks(ctx, e.aq, d.ids, n, slotOf, best, opts...); err != nil {
		r.Err = err
		return r
	}
	m.stop(ctx)
	raw := m
	rawRate := float64(n) / raw.Wall.Seconds()
	e.logf("P1: raw %.0f/s; flushing asynq queues", rawRate)
	if err := flushAsynq(ctx, e.rdb); err != nil {
		r.Err = err
		return r
	}

	// Measured, first: one tick over the N new connections, all due on
	// demand since their creation (their first checks).
	now := time.Now()
	e.logf("P1: scheduler.Tick over %d new connections due on demand (EnqueueConcurrency %d, BatchSize %d)", n, cfg.EnqueueConcurrency, cfg.BatchSize)
	stopProf := e.startProfile("P1-new")
	mNew := startMeter(ctx, e.rdb, e.rt)
	stNew, err := sch.Tick(ctx, now)
	mNew.stop(ctx)
	stopProf()
	if err == nil && (stNew.Enqueued != n || stNew.Failed != 0) {
		err = fmt.Errorf("tick %+v: want %d enqueued", stNew, n)
	}
	if err == nil {
		err = flushAsynq(ctx, e.rdb)
	}
	if err != nil {
		r.Err = err
		return r
	}

	// Measured, P1 itself: the weekly sweep. One interval later every
	// connection's weekly slot is due: one tick enqueues them all and moves
	// the sweep cursor over them.
	now = now.Add(e.st.Interval())
	e.logf("P1: scheduler.Tick over %d connections due at their weekly slot", n)
	stopProf = e.startProfile("P1")
	m = startMeter(ctx, e.rdb, e.rt)
	st, err := sch.Tick(ctx, now)
	m.stop(ctx)
	stopProf()
	if err != nil {
		r.Err = err
		return r
	}
	if st.Enqueued != n || st.Failed != 0 {
		r.Err = fmt.Errorf("tick %+v: want %d enqueued", st, n)
		return r
	}
	d.sweptAt = now
	backlog, err := e.st.DueBacklog(ctx, now)
	if err != nil {
		r.Err = err
		return r
	}
	if backlog != 0 {
		r.Err = fmt.Errorf("%d connections still due after the sweep: the sweep cursor was not advanced", backlog)
		return r
	}
	pending, err := pendingTasks(ctx, e.rdb, cfg.Queue)
	if err != nil {
		r.Err = err
		return r
	}
	if pending != int64(n) {
		r.Err = fmt.Errorf("queue %s holds %d pending tasks after the sweep, want %d", cfg.Queue, pending, n)
		return r
	}
	sweepRate := float64(n) / m.Wall.Seconds()
	r.Value, r.Baseline, r.HasBase = sweepRate, rawRate, true
	r.Ratio, r.HasRatio = sweepRate/rawRate, true
	r.Met = verdict(r.Ratio >= 0.9 && m.Wall <= 60*time.Second)
	r.Details = append(r.Details,
		fmt.Sprintf("weekly: %d connections swept in %s (tick Duration %s; %d batches of ≤%d); raw asynq %d tasks in %s with %d goroutines (probes on %d: %v)",
			n, m.Wall.Round(time.Millisecond), st.Duration.Round(time.Millisecond), (n+cfg.BatchSize-1)/cfg.BatchSize, cfg.BatchSize,
			n, raw.Wall.Round(time.Millisecond), best, probe, probes),
		"sweep "+m.perItem(n),
		"raw   "+raw.perItem(n),
		fmt.Sprintf("by CPU (Go + Redis per connection, less sensitive to the machine's load): raw %s, sweep %s, ratio %.3f",
			raw.cpuPerItem(n), m.cpuPerItem(n), m.cpuRatio(raw, n)),
		fmt.Sprintf("after the sweep: %d pending tasks, 0 connections due at the sweep's now (the cursor moved past every slot)", pending),
		fmt.Sprintf("new connections (P1.new): %d due on demand since creation, swept in %s (%d claims of ≤%d, each taking them out of the on-demand index and marking them queued)",
			n, mNew.Wall.Round(time.Millisecond), (n+cfg.BatchSize-1)/cfg.BatchSize, cfg.BatchSize),
		"new   "+mNew.perItem(n),
		fmt.Sprintf("new connections by CPU: raw %s, sweep %s, ratio %.3f", raw.cpuPerItem(n), mNew.cpuPerItem(n), mNew.cpuRatio(raw, n)))
	newRate := float64(n) / mNew.Wall.Seconds()
	r.Subs = append(r.Subs, Result{ID: "P1.time", Name: "sweep-seconds", Value: m.Wall.Seconds(), Unit: "s",
		Goal: "≤ 60 s", Met: verdict(m.Wall <= 60*time.Second)},
		Result{ID: "P1.new", Name: "sweep-new-connections", Value: newRate, Unit: "conn/s", Baseline: rawRate, HasBase: true,
			Ratio: newRate / rawRate, HasRatio: true, Goal: "first checks of new connections, reported beside P1", Met: "-"})
	e.logf("P1: sweep %.0f/s (ratio %.3f); flushing asynq queues", sweepRate, r.Ratio)
	if err := flushAsynq(ctx, e.rdb); err != nil {
		r.Err = err
	}
	return r
}

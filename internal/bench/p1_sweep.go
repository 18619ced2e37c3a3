package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/checkd/checkd/scheduler"
)

// runP1: the sweep. Baseline: raw asynq.Client enqueues of the same tasks
// (same IDs, payloads and options) with the best goroutine count found on a
// probe. Then scheduler.Tick enqueues the N new connections due on demand
// (P1.new, their first checks), the queues are flushed, and the weekly
// sweep (P1) follows in SweepRounds rounds: tick k of R runs k/R of an
// interval later and enqueues the connections whose weekly slots fell in
// that stretch (about N/R), alternating with raw enqueues of N/R of the
// tasks (raw first in even rounds, last in odd ones), so that the
// machine's drift during the run weighs on both sides alike. Each side's
// rate is its N over the sum of its rounds' times.
func runP1(ctx context.Context, e *env) (r Result) {
	r = Result{ID: "P1", Name: "sweep", Unit: "conn/s", Goal: "ratio ≥ 0.9 and sweep ≤ 60 s"}
	d := e.ds
	n := len(d.ids)
	rounds := max(e.sz.SweepRounds, 1)
	sch, err := e.newScheduler(e.st, n, e.sz.SweepConcurrency)
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

	// The best goroutine count for raw enqueues, found on a probe.
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
	// rawRun enqueues ids[lo:hi]'s tasks as raw asynq with best goroutines.
	rawRun := func(lo, hi int) (*meter, error) {
		m := startMeter(ctx, e.rdb, e.rt)
		_, err := enqueueChecks(ctx, e.aq, d.ids[lo:hi], hi-lo, func(i int) time.Time { return d.created[lo+i] }, best, opts...)
		m.stop(ctx)
		if err != nil {
			return nil, err
		}
		return m, flushAsynq(ctx, e.rdb)
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
	// Weekly slots that came due between the connections' creation and
	// this tick and that it left for later (it stops at MaxPerTick = N):
	// the first weekly tick enqueues them, and one interval on their next
	// slots come due again.
	var left int64
	if err == nil {
		left, err = e.st.DueBacklog(ctx, now)
	}
	if err != nil {
		r.Err = err
		return r
	}

	// Measured, P1 itself: the weekly sweep, in rounds against raw
	// enqueues. After the last tick, one interval after the first check,
	// every connection's weekly slot has been swept once.
	e.logf("P1: %d rounds: scheduler.Tick over the weekly slots of 1/%d of an interval, raw asynq enqueue of %d tasks with %d goroutines",
		rounds, rounds, n/rounds, best)
	raw, m := &meter{}, &meter{}
	var swept int
	var roundRatios []string
	for k := 1; k <= rounds; k++ {
		lo, hi := (k-1)*n/rounds, k*n/rounds
		var mr, ms *meter
		var err error
		var sweptK int
		if k%2 == 1 { // even rounds counting from 0: raw first
			mr, err = rawRun(lo, hi)
		}
		if err == nil {
			at := now.Add(e.st.Interval() * time.Duration(k) / time.Duration(rounds))
			stopProf := e.startProfile(fmt.Sprintf("P1-%d", k))
			ms = startMeter(ctx, e.rdb, e.rt)
			var st scheduler.TickStats
			st, err = sch.Tick(ctx, at)
			ms.stop(ctx)
			stopProf()
			if err == nil && st.Failed != 0 {
				err = fmt.Errorf("tick %+v: enqueues failed", st)
			}
			var pending int64
			if err == nil {
				pending, err = pendingTasks(ctx, e.rdb, cfg.Queue)
			}
			if err == nil && pending != int64(st.Enqueued) {
				err = fmt.Errorf("queue %s holds %d pending tasks after a tick that enqueued %d", cfg.Queue, pending, st.Enqueued)
			}
			if err == nil {
				err = flushAsynq(ctx, e.rdb)
			}
			sweptK = st.Enqueued
			swept += sweptK
		}
		if err == nil && k%2 == 0 {
			mr, err = rawRun(lo, hi)
		}
		if err != nil {
			r.Err = fmt.Errorf("round %d: %w", k, err)
			return r
		}
		raw.add(mr)
		m.add(ms)
		sweepK, rawK := float64(sweptK)/ms.Wall.Seconds(), float64(hi-lo)/mr.Wall.Seconds()
		roundRatios = append(roundRatios, fmt.Sprintf("%.3f", sweepK/rawK))
		e.logf("P1: round %d: sweep %d at %.0f/s, raw %d at %.0f/s", k, sweptK, sweepK, hi-lo, rawK)
	}
	end := now.Add(e.st.Interval())
	if swept != n+int(left) {
		r.Err = fmt.Errorf("the sweep's %d ticks enqueued %d, want %d connections and the %d weekly slots the first tick left", rounds, swept, n, left)
		return r
	}
	d.sweptAt = end
	backlog, err := e.st.DueBacklog(ctx, end)
	if err != nil {
		r.Err = err
		return r
	}
	if backlog != 0 {
		r.Err = fmt.Errorf("%d connections still due after the sweep: the sweep cursor was not advanced", backlog)
		return r
	}
	rawRate := float64(n) / raw.Wall.Seconds()
	sweepRate := float64(swept) / m.Wall.Seconds()
	r.Value, r.Baseline, r.HasBase = sweepRate, rawRate, true
	r.Ratio, r.HasRatio = sweepRate/rawRate, true
	r.Met = verdict(r.Ratio >= 0.9 && m.Wall <= 60*time.Second)
	r.Details = append(r.Details,
		fmt.Sprintf("weekly: %d connections swept in %s over %d ticks (each ~1/%d of an interval; batches of ≤%d), %d of them slots the first tick left; raw asynq %d tasks in %s with %d goroutines (probes on %d: %v)",
			swept, m.Wall.Round(time.Millisecond), rounds, rounds, cfg.BatchSize, left, n, raw.Wall.Round(time.Millisecond), best, probe, probes),
		"ratio by round: "+strings.Join(roundRatios, " "),
		"sweep "+m.perItem(swept),
		"raw   "+raw.perItem(n),
		fmt.Sprintf("by CPU (Go + Redis per connection, less sensitive to the machine's load): raw %s, sweep %s, ratio %.3f",
			raw.cpuPerItem(n), m.cpuPerItem(swept), m.cpuRatioOf(raw, n, swept)),
		"after the sweep: each tick left exactly the tasks it enqueued pending; 0 connections due one interval on (the cursor moved past every slot)",
		fmt.Sprintf("new connections (P1.new): %d due on demand since creation, swept in %s (%d claims of ≤%d, each taking them out of the on-demand index and marking them queued)",
			n, mNew.Wall.Round(time.Millisecond), (n+cfg.BatchSize-1)/cfg.BatchSize, cfg.BatchSize),
		"new   "+mNew.perItem(n),
		fmt.Sprintf("new connections by CPU: raw %s, sweep %s, ratio %.3f", raw.cpuPerItem(n), mNew.cpuPerItem(n), mNew.cpuRatio(raw, n)))
	newRate := float64(n) / mNew.Wall.Seconds()
	r.Subs = append(r.Subs, Result{ID: "P1.time", Name: "sweep-seconds", Value: m.Wall.Seconds(), Unit: "s",
		Goal: "≤ 60 s", Met: verdict(m.Wall <= 60*time.Second)},
		Result{ID: "P1.new", Name: "sweep-new-connections", Value: newRate, Unit: "conn/s", Baseline: rawRate, HasBase: true,
			Ratio: newRate / rawRate, HasRatio: true, Goal: "first checks of new connections, reported beside P1", Met: "-"})
	e.logf("P1: sweep %.0f/s (ratio %.3f)", sweepRate, r.Ratio)
	return r
}

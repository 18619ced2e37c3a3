package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/tasks"
	"github.com/checkd/checkd/worker"
)

// drainTimeout bounds how long a side of P2 may take before the measure
// gives up (it never ends a healthy run).
const drainTimeout = 15 * time.Minute

// runP2: processing. The same n check tasks are queued twice: once for a
// raw asynq server with a no-op handler, once for the worker (LoadCheck,
// sandbox user_good with zero latency, RecordCheck), same concurrency and
// queues. Time runs from the server's start to the n-th handled task.
func runP2(ctx context.Context, e *env) (r Result) {
	r = Result{ID: "P2", Name: "process", Unit: "checks/s", Goal: "ratio ≥ 0.7"}
	d := e.ds
	n := min(e.sz.Process, len(d.ids))
	conc := e.sz.ProcessConcurrency
	queues := worker.DefaultQueues()
	base := time.Now().Truncate(time.Hour).Add(24 * time.Hour) // distinct task IDs from the sweep's
	slotOf := func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
	opts := []asynq.Option{asynq.Queue(tasks.QueueDefault)}
	if err := flushAsynq(ctx, e.rdb); err != nil {
		r.Err = err
		return r
	}

	// Baseline: raw asynq server, no-op handler.
	if _, err := enqueueChecks(ctx, e.aq, d.ids[:n], n, slotOf, 16, opts...); err != nil {
		r.Err = err
		return r
	}
	var handled atomic.Int64
	all := make(chan struct{})
	count := func() {
		if handled.Add(1) == int64(n) {
			close(all)
		}
	}
	srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{Concurrency: conc, Queues: queues, Logger: e.quiet.WithField("c", "asynq"),
		LogLevel: asynq.WarnLevel})
	e.logf("P2: raw asynq server, no-op handler, concurrency %d, %d tasks", conc, n)
	stopProf := e.startProfile("P2-raw")
	m := startMeter(ctx, e.rdb, e.rt)
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { count(); return nil })); err != nil {
		stopProf()
		r.Err = err
		return r
	}
	if err := waitAll(ctx, all, &handled, n); err != nil {
		stopProf()
		srv.Shutdown()
		r.Err = fmt.Errorf("raw server: %w", err)
		return r
	}
	m.stop(ctx)
	stopProf()
	raw := m
	srv.Shutdown()
	rawRate := float64(n) / raw.Wall.Seconds()
	e.logf("P2: raw %.0f tasks/s", rawRate)
	if err := flushAsynq(ctx, e.rdb); err != nil {
		r.Err = err
		return r
	}

	// Measured: the worker, first on first checks (PENDING → CONNECTED, two
	// accounts discovered: every write a transition), then on the same
	// connections again (the usual weekly check: nothing changes).
	reg := checks.NewRegistry()
	if err := reg.Register(sandbox.Datasource, sandbox.New(sandbox.Options{})); err != nil {
		r.Err = err
		return r
	}
	batches := map[string]store.BatchStats{}
	runWorker := func(label string, slot func(int) time.Time) (*meter, error) {
		if _, err := enqueueChecks(ctx, e.aq, d.ids[:n], n, slot, 16, opts...); err != nil {
			return nil, err
		}
		var done, applied atomic.Int64
		all := make(chan struct{})
		w, err := worker.New(e.rdb, e.st, reg, worker.Config{Concurrency: conc, Queues: queues, Logger: e.info,
			OnCheck: func(ev worker.CheckEvent) {
				if ev.Outcome == store.Applied {
					applied.Add(1)
				}
				if done.Add(1) == int64(n) {
					close(all)
				}
			}})
		if err != nil {
			return nil, err
		}
		e.logf("P2: worker, %s, concurrency %d, %d checks", label, conc, n)
		stopProf := e.startProfile("P2-" + label)
		b0 := e.st.BatchStats()
		m := startMeter(ctx, e.rdb, e.rt)
		if err := w.Start(ctx); err != nil {
			stopProf()
			return nil, err
		}
		err = waitAll(ctx, all, &done, n)
		m.stop(ctx)
		b1 := e.st.BatchStats()
		batches[label] = store.BatchStats{Calls: b1.Calls - b0.Calls, Batches: b1.Batches - b0.Batches, Pipelined: b1.Pipelined - b0.Pipelined, Windows: b1.Windows - b0.Windows}
		stopProf()
		_ = w.Stop(ctx)
		if err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
		if int(applied.Load()) != n {
			return nil, fmt.Errorf("%s: %d of %d checks applied", label, applied.Load(), n)
		}
		return m, flushAsynq(ctx, e.rdb)
	}
	m, err := runWorker("first", slotOf)
	if err != nil {
		r.Err = err
		return r
	}
	if d.checked < n {
		d.checked = n
	}
	steady, err := runWorker("steady", func(i int) time.Time { return slotOf(i).Add(time.Hour) })
	if err != nil {
		r.Err = err
		return r
	}
	rate := float64(n) / m.Wall.Seconds()
	r.Value, r.Baseline, r.HasBase, r.Ratio, r.HasRatio = rate, rawRate, true, rate/rawRate, true
	r.Met = verdict(r.Ratio >= 0.7)
	srate := float64(n) / steady.Wall.Seconds()
	r.Subs = append(r.Subs, Result{ID: "P2.steady", Name: "process-steady", Value: srate, Unit: "checks/s",
		Baseline: rawRate, HasBase: true, Ratio: srate / rawRate, HasRatio: true, Goal: "ratio ≥ 0.7", Met: verdict(srate/rawRate >= 0.7)})
	r.Details = append(r.Details,
		fmt.Sprintf("%d first checks (PENDING → CONNECTED, 2 accounts discovered) in %s; the same %d again, nothing changing, in %s; raw no-op %d tasks in %s; concurrency %d, queues %v",
			n, m.Wall.Round(time.Millisecond), n, steady.Wall.Round(time.Millisecond), n, raw.Wall.Round(time.Millisecond), conc, queues),
		"worker, first checks "+m.perItem(n),
		"worker, steady       "+steady.perItem(n),
		"raw                  "+raw.perItem(n),
		fmt.Sprintf("store group commit (LoadCheck reads and record writes sharing round trips): first checks %s; steady %s",
			batchDetail(batches["first"]), batchDetail(batches["steady"])),
		fmt.Sprintf("asynq's processor dequeues one task at a time (%.2f dequeue calls per task): mean dequeue call latency raw %s, worker first %s, steady %s; raw spends %s of wall time per task, the worker %s",
			float64(raw.Dequeues)/float64(n), raw.dequeueLatency().Round(100*time.Nanosecond), m.dequeueLatency().Round(100*time.Nanosecond),
			steady.dequeueLatency().Round(100*time.Nanosecond), (raw.Wall/time.Duration(n)).Round(100*time.Nanosecond), (m.Wall/time.Duration(n)).Round(100*time.Nanosecond)),
		fmt.Sprintf("by CPU (Go + Redis per check, less sensitive to the machine's load): raw %s, worker first %s (ratio %.3f), steady %s (ratio %.3f)",
			raw.cpuPerItem(n), m.cpuPerItem(n), m.cpuRatio(raw, n), steady.cpuPerItem(n), steady.cpuRatio(raw, n)))
	return r
}

// batchDetail describes the store's group commit over one run.
func batchDetail(b store.BatchStats) string {
	if b.Batches == 0 {
		return "no script calls"
	}
	return fmt.Sprintf("%d script calls in %d round trips (%.2f per round trip; %.0f%% of calls shared one; %d round trips waited for company)",
		b.Calls, b.Batches, float64(b.Calls)/float64(b.Batches), 100*float64(b.Pipelined)/float64(b.Calls), b.Windows)
}

// waitAll waits for all to close, bounded by drainTimeout.
func waitAll(ctx context.Context, all <-chan struct{}, done *atomic.Int64, n int) error {
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-all:
		return nil
	case <-t.C:
		return fmt.Errorf("only %d of %d handled in %s", done.Load(), n, drainTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

package bench

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/worker"
)

// drainTimeout bounds how long a side of P2 may take before the measure
// gives up (it never ends a healthy run).
const drainTimeout = 15 * time.Minute

// runP2: processing. Check tasks are processed by a raw asynq server with
// a no-op handler and by the worker (LoadCheck, sandbox user_good with zero
// latency, RecordCheck), same concurrency and queues, in ProcessRounds
// alternating rounds: each round gives raw asynq n/rounds tasks, the worker
// the first checks of n/rounds fresh connections (PENDING → CONNECTED, two
// accounts discovered: every write a transition), then the same
// connections again (the usual weekly check: nothing changes). Raw runs
// first in even rounds and last in odd ones, so a machine that slows down
// or speeds up during the run weighs on both sides alike. Each side's rate
// is its tasks over the sum of its rounds' times, each timed from the
// server's start to the round's last handled task.
//
// P2.http runs in the same rounds, next to the first checks: the first
// checks of other fresh connections through the HTTP checker, against the
// sandbox served over the protocol by an in-process checker service (the
// reference service's handler on a loopback port), so its ratio to the
// in-process first checks is the protocol's cost: encoding, signing and
// verifying, the HTTP round trip and the decoding, on both sides.
func runP2(ctx context.Context, e *env) (r Result) {
	r = Result{ID: "P2", Name: "process", Unit: "checks/s", Goal: "ratio ≥ 0.7"}
	d := e.ds
	rounds := max(e.sz.ProcessRounds, 1)
	per := min(e.sz.Process, len(d.ids)/3) / rounds // a third each for P2.nomemo and P2.http
	if per == 0 {
		r.Err = fmt.Errorf("%d checks cannot be split into %d rounds", e.sz.Process, rounds)
		return r
	}
	n := per * rounds
	conc := e.sz.ProcessConcurrency
	wcfg := worker.ConfigFrom(configs.Default())               // the daemon's worker settings
	base := time.Now().Truncate(time.Hour).Add(24 * time.Hour) // distinct task IDs from the sweep's
	opts := []asynq.Option{asynq.Queue(tasks.QueueDefault)}
	if err := flushAsynq(ctx, e.rdb); err != nil {
		r.Err = err
		return r
	}
	reg := checks.NewRegistry()
	if err := reg.Register(sandbox.Datasource, sandbox.New(sandbox.Options{})); err != nil {
		r.Err = err
		return r
	}
	secret := newSecret()
	svc, err := startCheckerServer(0, secret)
	if err != nil {
		r.Err = err
		return r
	}
	defer svc.stop()
	httpReg, httpChecker, err := httpRegistry(svc.URL, secret, conc)
	if err != nil {
		r.Err = err
		return r
	}
	defer httpChecker.CloseIdleConnections()

	// runAsynq: a raw asynq server over ids' tasks whose handler runs work
	// (nil: nothing) and counts the task.
	runAsynq := func(ids []string, slotOf func(int) time.Time, label string, work func(context.Context, *asynq.Task) error) (*meter, error) {
		if _, err := enqueueChecks(ctx, e.aq, ids, len(ids), slotOf, 16, opts...); err != nil {
			return nil, err
		}
		var handled atomic.Int64
		all := make(chan struct{})
		srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{Concurrency: conc, Queues: wcfg.Queues, Logger: e.quiet.WithField("c", "asynq"),
			LogLevel: asynq.WarnLevel})
		stopProf := e.startProfile(label)
		defer stopProf()
		m := startMeter(ctx, e.rdb, e.rt)
		if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			if work != nil {
				if err := work(ctx, t); err != nil {
					return err
				}
			}
			if handled.Add(1) == int64(len(ids)) {
				close(all)
			}
			return nil
		})); err != nil {
			return nil, err
		}
		err := waitAll(ctx, all, &handled, len(ids))
		m.stop(ctx)
		srv.Shutdown()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		return m, flushAsynq(ctx, e.rdb)
	}
	// runRaw: raw asynq with a no-op handler.
	runRaw := func(ids []string, slotOf func(int) time.Time, round int) (*meter, error) {
		return runAsynq(ids, slotOf, fmt.Sprintf("P2-raw-%d", round), nil)
	}
	// runFloor (experiment, -p2-floor): raw asynq whose handler reads and
	// writes one Redis key per task (GET then SET of the connection's
	// record, unbatched): the least a check that records its result does.
	runFloor := func(ids []string, slotOf func(int) time.Time, round int) (*meter, error) {
		m, err := runAsynq(ids, slotOf, fmt.Sprintf("P2-floor-%d", round), func(ctx context.Context, t *asynq.Task) error {
			p, err := tasks.ParseCheckPayload(t.Payload())
			if err != nil {
				return err
			}
			v, err := e.rdb.Get(ctx, prefix+"c:"+p.ConnectionID).Result()
			if err != nil {
				return err
			}
			return e.rdb.Set(ctx, "floor:"+p.ConnectionID, v, 0).Err()
		})
		if err != nil {
			return nil, err
		}
		_, err = deletePattern(ctx, e.rdb, "floor:*")
		return m, err
	}
	// runWorker: the worker over ids' tasks; every check must be applied.
	batches := map[string]store.BatchStats{}
	runWorker := func(ids []string, slotOf func(int) time.Time, label string, round int, recheck time.Duration, reg *checks.Registry) (*meter, error) {
		if _, err := enqueueChecks(ctx, e.aq, ids, len(ids), slotOf, 16, opts...); err != nil {
			return nil, err
		}
		var done, applied atomic.Int64
		all := make(chan struct{})
		cfg := wcfg
		cfg.Concurrency, cfg.Logger, cfg.EmptyQueueRecheck = conc, e.info, recheck
		cfg.OnCheck = func(ev worker.CheckEvent) {
			if ev.Outcome == store.Applied {
				applied.Add(1)
			}
			if done.Add(1) == int64(len(ids)) {
				close(all)
			}
		}
		w, err := worker.New(e.rdb, e.st, reg, cfg)
		if err != nil {
			return nil, err
		}
		stopProf := e.startProfile(fmt.Sprintf("P2-%s-%d", label, round))
		defer stopProf()
		b0 := e.st.BatchStats()
		m := startMeter(ctx, e.rdb, e.rt)
		if err := w.Start(ctx); err != nil {
			return nil, err
		}
		err = waitAll(ctx, all, &done, len(ids))
		m.stop(ctx)
		b1 := e.st.BatchStats()
		b := batches[label]
		batches[label] = store.BatchStats{Calls: b.Calls + b1.Calls - b0.Calls, Batches: b.Batches + b1.Batches - b0.Batches,
			Pipelined: b.Pipelined + b1.Pipelined - b0.Pipelined, Windows: b.Windows + b1.Windows - b0.Windows}
		_ = w.Stop(ctx)
		if err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
		if int(applied.Load()) != len(ids) {
			return nil, fmt.Errorf("%s: %d of %d checks applied", label, applied.Load(), len(ids))
		}
		return m, flushAsynq(ctx, e.rdb)
	}

	e.logf("P2: %d rounds of %d tasks each for raw asynq (no-op handler), worker first checks and worker steady checks; concurrency %d",
		rounds, per, conc)
	raw, first, steady, floor, nomemo, overHTTP := &meter{}, &meter{}, &meter{}, &meter{}, &meter{}, &meter{}
	var roundRatios []string
	for k := range rounds {
		ids := d.ids[k*per : (k+1)*per]
		// P2.nomemo: the first checks of other fresh connections, with the
		// worker's empty-queue memo off (every dequeue asks Redis, as raw
		// asynq's does).
		ids2 := d.ids[n+k*per : n+(k+1)*per]
		// P2.http: the first checks of a third set, through the HTTP checker.
		ids3 := d.ids[2*n+k*per : 2*n+(k+1)*per]
		slotOf := func(i int) time.Time { return base.Add(time.Duration(k*per+i) * time.Millisecond) }
		var mr, mf, ms, mn, mh *meter
		var err error
		doRaw := func() {
			if err == nil {
				mr, err = runRaw(ids, slotOf, k+1)
			}
		}
		doNoMemo := func() {
			if err == nil {
				mn, err = runWorker(ids2, slotOf, "nomemo", k+1, 0, reg)
			}
		}
		doHTTP := func() {
			if err == nil {
				mh, err = runWorker(ids3, slotOf, "http", k+1, wcfg.EmptyQueueRecheck, httpReg)
			}
		}
		if k%2 == 0 {
			doRaw()
			doNoMemo()
		} else {
			doHTTP()
		}
		if err == nil {
			mf, err = runWorker(ids, slotOf, "first", k+1, wcfg.EmptyQueueRecheck, reg)
		}
		if err == nil {
			ms, err = runWorker(ids, func(i int) time.Time { return slotOf(i).Add(time.Hour) }, "steady", k+1, wcfg.EmptyQueueRecheck, reg)
		}
		if k%2 == 1 {
			doNoMemo()
			doRaw()
		} else {
			doHTTP()
		}
		if err == nil && e.sz.ProcessFloor {
			var mfl *meter
			if mfl, err = runFloor(ids, func(i int) time.Time { return slotOf(i).Add(2 * time.Hour) }, k+1); err == nil {
				floor.add(mfl)
			}
		}
		if err != nil {
			r.Err = fmt.Errorf("round %d: %w", k+1, err)
			return r
		}
		raw.add(mr)
		first.add(mf)
		steady.add(ms)
		nomemo.add(mn)
		overHTTP.add(mh)
		roundRatios = append(roundRatios, fmt.Sprintf("%.3f/%.3f/%.3f/%.3f", mr.Wall.Seconds()/mf.Wall.Seconds(), mr.Wall.Seconds()/ms.Wall.Seconds(),
			mr.Wall.Seconds()/mn.Wall.Seconds(), mf.Wall.Seconds()/mh.Wall.Seconds()))
		e.logf("P2: round %d: raw %.0f/s, first %.0f/s, steady %.0f/s, first with the memo off %.0f/s, first over HTTP %.0f/s", k+1,
			float64(per)/mr.Wall.Seconds(), float64(per)/mf.Wall.Seconds(), float64(per)/ms.Wall.Seconds(), float64(per)/mn.Wall.Seconds(),
			float64(per)/mh.Wall.Seconds())
	}
	d.checked = max(d.checked, 3*n)

	rawRate := float64(n) / raw.Wall.Seconds()
	rate := float64(n) / first.Wall.Seconds()
	r.Value, r.Baseline, r.HasBase, r.Ratio, r.HasRatio = rate, rawRate, true, rate/rawRate, true
	r.Met = verdict(r.Ratio >= 0.7)
	srate := float64(n) / steady.Wall.Seconds()
	r.Subs = append(r.Subs, Result{ID: "P2.steady", Name: "process-steady", Value: srate, Unit: "checks/s",
		Baseline: rawRate, HasBase: true, Ratio: srate / rawRate, HasRatio: true, Goal: "ratio ≥ 0.7", Met: verdict(srate/rawRate >= 0.7)})
	nrate := float64(n) / nomemo.Wall.Seconds()
	r.Subs = append(r.Subs, Result{ID: "P2.nomemo", Name: "process-memo-off", Value: nrate, Unit: "checks/s",
		Baseline: rawRate, HasBase: true, Ratio: nrate / rawRate, HasRatio: true, Goal: "none: the memo's share of P2", Met: "-"})
	hrate := float64(n) / overHTTP.Wall.Seconds()
	r.Subs = append(r.Subs, Result{ID: "P2.http", Name: "process-http-checker", Value: hrate, Unit: "checks/s",
		Baseline: rate, HasBase: true, Ratio: hrate / rate, HasRatio: true, Goal: "ratio to P2 (in-process) ≥ 0.6", Met: verdict(hrate/rate >= 0.6)})
	if e.sz.ProcessFloor {
		frate := float64(n) / floor.Wall.Seconds()
		r.Details = append(r.Details, fmt.Sprintf("floor (experiment): raw asynq whose handler GETs and SETs one key: %.0f/s, ratio %.3f; CPU ratio %.3f; ",
			frate, frate/rawRate, floor.cpuRatio(raw, n))+floor.perItem(n))
	}
	r.Details = append(r.Details,
		fmt.Sprintf("%d first checks (PENDING → CONNECTED, 2 accounts discovered) in %s; the same %d again, nothing changing, in %s; raw no-op %d tasks in %s; %d alternating rounds of %d; concurrency %d, queues %v",
			n, first.Wall.Round(time.Millisecond), n, steady.Wall.Round(time.Millisecond), n, raw.Wall.Round(time.Millisecond), rounds, per, conc, wcfg.Queues),
		"ratio by round (first/steady/first with the memo off to raw; first over HTTP to first): "+strings.Join(roundRatios, " "),
		"worker, first checks "+first.perItem(n),
		"worker, steady       "+steady.perItem(n),
		"worker, memo off     "+nomemo.perItem(n),
		"worker, over HTTP    "+overHTTP.perItem(n),
		"raw                  "+raw.perItem(n),
		fmt.Sprintf("store group commit (LoadCheck reads and record writes sharing round trips): first checks %s; steady %s",
			batchDetail(batches["first"]), batchDetail(batches["steady"])),
		fmt.Sprintf("asynq's processor dequeues one task at a time, asking the queues in a weighted random order until one has a task: dequeue calls reaching Redis per task raw %.2f, worker first %.2f, steady %.2f, memo off %.2f (the worker's memo answers for a queue found empty less than %s ago while another hands out tasks); mean dequeue call latency raw %s, worker first %s, steady %s, memo off %s; wall time per task raw %s, worker first %s, memo off %s",
			float64(raw.Dequeues)/float64(n), float64(first.Dequeues)/float64(n), float64(steady.Dequeues)/float64(n), float64(nomemo.Dequeues)/float64(n),
			wcfg.EmptyQueueRecheck,
			raw.dequeueLatency().Round(100*time.Nanosecond), first.dequeueLatency().Round(100*time.Nanosecond),
			steady.dequeueLatency().Round(100*time.Nanosecond), nomemo.dequeueLatency().Round(100*time.Nanosecond),
			(raw.Wall/time.Duration(n)).Round(100*time.Nanosecond), (first.Wall/time.Duration(n)).Round(100*time.Nanosecond), (nomemo.Wall/time.Duration(n)).Round(100*time.Nanosecond)),
		fmt.Sprintf("by CPU (Go + Redis per check, less sensitive to the machine's load): raw %s, worker first %s (ratio %.3f), steady %s (ratio %.3f), memo off %s (ratio %.3f)",
			raw.cpuPerItem(n), first.cpuPerItem(n), first.cpuRatio(raw, n), steady.cpuPerItem(n), steady.cpuRatio(raw, n), nomemo.cpuPerItem(n), nomemo.cpuRatio(raw, n)),
		fmt.Sprintf("P2.http: %d first checks through the HTTP checker (checks/httpcheck) against the sandbox served over the protocol in this process (the reference service's handler on a loopback port, zero latency; both sides' CPU counted) in %s, %d connections kept alive; CPU per check %s, %.3f of the in-process first check's %s; ratio to in-process first checks by round in the line above",
			n, overHTTP.Wall.Round(time.Millisecond), conc, overHTTP.cpuPerItem(n), float64(overHTTP.cpuPerItem(n))/float64(first.cpuPerItem(n)), first.cpuPerItem(n)))
	return r
}

// batchDetail describes the store's group commit over one run.
func batchDetail(b store.BatchStats) string {
	if b.Batches == 0 {
		return "no calls"
	}
	return fmt.Sprintf("%d calls in %d round trips (%.2f per round trip; %.0f%% of calls shared one; %d round trips waited for company)",
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

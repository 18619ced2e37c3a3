package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// advanceTimeout bounds one acknowledgement (and releasing the sweep lock).
const advanceTimeout = 30 * time.Second

// Tick enqueues a check task for every connection due at now (at most
// MaxPerTick), with EnqueueConcurrency goroutines: first the on-demand due
// index (new, reactivated and retried connections), then the weekly
// schedule from the sweep cursor to now (store.BeginSweep; skipped while
// another scheduler sweeps it). Connections whose enqueue failed come due
// again: on-demand claims after their lease, weekly slots on the next tick.
//
// Reading the next batch overlaps enqueueing the current one, and
// acknowledging a finished batch overlaps both. Tick is synchronous (tests
// drive a simulated week with it) and ticks of one Scheduler run one at a
// time. The error reports a failed claim or acknowledgement; failed
// enqueues are counted in TickStats.Failed and logged.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) (TickStats, error) {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	return s.tick(ctx, now)
}

// batch is one claim round in flight. Every enqueuer gets the batch and
// takes items by an atomic cursor: a few channel operations per batch
// instead of one per item, and no goroutine wake-up per item.
type batch struct {
	items   []store.DueItem
	ok      []bool       // ok[i]: items[i]'s task is queued (new or already)
	next    atomic.Int64 // cursor: the next item to take
	pending atomic.Int64 // items not yet tried; the enqueuer taking it to 0 hands the batch on
}

// enqueueFailure is the first failed enqueue of a tick, logged with its IDs.
type enqueueFailure struct {
	connID, taskID string
	err            error
}

// tickRun accumulates one tick's outcome across its sources.
type tickRun struct {
	enqueued, already, failed atomic.Int64
	failMu                    sync.Mutex
	firstFail                 *enqueueFailure
}

// tick is Tick without the lock.
func (s *Scheduler) tick(ctx context.Context, now time.Time) (TickStats, error) {
	began := time.Now() // wall time: Duration measures work, not the simulated clock
	var (
		stats TickStats
		run   tickRun
		errs  []error
	)
	onDemand := s.st.SweepOnDemand(now, s.cfg.Lease)
	remaining, err := s.drain(ctx, onDemand, s.cfg.MaxPerTick, &stats, &run)
	err = errors.Join(err, onDemand.End(ctx))
	if err != nil {
		errs = append(errs, err)
	}
	if remaining > 0 && err == nil {
		if err := s.sweepWeekly(ctx, now, remaining, onDemand, &stats, &run); err != nil {
			errs = append(errs, err)
		}
	}
	n, err := s.recheck(ctx, now)
	stats.Rechecked = n
	if err != nil {
		errs = append(errs, err)
	}
	stats.Enqueued, stats.AlreadyQueued, stats.Failed = int(run.enqueued.Load()), int(run.already.Load()), int(run.failed.Load())
	stats.Duration = time.Since(began)
	s.report(stats, run.firstFail)
	if s.cfg.OnTick != nil {
		s.cfg.OnTick(stats)
	}
	if len(errs) > 0 {
		return stats, fmt.Errorf("tick at %s: %w", now.UTC().Format(time.RFC3339), errors.Join(errs...))
	}
	return stats, nil
}

// sweepWeekly enqueues the weekly slots from the sweep cursor to now, at
// most limit, unless another scheduler is sweeping. A connection the tick's
// on-demand sweep claimed is not enqueued a second time (store.SkipServed).
func (s *Scheduler) sweepWeekly(ctx context.Context, now time.Time, limit int, onDemand *store.Sweep, stats *TickStats, run *tickRun) error {
	sw, err := s.st.BeginSweep(ctx, now, s.cfg.Lease)
	if err != nil || sw == nil {
		return err
	}
	sw.SkipServed(onDemand)
	_, err = s.drain(ctx, sw, limit, stats, run)
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), advanceTimeout)
	defer cancel()
	return errors.Join(err, sw.End(ectx))
}

// drain claims batches from src, at most limit items, enqueues them and
// acknowledges each batch; it returns how many of limit are left.
func (s *Scheduler) drain(ctx context.Context, src *store.Sweep, limit int, stats *TickStats, run *tickRun) (int, error) {
	var (
		work     chan *batch
		done     chan *batch
		workers  sync.WaitGroup
		ackErr   = make(chan error, 1)
		ackFail  atomic.Bool
		claimErr error
	)

	// start spins the enqueuers and the acknowledger up on the first
	// non-empty claim, so a tick with nothing due starts no goroutines.
	var n int // enqueuers
	start := func(firstLen int, short bool) {
		n = s.cfg.EnqueueConcurrency
		if short { // the only batch: no more enqueuers than items
			n = min(n, firstLen)
		}
		work = make(chan *batch, n)                                // one batch ahead: the next claim overlaps this batch's enqueues
		done = make(chan *batch, min(limit/s.cfg.BatchSize+2, 64)) // enqueuers rarely wait for the acknowledger
		for range n {
			workers.Go(func() { s.enqueueBatches(ctx, work, done, run) })
		}
		go func() { ackErr <- s.acknowledge(ctx, src, done, &ackFail) }()
	}

	remaining := limit
	for remaining > 0 && !ackFail.Load() {
		want := min(s.cfg.BatchSize, remaining)
		items, err := src.Next(ctx, want)
		if err != nil {
			claimErr = err
			break
		}
		if len(items) == 0 {
			break
		}
		short := len(items) < want && src.Done() // the last batch: no need to ask again
		if work == nil {
			start(len(items), short)
		}
		stats.Claimed += len(items)
		remaining -= len(items)
		b := &batch{items: items, ok: make([]bool, len(items))}
		b.pending.Store(int64(len(items)))
		for range n {
			work <- b // blocks while the enqueuers are a batch behind: bounded claim-ahead
		}
		if short {
			break
		}
		stats.Truncated = remaining <= 0
	}

	var err error
	if work != nil {
		close(work)
		workers.Wait()
		close(done)
		err = <-ackErr
	}
	return max(remaining, 0), errors.Join(claimErr, err)
}

// enqueueBatches enqueues the items of each batch from work, handing a
// batch to done once every item was tried.
func (s *Scheduler) enqueueBatches(ctx context.Context, work <-chan *batch, done chan<- *batch, run *tickRun) {
	var ne, na, nf int64
	for b := range work {
		for {
			i := int(b.next.Add(1) - 1)
			if i >= len(b.items) {
				break
			}
			it := b.items[i]
			task, err := tasks.NewCheckTask(it.ConnectionID, it.Slot, tasks.ReasonScheduled, s.opts...)
			if err == nil {
				_, err = s.enq.EnqueueContext(ctx, task)
			}
			switch {
			case err == nil:
				ne++
				b.ok[i] = true
			case errors.Is(err, asynq.ErrTaskIDConflict):
				na++
				b.ok[i] = true
			default:
				nf++
				run.failMu.Lock()
				if run.firstFail == nil {
					run.firstFail = &enqueueFailure{connID: it.ConnectionID, taskID: tasks.CheckTaskID(it.ConnectionID, it.Slot), err: err}
				}
				run.failMu.Unlock()
			}
			if b.pending.Add(-1) == 0 {
				done <- b
			}
		}
	}
	run.enqueued.Add(ne)
	run.already.Add(na)
	run.failed.Add(nf)
}

// acknowledge hands each finished batch to src.Ack, until done is closed.
// Acknowledging runs even when the tick's context is cancelled (bounded by
// advanceTimeout): an unacknowledged batch is offered again later and costs
// a second enqueue attempt, refused by asynq while it holds the task. After
// a failure the claim loop stops (failed is set) and the rest is drained.
func (s *Scheduler) acknowledge(ctx context.Context, src *store.Sweep, done <-chan *batch, failed *atomic.Bool) error {
	var errs []error
	for b := range done {
		if failed.Load() {
			continue
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), advanceTimeout)
		err := src.Ack(actx, b.items, b.ok)
		cancel()
		if err != nil {
			// Their tasks are queued; the batch is offered again later with
			// the same slots, so asynq refuses the duplicates.
			s.log.WithError(err).WithField("connections", len(b.items)).
				Error("could not acknowledge enqueued checks; they are offered again later")
			errs = append(errs, err)
			failed.Store(true)
		}
	}
	return errors.Join(errs...)
}

// report logs a tick: info when it enqueued something, debug otherwise.
func (s *Scheduler) report(st TickStats, fail *enqueueFailure) {
	l := s.log.WithFields(logrus.Fields{
		"claimed": st.Claimed, "enqueued": st.Enqueued, "already_queued": st.AlreadyQueued,
		"failed": st.Failed, "truncated": st.Truncated, "duration": st.Duration,
	})
	if fail != nil {
		l.WithError(fail.err).WithFields(logrus.Fields{"connection_id": fail.connID, "task_id": fail.taskID}).
			Warn("some check tasks could not be enqueued; those connections come due again after the lease (is Redis reachable?)")
	}
	switch {
	case st.Enqueued > 0:
		l.Info("tick enqueued checks")
	case st.Truncated:
		l.Info("tick reached MaxPerTick; the rest is enqueued by the next ticks")
	default:
		l.Debug("tick")
	}
}

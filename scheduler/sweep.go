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

	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/tasks"
)

// advanceTimeout bounds one AdvanceDue call. Acknowledging runs even when
// the tick's context is cancelled: an unacknowledged claim comes back after
// its lease and costs a second enqueue attempt (refused by asynq while it
// holds the task).
const advanceTimeout = 30 * time.Second

// Tick claims the connections due at now (at most MaxPerTick), enqueues a
// check task for each with EnqueueConcurrency goroutines, and moves every
// connection whose task was accepted to its next slot. Connections whose
// enqueue failed keep their lease and come due again when it ends.
//
// Claiming the next batch overlaps enqueueing the current one, and
// advancing a finished batch overlaps both. Tick is synchronous (tests drive
// a simulated week with it) and ticks of one Scheduler run one at a time.
// The error reports a failed claim or advance; failed enqueues are counted
// in TickStats.Failed and logged.
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

// tick is Tick without the lock.
func (s *Scheduler) tick(ctx context.Context, now time.Time) (TickStats, error) {
	began := time.Now() // wall time: Duration measures work, not the simulated clock
	leaseUntil := now.Add(s.cfg.Lease)
	var (
		stats                     TickStats
		enqueued, already, failed atomic.Int64
		failMu                    sync.Mutex
		firstFail                 *enqueueFailure
		work                      chan *batch
		done                      chan *batch
		workers                   sync.WaitGroup
		advErr                    = make(chan error, 1)
		claimErr                  error
	)

	// start spins the enqueuers and the advancer up on the first non-empty
	// claim, so a tick with nothing due costs one round trip and no goroutines.
	var n int // enqueuers
	start := func(firstLen int, short bool) {
		n = s.cfg.EnqueueConcurrency
		if short { // the only batch: no more enqueuers than items
			n = min(n, firstLen)
		}
		work = make(chan *batch, n)                                           // one batch ahead: the next claim overlaps this batch's enqueues
		done = make(chan *batch, min(s.cfg.MaxPerTick/s.cfg.BatchSize+2, 64)) // enqueuers rarely wait for the advancer
		for range n {
			workers.Go(func() {
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
							failMu.Lock()
							if firstFail == nil {
								firstFail = &enqueueFailure{connID: it.ConnectionID, taskID: tasks.CheckTaskID(it.ConnectionID, it.Slot), err: err}
							}
							failMu.Unlock()
						}
						if b.pending.Add(-1) == 0 {
							done <- b
						}
					}
				}
				enqueued.Add(ne)
				already.Add(na)
				failed.Add(nf)
			})
		}
		go func() { advErr <- s.advance(ctx, done, leaseUntil, now) }()
	}

	for remaining := s.cfg.MaxPerTick; remaining > 0; {
		want := min(s.cfg.BatchSize, remaining)
		items, err := s.st.ClaimDue(ctx, now, leaseUntil, want)
		if err != nil {
			claimErr = fmt.Errorf("tick at %s: %w", now.UTC().Format(time.RFC3339), err)
			break
		}
		if len(items) == 0 {
			break
		}
		short := len(items) < want
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
		stats.Truncated = remaining == 0
	}

	var advanceErr error
	if work != nil {
		close(work)
		workers.Wait()
		close(done)
		advanceErr = <-advErr
	}
	stats.Enqueued, stats.AlreadyQueued, stats.Failed = int(enqueued.Load()), int(already.Load()), int(failed.Load())
	stats.Duration = time.Since(began)
	s.report(stats, firstFail)
	if s.cfg.OnTick != nil {
		s.cfg.OnTick(stats)
	}
	return stats, errors.Join(claimErr, advanceErr)
}

// advance moves each finished batch's queued connections to their next
// slot, until done is closed.
func (s *Scheduler) advance(ctx context.Context, done <-chan *batch, leaseUntil, now time.Time) error {
	var errs []error
	var buf []store.DueItem // reused across batches
	for b := range done {
		buf = buf[:0]
		for i, ok := range b.ok {
			if ok {
				buf = append(buf, b.items[i])
			}
		}
		if len(buf) == 0 {
			continue
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), advanceTimeout)
		_, err := s.st.AdvanceDue(actx, buf, leaseUntil, now)
		cancel()
		if err != nil {
			// Their tasks are queued; the claim comes back after the lease
			// with the same slots, so asynq refuses the duplicates.
			s.log.WithError(err).WithField("connections", len(buf)).
				Error("could not acknowledge enqueued checks; they are offered again after the lease")
			errs = append(errs, err)
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

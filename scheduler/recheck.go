package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// recheck enqueues again, at once, the checks not attempted while their
// datasource was DOWN, once its outage breaker closed: at most
// Config.RecheckPerTick a tick (the rest on the next ticks), through
// OnDemand.EnqueueNow like any on-demand check. A connection whose enqueue
// failed stays listed for the next tick.
func (s *Scheduler) recheck(ctx context.Context, now time.Time) (int, error) {
	if s.cfg.RecheckPerTick <= 0 {
		return 0, nil
	}
	todo, err := s.st.TakeNotAttempted(ctx, s.cfg.RecheckPerTick)
	if err != nil || len(todo) == 0 {
		return 0, err
	}
	done := todo[:0:0]
	var firstErr error
	for _, c := range todo {
		if _, err := s.onDemand.EnqueueNow(ctx, c.ConnectionID, time.Time{}, tasks.ReasonBreakerClosed); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("enqueue the re-check of %s: %w", c.ConnectionID, err)
			}
			continue
		}
		done = append(done, c) // enqueued, or one already queued: either is its check
	}
	if err := s.st.DoneNotAttempted(ctx, done); err != nil {
		return len(done), err
	}
	s.log.WithFields(logrus.Fields{"rechecked": len(done), "failed": len(todo) - len(done)}).
		Info("checks not attempted while their datasource was down enqueued again")
	return len(done), firstErr
}

// recheckOnDemand builds the OnDemand of the re-checks: the scheduler's
// enqueuer, clock and task options (OnDemand puts them on the critical
// queue).
func recheckOnDemand(st *store.Store, enq Enqueuer, cfg Config) (*OnDemand, error) {
	return NewOnDemand(st, enq, cfg.Clock, asynqOpts(cfg)...)
}

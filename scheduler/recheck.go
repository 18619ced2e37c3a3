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
// Config.RecheckPerTick a tick, through OnDemand.EnqueueNow like any
// on-demand check. A connection stays listed until its check is attempted
// (the worker forgets it then), so one whose re-check was not enqueued,
// was deduplicated against a check still in flight (the very one not
// attempted, say) or was skipped is enqueued again on a later tick. One
// whose check is queued already costs a queued-mark lookup and is passed
// over: a tick looks at up to recheckLook × RecheckPerTick listed
// connections, so those still queued from the last tick do not hold back
// the rest.
func (s *Scheduler) recheck(ctx context.Context, now time.Time) (int, error) {
	if s.cfg.RecheckPerTick <= 0 {
		return 0, nil
	}
	todo, err := s.st.TakeNotAttempted(ctx, recheckLook*s.cfg.RecheckPerTick, now)
	if err != nil || len(todo) == 0 {
		return 0, err
	}
	var enqueued, failed int
	var firstErr error
	for _, c := range todo {
		if enqueued == s.cfg.RecheckPerTick {
			break
		}
		e, err := s.onDemand.EnqueueNow(ctx, c.ConnectionID, time.Time{}, tasks.ReasonBreakerClosed)
		switch {
		case err != nil:
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("enqueue the re-check of %s: %w", c.ConnectionID, err)
			}
		case e.Enqueued:
			enqueued++
		}
	}
	if enqueued > 0 || failed > 0 {
		s.log.WithFields(logrus.Fields{"rechecked": enqueued, "failed": failed}).
			Info("checks not attempted while their datasource was down enqueued again")
	}
	return enqueued, firstErr
}

// recheckLook is how many listed connections a tick looks at for each
// re-check it may enqueue.
const recheckLook = 4

// recheckOnDemand builds the OnDemand of the re-checks: the scheduler's
// enqueuer, clock and task options (OnDemand puts them on the critical
// queue).
func recheckOnDemand(st *store.Store, enq Enqueuer, cfg Config) (*OnDemand, error) {
	return NewOnDemand(st, enq, cfg.Clock, asynqOpts(cfg)...)
}

package worker

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/store"
)

// Datasources are the per-datasource operations rules a worker applies
// around each check: health with the outage breaker, and concurrency caps.
type Datasources struct {
	// Health gives a datasource's health rules; nil: health and the
	// breaker are off.
	Health func(ds string) store.HealthRules
	// MaxConcurrent gives a datasource's cap on checks running at once
	// across every worker (0: none); nil: no caps.
	MaxConcurrent func(ds string) int
	// SlotRetry is how long a check that found every slot of its
	// datasource held waits before its task is tried again (with up to as
	// much again of jitter); it does not count as a failed attempt
	// (datasources' slotRetry).
	SlotRetry time.Duration
	// SlotLease is how long a slot is held at most: a worker killed
	// during a check leaves its slot to come back after it. Longer than
	// a check can take (worker.checkTimeout and a margin).
	SlotLease time.Duration
}

// breakerFresh is how long a worker trusts a closed breaker it read (with
// its last recorded outcome of that datasource) before asking again.
const breakerFresh = time.Second

// breakers caches each datasource's breaker as this worker last saw it.
type breakers struct {
	mu   sync.Mutex
	seen map[string]breakerSeen
}

type breakerSeen struct {
	b  store.Breaker
	at time.Time
}

func (c *breakers) get(ds string, now time.Time) (store.Breaker, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.seen[ds]
	return s.b, ok && (s.b.Open || now.Sub(s.at) < breakerFresh)
}

func (c *breakers) set(ds string, b store.Breaker, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]breakerSeen{}
	}
	c.seen[ds] = breakerSeen{b: b, at: now}
}

// admission decides, at now, whether a check of connID at ds runs: a
// probe, a check as usual, or not attempted with the result to record
// instead (started at now: the store lists the connection as not
// attempted at now, and an older check of it still running is stale
// against this one and does not end its listing).
func (w *Worker) admission(ctx context.Context, ds, connID string, now time.Time) (store.Admission, checks.Result, error) {
	if w.cfg.Datasources.Health == nil {
		return store.Admitted, checks.Result{}, nil
	}
	if b, fresh := w.brk.get(ds, now); fresh && !b.Open {
		return store.Admitted, checks.Result{}, nil
	}
	adm, b, err := w.st.AdmitCheck(ctx, ds, connID, w.cfg.Datasources.Health(ds), now)
	if err != nil {
		return 0, checks.Result{}, err
	}
	if adm == store.Admitted {
		w.brk.set(ds, store.Breaker{}, now)
	} else {
		w.brk.set(ds, b, now)
	}
	if adm == store.NotAttempted {
		return adm, checks.Result{Status: checks.ConnWebsiteDown, Detail: b.NotAttemptedDetail(ds)}, nil
	}
	return adm, checks.Result{}, nil
}

// recordOutcome adds the outcome of an attempted check that started at
// startedAt to its datasource's health window (the connection, if it was
// not attempted before then, no longer waits for its re-check) and logs a
// breaker that opened or closed. A failure only loses this outcome from
// the window (and may check the connection once more).
func (w *Worker) recordOutcome(ctx context.Context, ds, connID string, st checks.ConnectionStatus, startedAt time.Time, probe bool) {
	if w.cfg.Datasources.Health == nil {
		return
	}
	now := w.cfg.Clock.Now()
	b, change, err := w.st.RecordOutcome(ctx, ds, connID, w.cfg.Datasources.Health(ds), st, now.Sub(startedAt), probe, now)
	if err != nil {
		w.log.WithError(err).WithField("datasource", ds).Warn("could not record a check's outcome in the datasource's health window")
		return
	}
	w.brk.set(ds, b, now)
	switch change {
	case store.BreakerOpened:
		w.log.WithFields(logrus.Fields{"datasource": ds, "checks": b.Checks, "failed": b.Failed}).
			Warn("datasource DOWN: outage breaker open; its checks are recorded WEBSITE_DOWN without a login, but for a few probes a minute")
	case store.BreakerClosed:
		w.log.WithField("datasource", ds).Info("datasource back: a probe reached the website; outage breaker closed, the checks not attempted are enqueued again by the scheduler")
	}
	if w.cfg.OnBreaker != nil && change != store.BreakerKept {
		w.cfg.OnBreaker(ds, b)
	}
}

// attempt runs an admitted check of connection connID at datasource ds
// (a probe when probe) in one of the datasource's concurrency slots, and
// records its outcome in the datasource's health window. It returns the
// result and when the checker started, or the error for asynq: a
// checks.RetryAfterError when every slot is held, until the task has
// pushed it back for as long as a checker's Retry-After may (givenUp),
// when that is the result to record instead.
func (w *Worker) attempt(ctx context.Context, ds, connID, taskID string, slot time.Time, req checks.Request, probe bool) (checks.Result, time.Time, error) {
	release, err := w.takeSlot(ctx, ds, taskID)
	if err != nil {
		if isRetryAfter(err) {
			if res, ok := w.givenUp(ctx, slot, "no concurrency slot of the datasource was free", err); ok {
				return res, w.cfg.Clock.Now(), nil
			}
		}
		return checks.Result{}, time.Time{}, fmt.Errorf("check %s: %w", connID, err)
	}
	startedAt := w.cfg.Clock.Now()
	res, err := w.run(ctx, connID, taskID, slot, req)
	if release != nil {
		release()
	}
	if err != nil {
		return checks.Result{}, time.Time{}, err
	}
	w.recordOutcome(ctx, ds, connID, res.Status, startedAt, probe)
	return res, startedAt, nil
}

// skipped forgets a connection whose check was skipped as ineligible
// (deactivated, company inactive, credentials blocked) if it was waiting
// for its re-check after an outage: it needs none.
func (w *Worker) skipped(ctx context.Context, ds, connID string) {
	if w.cfg.Datasources.Health == nil {
		return
	}
	if err := w.st.DoneNotAttempted(ctx, []store.NotAttemptedConn{{Datasource: ds, ConnectionID: connID}}); err != nil {
		w.log.WithError(err).WithField("datasource", ds).Warn("could not forget a skipped connection's re-check; the scheduler enqueues it again")
	}
}

// errNoSlot is the reason of a check put back for want of a slot.
var errNoSlot = errors.New("every concurrency slot of the datasource is held")

// takeSlot takes a concurrency slot of ds for the check holder when ds is
// capped. It returns the release to call when the check ends (nil when
// uncapped), or a checks.RetryAfterError when every slot is held: the task
// goes back to its queue for about SlotRetry without holding a worker
// slot, and the attempt does not count as a failure.
func (w *Worker) takeSlot(ctx context.Context, ds, holder string) (func(), error) {
	if w.cfg.Datasources.MaxConcurrent == nil {
		return nil, nil
	}
	max := w.cfg.Datasources.MaxConcurrent(ds)
	if max <= 0 {
		return nil, nil
	}
	ok, err := w.st.AcquireSlot(ctx, ds, holder, max, w.cfg.Datasources.SlotLease, w.cfg.Clock.Now())
	if err != nil {
		return nil, err
	}
	if !ok {
		d := w.cfg.Datasources.SlotRetry
		d += time.Duration(mrand.Int64N(int64(d) + 1)) // spread the retries: they would all come back at once
		return nil, &checks.RetryAfterError{Delay: d, Err: fmt.Errorf("%w (%s: maxConcurrent %d)", errNoSlot, ds, max)}
	}
	return func() {
		if err := w.st.ReleaseSlot(context.WithoutCancel(ctx), ds, holder); err != nil {
			w.log.WithError(err).WithField("datasource", ds).Warn("could not release a concurrency slot; it comes back when its lease ends")
		}
	}, nil
}

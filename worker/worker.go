// Package worker runs checks: an asynq server whose check:connection handler
// loads a connection, re-applies the eligibility rules (an admin may have
// acted since the task was enqueued), runs the datasource's checker under a
// timeout, and records the result atomically in the store.
//
// Provider-side failures (bad password, website down, a checker that errs,
// panics or times out) are recorded statuses, never task failures. A task
// fails, and asynq retries it, only when the service itself could not do its
// part: Redis unreachable, or a checker error wrapping checks.ErrTemporary
// (on the last attempt that one is recorded as OTHER_ERROR instead). A
// checks.RetryAfterError (a checker's "busy, come back after N seconds") is
// retried after its delay without counting as a failed attempt: asynq's
// IsFailure and RetryDelayFunc; once the check's slot is one check interval
// old (the next slot's check is due), it is recorded as OTHER_ERROR instead. Check tasks carry one asynq retry more than
// the configured retries (tasks.AsynqMaxRetry), kept for those: asynq
// archives a failing task whose counter has reached its MaxRetry, counted
// or not. Retries are safe because the store applies each task ID once.
package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/startstop"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// Config configures a Worker. It has no defaults: New refuses a zero
// field unless its comment says what zero means. ConfigFrom builds one
// from checkd's configuration (whose defaults are configs/checkd.yaml's).
type Config struct {
	// Concurrency is how many checks run at once (worker.concurrency).
	Concurrency int
	// Queues maps queue names to weights, at least 1 each: how often the
	// worker asks each queue for a task relative to the others
	// (worker.queues).
	Queues map[string]int
	// CheckTimeout bounds one checker call; a check that overruns it is
	// recorded as WEBSITE_DOWN. Tasks should be enqueued with a longer
	// asynq timeout, or they are retried instead (worker.checkTimeout).
	CheckTimeout time.Duration
	// ShutdownTimeout is how long Stop lets in-flight checks finish before
	// asynq hands them back to the queue (worker.shutdownTimeout).
	ShutdownTimeout time.Duration
	// EmptyQueueRecheck is how long a queue that had no task is taken to
	// stay empty while another queue hands out tasks: asynq's dequeue asks
	// each queue in turn, and skipping the empty ones for this long takes
	// most of a busy worker's wasted dequeue round trips off Redis. A task
	// arriving in such a queue waits this long while the other queues keep
	// handing out tasks (if they all run dry meanwhile, asynq's idle poll
	// of about a second, as with asynq alone). 0: off, every dequeue asks
	// Redis, as asynq does (worker.emptyQueueRecheck).
	EmptyQueueRecheck time.Duration
	// Clock stamps check start and finish times. nil: the real clock.
	Clock clock.Clock
	// Logger receives one line per check and asynq's own logs. nil:
	// logrus.StandardLogger().
	Logger logrus.FieldLogger
	// OnCheck, when set, is called after every check that reached the store
	// (applied or dropped), e.g. for metrics. It runs on the handler's
	// goroutine, so it must be fast.
	OnCheck func(CheckEvent)
	// Datasources are the health, breaker and concurrency rules of each
	// datasource; the zero value turns them off.
	Datasources Datasources
	// OnBreaker, when set, is called when a datasource's outage breaker
	// opens or closes by an outcome this worker recorded.
	OnBreaker func(ds string, b store.Breaker)
}

// ConfigFrom returns the worker's settings in a checkd configuration: its
// worker section. The caller adds Clock, Logger and OnCheck.
func ConfigFrom(c configs.Config) Config {
	w := c.Worker
	cfg := Config{Concurrency: w.Concurrency, Queues: maps.Clone(w.Queues), CheckTimeout: w.CheckTimeout,
		ShutdownTimeout: w.ShutdownTimeout, EmptyQueueRecheck: w.EmptyQueueRecheck,
		Datasources: Datasources{SlotRetry: c.Health.SlotRetry, SlotLease: w.CheckTimeout + slotLeaseMargin}}
	for _, d := range c.Datasources {
		if d.MaxConcurrent > 0 { // caps on: MaxConcurrent set (see start)
			cfg.Datasources.MaxConcurrent = c.MaxConcurrent
		}
	}
	if c.Health.Enabled {
		cfg.Datasources.Health = c.HealthRules
	}
	return cfg
}

// validate refuses the zero values that mean nothing, naming the field.
func (c Config) validate() error {
	switch {
	case c.Concurrency <= 0:
		return fmt.Errorf("Config.Concurrency is %d; it must be positive (configs: worker.concurrency)", c.Concurrency)
	case len(c.Queues) == 0:
		return errors.New("Config.Queues is empty; give every queue to serve a weight (configs: worker.queues)")
	case c.CheckTimeout <= 0:
		return fmt.Errorf("Config.CheckTimeout is %s; it must be positive (configs: worker.checkTimeout)", c.CheckTimeout)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("Config.ShutdownTimeout is %s; it must be positive (configs: worker.shutdownTimeout)", c.ShutdownTimeout)
	case c.EmptyQueueRecheck < 0:
		return fmt.Errorf("Config.EmptyQueueRecheck is %s; use 0 (off) or more (configs: worker.emptyQueueRecheck)", c.EmptyQueueRecheck)
	}
	if c.Datasources.MaxConcurrent != nil && (c.Datasources.SlotRetry <= 0 || c.Datasources.SlotLease <= c.CheckTimeout) {
		return fmt.Errorf("Config.Datasources: with caps, SlotRetry (%s) must be positive and SlotLease (%s) longer than CheckTimeout (configs: health.slotRetry)",
			c.Datasources.SlotRetry, c.Datasources.SlotLease)
	}
	for q, w := range c.Queues {
		if q == "" || w < 1 {
			return fmt.Errorf("Config.Queues: queue %q has weight %d; give every queue a name and a weight of at least 1", q, w)
		}
	}
	return nil
}

// CheckEvent describes one check the worker ran and recorded.
type CheckEvent struct {
	ConnectionID string
	TaskID       string
	Datasource   string
	// Status is what the check found (the checker's result, or the status
	// the worker substituted for an error, panic or timeout).
	Status checks.ConnectionStatus
	// Outcome is what the store did with it; From and To are the
	// connection's status before and after.
	Outcome  store.Outcome
	From, To checks.ConnectionStatus
	// Duration is the time from the checker's start to the record, by the
	// configured clock.
	Duration time.Duration
}

// Worker is the asynq server of checkd and its check handler.
type Worker struct {
	rdb redis.UniversalClient
	st  *store.Store
	reg *checks.Registry
	cfg Config
	log logrus.FieldLogger
	// debugOn reports whether the logger keeps debug lines (same purpose).
	debugOn func() bool
	// infoOn reports whether the logger keeps info lines; when it does not,
	// the per-check line costs nothing, not even its fields map.
	infoOn func() bool

	brk breakers // each datasource's breaker as last seen

	life startstop.Lifecycle
	srv  *asynq.Server // set by Start
}

// slotLeaseMargin is how much longer than worker.checkTimeout a
// concurrency slot's lease lasts: recording the result after the checker
// returns.
const slotLeaseMargin = 30 * time.Second

// New returns a worker that checks connections of st with the checkers of
// reg, taking tasks from rdb. It does not touch Redis until Start. It
// fails, naming the field, on an incomplete Config.
func New(rdb redis.UniversalClient, st *store.Store, reg *checks.Registry, cfg Config) (*Worker, error) {
	if rdb == nil || st == nil || reg == nil {
		return nil, errors.New("worker: a redis client, a store and a checker registry are required")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	return &Worker{rdb: rdb, st: st, reg: reg, cfg: cfg, log: cfg.Logger,
		infoOn: levelEnabled(cfg.Logger, logrus.InfoLevel), debugOn: levelEnabled(cfg.Logger, logrus.DebugLevel)}, nil
}

// levelEnabled reads the logger's level at each call (an atomic load), so a
// level changed at run time takes effect.
func levelEnabled(l logrus.FieldLogger, lvl logrus.Level) func() bool {
	switch v := l.(type) {
	case *logrus.Logger:
		return func() bool { return v.IsLevelEnabled(lvl) }
	case *logrus.Entry:
		if v.Logger != nil {
			return func() bool { return v.Logger.IsLevelEnabled(lvl) }
		}
	case interface{ IsLevelEnabled(logrus.Level) bool }:
		return func() bool { return v.IsLevelEnabled(lvl) }
	}
	return func() bool { return true }
}

// Start starts the asynq server in the background: it serves check:connection
// tasks from the configured queues until Stop. A worker starts once.
func (w *Worker) Start(ctx context.Context) error {
	return w.life.Start("worker", func() error { return w.start(ctx) })
}

func (w *Worker) start(ctx context.Context) error {
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("worker: redis is unreachable (check CHECKD_REDIS_URL): %w", err)
	}
	// Handlers get the values of ctx but not its cancellation: a daemon's
	// signal context must not abort in-flight checks; Stop drains them.
	base := context.WithoutCancel(ctx)
	// Checks put back for want of a concurrency slot come back through
	// asynq's retry set, which asynq forwards to the queues every 5 s by
	// default: slots freed meanwhile would stay idle. Under caps the
	// forwarder runs every half SlotRetry.
	var delayed time.Duration
	if w.cfg.Datasources.MaxConcurrent != nil {
		delayed = w.cfg.Datasources.SlotRetry / 2
	}
	srv := asynq.NewServerFromRedisClient(w.asynqClient(), asynq.Config{
		DelayedTaskCheckInterval: delayed,
		Concurrency:              w.cfg.Concurrency,
		Queues:                   w.cfg.Queues,
		ShutdownTimeout:          w.cfg.ShutdownTimeout,
		BaseContext:              func() context.Context { return base },
		Logger:                   w.log.WithField("component", "asynq"),
		RetryDelayFunc:           retryDelay,
		IsFailure:                isFailure,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx)
			n, _ := asynq.GetRetryCount(ctx)
			e := w.log.WithFields(logrus.Fields{"taskId": id, "taskType": t.Type(), "retry": n}).WithError(err)
			if d, ok := checks.RetryAfter(err); ok {
				if errors.Is(err, errNoSlot) { // routine under a cap: not worth a line each
					e.WithField("retryAfterMs", d.Milliseconds()).Debug("no concurrency slot free; retrying then (not counted as a failed attempt)")
					return
				}
				e.WithField("retryAfterMs", d.Milliseconds()).Info("checker asked to retry later; retrying then (not counted as a failed attempt)")
				return
			}
			e.Warn("task failed")
		}),
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeCheckConnection, w.HandleCheck)
	// The store's group commit waits for company only while asynq has free
	// slots to bring it (store.AddCheckSlots).
	w.st.AddCheckSlots(w.cfg.Concurrency)
	if err := srv.Start(mux); err != nil {
		w.st.AddCheckSlots(-w.cfg.Concurrency)
		return fmt.Errorf("worker: start asynq server: %w", err)
	}
	w.srv = srv
	w.log.WithFields(logrus.Fields{"concurrency": w.cfg.Concurrency, "queues": w.cfg.Queues}).Info("worker started")
	return nil
}

// asynqClient is the Redis client of the worker's asynq server: the
// store's ServerClient, so asynq's completions (a script call per task)
// share round trips with the checks' store calls, with the empty-queue
// memo (pollClient) in front of the dequeue, which goes straight to Redis.
// At thousands of checks a second that takes a round trip per check off
// Redis: its per-call work is what backs the dequeue up when many checks
// end at once (BENCHMARKS.md, P6).
func (w *Worker) asynqClient() redis.UniversalClient {
	return newPollClient(w.st.ServerClient(), w.cfg.EmptyQueueRecheck, clock.Real{})
}

// Stop stops taking tasks and waits for in-flight checks, up to
// ShutdownTimeout (asynq then returns the unfinished ones to their queue) or
// until ctx is done. It is safe to call twice, concurrently, or before Start
// (startstop.Lifecycle); a stopped worker does not start again.
func (w *Worker) Stop(ctx context.Context) error {
	return w.life.Stop(ctx, "worker", w.stop)
}

func (w *Worker) stop(ctx context.Context) error {
	drained := make(chan struct{})
	go func() {
		w.srv.Shutdown()
		w.st.AddCheckSlots(-w.cfg.Concurrency)
		w.log.Info("worker stopped")
		close(drained)
	}()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("worker: stop: in-flight checks are still finishing: %w", ctx.Err())
	}
}

// maxDetail bounds a detail the worker writes from an error or panic text.
const maxDetail = 1024

// retryDelay is asynq's RetryDelayFunc: a checker's Retry-After, else
// asynq's exponential backoff.
func retryDelay(n int, err error, t *asynq.Task) time.Duration {
	if d, ok := checks.RetryAfter(err); ok {
		return d
	}
	return asynq.DefaultRetryDelayFunc(n, err, t)
}

// isFailure is asynq's IsFailure: a checker's Retry-After is not a failed
// attempt (asynq does not count it against the task's retries).
func isFailure(err error) bool { return !isRetryAfter(err) }

// HandleCheck is the check:connection handler (exported for tests and
// benchmarks). It returns nil when the check was recorded or had nothing to
// do, an error wrapping asynq.SkipRetry for a task that can never succeed
// or has no counted retry left, and any other error for asynq to retry.
func (w *Worker) HandleCheck(ctx context.Context, t *asynq.Task) error {
	err := w.handle(ctx, t)
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		return err
	}
	if !isRetryAfter(err) && lastAttempt(ctx) {
		// The retry asynq still has is kept for Retry-After (see the
		// package documentation): this failure was the last counted one.
		return fmt.Errorf("%w; no retry left: %w", err, asynq.SkipRetry)
	}
	return err
}

func (w *Worker) handle(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseCheckPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("check task: %w (enqueue checks with tasks.NewCheckTask); archived: %w", err, asynq.SkipRetry)
	}
	taskID, ok := asynq.GetTaskID(ctx)
	if !ok {
		taskID = tasks.CheckTaskID(p.ConnectionID, time.UnixMilli(p.Slot))
	}
	target, err := w.st.LoadCheck(ctx, p.ConnectionID)
	if errors.Is(err, store.ErrNotFound) {
		w.entry(p.ConnectionID, taskID).Info("connection not found; nothing to check")
		return nil
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", p.ConnectionID, err)
	}
	if target.Skip == checks.SkipNone && target.Served(time.UnixMilli(p.Slot)) {
		target.Skip = checks.SkipServed // no second login at the provider for one slot
	}
	if target.Skip != checks.SkipNone {
		if w.infoOn() {
			w.entry(p.ConnectionID, taskID).WithField("reason", string(target.Skip)).Info("check skipped")
		}
		w.clearQueued(ctx, p.ConnectionID, taskID)
		if target.Skip != checks.SkipServed {
			w.skipped(ctx, target.Connection.Datasource.Name, p.ConnectionID)
		}
		return nil
	}

	ds, slot := target.Request.Datasource, time.UnixMilli(p.Slot)
	startedAt := w.cfg.Clock.Now()
	adm, res, err := w.admission(ctx, ds, p.ConnectionID, startedAt)
	if err != nil {
		return fmt.Errorf("check %s: %w", p.ConnectionID, err)
	}
	if adm != store.NotAttempted {
		if res, startedAt, err = w.attempt(ctx, ds, p.ConnectionID, taskID, slot, target.Request, adm == store.Probe); err != nil {
			return err
		}
	}
	rec, err := w.st.RecordCheck(ctx, target, store.CheckResult{
		Attempt: taskID, StartedAt: startedAt, FinishedAt: w.cfg.Clock.Now(), Result: res})
	switch {
	case errors.Is(err, store.ErrNotFound):
		w.entry(p.ConnectionID, taskID).Info("connection deleted during its check; nothing recorded")
		return nil
	case errors.Is(err, store.ErrInvalid):
		return fmt.Errorf("record check of %s: %w: %w", p.ConnectionID, err, asynq.SkipRetry)
	case err != nil:
		return fmt.Errorf("record check of %s: %w", p.ConnectionID, err)
	}
	if rec.Outcome != store.Applied { // an applied record ends the queued mark itself
		w.clearQueued(ctx, p.ConnectionID, taskID)
	}
	d := w.cfg.Clock.Now().Sub(startedAt)
	// A line per change at info; a check that changed nothing (the usual
	// weekly CONNECTED) only at debug: a million quiet checks a week would
	// drown the changes, and formatting them costs a share of a check's CPU
	// (BENCHMARKS.md).
	if changed := rec.Transitions > 0 || rec.Outcome != store.Applied; (changed && w.infoOn()) || w.debugOn() {
		e := w.log.WithFields(logrus.Fields{
			"connectionId": p.ConnectionID, "taskId": taskID, "datasource": target.Request.Datasource,
			"from": rec.From, "to": rec.To, "outcome": rec.Outcome, "transitions": rec.Transitions, "durationMs": d.Milliseconds(),
		})
		if changed {
			e.Info("check recorded")
		} else {
			e.Debug("check recorded")
		}
	}
	if w.cfg.OnCheck != nil {
		w.cfg.OnCheck(CheckEvent{ConnectionID: p.ConnectionID, TaskID: taskID, Datasource: target.Request.Datasource,
			Status: res.Status, Outcome: rec.Outcome, From: rec.From, To: rec.To, Duration: d})
	}
	return nil
}

// clearQueued ends the connection's "check queued" mark when the check
// ended without a write, so an on-demand refresh is possible again at once.
// A failure only delays that until the mark expires.
func (w *Worker) clearQueued(ctx context.Context, connID, taskID string) {
	if err := w.st.ClearQueued(ctx, connID); err != nil {
		w.entry(connID, taskID).WithError(err).Warn("could not clear the queued mark; refreshes wait for it to expire")
	}
}

func (w *Worker) entry(connID, taskID string) *logrus.Entry {
	return w.log.WithFields(logrus.Fields{"connectionId": connID, "taskId": taskID})
}

// run calls the datasource's checker and turns every way it can fail into a
// result to record. It returns an error only for what must be retried: the
// task's own context ending (shutdown, asynq deadline) or ErrTemporary.
func (w *Worker) run(ctx context.Context, connID, taskID string, slot time.Time, req checks.Request) (checks.Result, error) {
	c, err := w.reg.Lookup(req.Datasource)
	if err != nil {
		w.entry(connID, taskID).WithField("datasource", req.Datasource).Warn("no checker for datasource")
		return checks.Result{Status: checks.ConnOtherError, Detail: "no checker for datasource " + req.Datasource}, nil
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CheckTimeout)
	defer cancel()
	res, panicked, err := w.call(cctx, c, req, connID, taskID)
	switch {
	case panicked:
		return res, nil
	case ctx.Err() != nil:
		return checks.Result{}, fmt.Errorf("check %s interrupted before it finished: %w", connID, ctx.Err())
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		// Whatever the checker returned after its deadline may be partial
		// (say, half the accounts listed): record the timeout instead.
		return checks.Result{Status: checks.ConnWebsiteDown,
			Detail: fmt.Sprintf("check timed out after %s", w.cfg.CheckTimeout)}, nil
	case isRetryAfter(err):
		if res, ok := w.givenUp(ctx, slot, "the checker asked to retry later", err); ok {
			return res, nil
		}
		return checks.Result{}, fmt.Errorf("check %s: %w", connID, err)
	case errors.Is(err, checks.ErrTemporary) && lastAttempt(ctx):
		// No counted retry is left: record the failure, so the connection
		// shows it (and its queued mark ends) instead of keeping a status
		// no check saw.
		return checks.Result{Status: checks.ConnOtherError,
			Detail: truncate(fmt.Sprintf("temporary failure on every attempt: %v", err))}, nil
	case errors.Is(err, checks.ErrTemporary):
		return checks.Result{}, fmt.Errorf("check %s: %w", connID, err)
	case err != nil:
		return checks.Result{Status: checks.ConnOtherError, Detail: truncate(err.Error())}, nil
	}
	if err := res.Validate(); err != nil {
		return checks.Result{Status: checks.ConnOtherError, Detail: truncate("invalid checker result: " + err.Error())}, nil
	}
	return res.Normalized(), nil
}

// givenUp is the result to record instead of pushing a check back once
// more with a checks.RetryAfterError (why says what pushed it back, err is
// the error), if any: when the task has no retry left (only a task
// enqueued without the kept retry, or one whose retries a crash recovery
// used up, gets there), or when its slot is a whole check interval old
// (the next slot's check is due by now: record why this one never ran
// rather than push it on).
func (w *Worker) givenUp(ctx context.Context, slot time.Time, why string, err error) (checks.Result, bool) {
	switch {
	case noRetryLeft(ctx):
		return checks.Result{Status: checks.ConnOtherError,
			Detail: truncate(fmt.Sprintf("%s, but the task has no retry left: %v", why, err))}, true
	case w.cfg.Clock.Now().Sub(slot) >= w.st.Interval():
		return checks.Result{Status: checks.ConnOtherError, Detail: truncate(fmt.Sprintf(
			"%s on every attempt for a whole check interval (%s): %v", why, w.st.Interval(), err))}, true
	}
	return checks.Result{}, false
}

// lastAttempt reports whether a failure now would be the task's last
// counted one: asynq's retry count has reached its MaxRetry less the retry
// kept for Retry-After (tasks.AsynqMaxRetry). Outside asynq, say a test
// calling HandleCheck: no.
func lastAttempt(ctx context.Context) bool {
	left, ok := retriesLeft(ctx)
	return ok && left <= 1
}

// noRetryLeft reports whether asynq archives the task if it fails now,
// whatever the error.
func noRetryLeft(ctx context.Context) bool {
	left, ok := retriesLeft(ctx)
	return ok && left <= 0
}

// retriesLeft is asynq's MaxRetry less the task's retry count; false
// outside asynq.
func retriesLeft(ctx context.Context) (int, bool) {
	n, ok1 := asynq.GetRetryCount(ctx)
	max, ok2 := asynq.GetMaxRetry(ctx)
	return max - n, ok1 && ok2
}

func isRetryAfter(err error) bool {
	_, ok := checks.RetryAfter(err)
	return ok
}

// checkOutcome is what a checker call gave.
type checkOutcome struct {
	res      checks.Result
	panicked bool
	err      error
}

// call runs the checker, turning a panic into an OTHER_ERROR result. It
// returns when the checker does or when ctx ends, whichever comes first: a
// checker that ignores its context is abandoned there (its goroutine runs
// on until it returns, and its result is dropped), so CheckTimeout holds
// and the task's slot is freed for the next check.
func (w *Worker) call(ctx context.Context, c checks.Checker, req checks.Request, connID, taskID string) (checks.Result, bool, error) {
	done := make(chan checkOutcome, 1) // buffered: an abandoned checker never blocks
	go func() {
		var out checkOutcome
		defer func() {
			if v := recover(); v != nil {
				w.entry(connID, taskID).WithFields(logrus.Fields{"datasource": req.Datasource, "panic": v, "stack": string(debug.Stack())}).
					Error("checker panicked")
				out = checkOutcome{res: checks.Result{Status: checks.ConnOtherError, Detail: truncate(fmt.Sprintf("checker panicked: %v", v))}, panicked: true}
			}
			done <- out
		}()
		out.res, out.err = c.Check(ctx, req)
	}()
	select {
	case out := <-done:
		return out.res, out.panicked, out.err
	case <-ctx.Done():
		w.entry(connID, taskID).WithField("datasource", req.Datasource).
			Warn("checker did not return by its deadline; abandoned (a checker must honour its context)")
		return checks.Result{}, false, ctx.Err()
	}
}

// truncate bounds s to maxDetail bytes without splitting a UTF-8 sequence.
func truncate(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

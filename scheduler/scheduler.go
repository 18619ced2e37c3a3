// Package scheduler is checkd's cron-driven sweep: on every tick it
// enqueues one asynq check task per due connection and slot, from two
// sources in the store, each walked as a store.Sweep: the on-demand due
// index (first checks of new connections, reactivations, retries) and the
// weekly schedule, walked by a cursor from the last sweep to now.
//
// Cost and eligibility. Both only hold eligible connections: the store's
// atomic writes remove a connection when it becomes credential-blocked,
// deactivated or company-inactive, and put it back when that ends. So a
// tick never reads a connection record, and a weekly sweep writes nothing
// per connection (the cursor moves once per batch); its cost is O(due),
// never O(all connections). An admin may still act between enqueue and run,
// so the worker re-checks eligibility (store.LoadCheck's Skip) when the
// task executes.
//
// Exactly once across replicas. An on-demand claim atomically takes due
// connections out of the index and records the claim as in flight; the
// weekly schedule is swept by one scheduler at a time (a leased lock). The
// task ID is deterministic (tasks.CheckTaskID of connection and slot), so a
// re-enqueue of the same slot is refused by asynq and counted as
// AlreadyQueued.
//
// Nothing lost. A claim is acknowledged only once every task of its batch
// was tried: on-demand claims not acknowledged come back after their lease
// (Config.Lease) with their original slot; the weekly cursor moves only over
// acknowledged batches, and a connection whose enqueue failed goes to the
// on-demand index at its slot. Either way a later tick retries with the
// same task ID, so a task that did reach asynq is not enqueued twice.
//
// Bounded catch-up. A tick enqueues at most Config.MaxPerTick tasks, so a
// backlog after downtime drains over several ticks instead of flooding the
// queues; a scheduler down for longer than an interval checks each
// connection once, not once per missed slot.
//
// Checks now. OnDemand enqueues one check at once, outside the sweep, on
// the critical queue (an API refresh, an admin change that makes a
// connection checkable) under the same rules: one check of a connection
// queued or running at a time, and a due slot enqueued once. It needs no
// running Scheduler.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/startstop"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// Enqueuer enqueues asynq tasks; *asynq.Client satisfies it.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// EnvTick names the environment variable that sets Config.Spec (read by
// the configuration layer, not by this package).
const EnvTick = "CHECKD_TICK"

// Config configures a Scheduler. It has no defaults: New refuses a zero
// field unless its comment says what zero means. ConfigFrom builds one
// from checkd's configuration (whose defaults are configs/checkd.yaml's).
type Config struct {
	// Spec is the tick's robfig/cron spec: "@every 1m", a descriptor such as
	// "@hourly", or a standard 5-field spec such as "*/5 * * * *" (tick;
	// the operator sets it with CHECKD_TICK).
	Spec string
	// BatchSize is how many connections one claim round leases
	// (scheduler.batchSize).
	BatchSize int
	// MaxPerTick bounds the connections one tick claims, so catching up
	// after downtime never floods the queues (scheduler.maxPerTick).
	MaxPerTick int
	// Lease is how long an unacknowledged claim waits before another tick
	// takes it over (enqueue failed, or the scheduler died). It must exceed
	// a tick's duration (scheduler.lease).
	Lease time.Duration
	// EnqueueConcurrency is the number of parallel enqueuers
	// (scheduler.enqueueConcurrency).
	EnqueueConcurrency int
	// Queue receives the scheduled checks: tasks.QueueDefault in checkd.
	Queue string
	// TaskTimeout is each task's asynq.Timeout (scheduler.taskTimeout).
	TaskTimeout time.Duration
	// MaxRetry is each task's asynq.MaxRetry; 0: no retry. ConfigFrom
	// sets tasks.AsynqMaxRetry(scheduler.maxRetry): one retry more than
	// configured, kept for a checker's Retry-After.
	MaxRetry int
	// Clock gives the time of cron-driven ticks. nil: the real clock.
	Clock clock.Clock
	// Logger receives tick summaries and failures. nil: logrus's standard
	// logger.
	Logger logrus.FieldLogger
	// OnTick, when set, is called after every tick with its stats (metrics).
	OnTick func(TickStats)
	// RecheckPerTick bounds the checks not attempted while a datasource
	// was DOWN that one tick enqueues again once its breaker closed; 0:
	// none (health.recheckPerTick; 0 when health is off).
	RecheckPerTick int
}

// ConfigFrom returns the scheduler's settings in a checkd configuration:
// its tick and its scheduler section, sweeping into tasks.QueueDefault
// with tasks.AsynqMaxRetry retries, and health.recheckPerTick when health
// is on. The caller adds Clock, Logger and OnTick.
func ConfigFrom(c configs.Config) Config {
	s := c.Scheduler
	cfg := Config{Spec: c.Tick, BatchSize: s.BatchSize, MaxPerTick: s.MaxPerTick, Lease: s.Lease,
		EnqueueConcurrency: s.EnqueueConcurrency, Queue: tasks.QueueDefault, TaskTimeout: s.TaskTimeout,
		MaxRetry: tasks.AsynqMaxRetry(s.MaxRetry)}
	if c.Health.Enabled {
		cfg.RecheckPerTick = c.Health.RecheckPerTick
	}
	return cfg
}

// validate refuses the zero values that mean nothing, naming the field.
func (c Config) validate() error {
	switch {
	case c.BatchSize <= 0:
		return fmt.Errorf("Config.BatchSize is %d; it must be positive (configs: scheduler.batchSize)", c.BatchSize)
	case c.MaxPerTick <= 0:
		return fmt.Errorf("Config.MaxPerTick is %d; it must be positive (configs: scheduler.maxPerTick)", c.MaxPerTick)
	case c.Lease <= 0:
		return fmt.Errorf("Config.Lease is %s; it must be positive (configs: scheduler.lease)", c.Lease)
	case c.EnqueueConcurrency <= 0:
		return fmt.Errorf("Config.EnqueueConcurrency is %d; it must be positive (configs: scheduler.enqueueConcurrency)", c.EnqueueConcurrency)
	case c.Queue == "":
		return errors.New("Config.Queue is empty; name the queue of the scheduled checks (checkd's: tasks.QueueDefault)")
	case c.TaskTimeout <= 0:
		return fmt.Errorf("Config.TaskTimeout is %s; it must be positive (configs: scheduler.taskTimeout)", c.TaskTimeout)
	case c.MaxRetry < 0:
		return fmt.Errorf("Config.MaxRetry is %d; use 0 (no retry) or more (configs: scheduler.maxRetry)", c.MaxRetry)
	case c.RecheckPerTick < 0:
		return fmt.Errorf("Config.RecheckPerTick is %d; use 0 (none) or more (configs: health.recheckPerTick)", c.RecheckPerTick)
	}
	return nil
}

// TickStats tells what one tick did.
type TickStats struct {
	// Claimed is how many due connections the tick leased.
	Claimed int
	// Enqueued is how many new tasks asynq accepted.
	Enqueued int
	// AlreadyQueued is how many tasks already existed under their
	// deterministic ID (success: the check is queued once).
	AlreadyQueued int
	// Failed is how many enqueues failed; those claims were not
	// acknowledged and come back when their lease ends.
	Failed int
	// Duration is the wall time the tick took.
	Duration time.Duration
	// Truncated reports that the tick stopped at MaxPerTick with its last
	// claim full, so more connections may still be due.
	Truncated bool
	// Rechecked is how many checks not attempted while their datasource
	// was DOWN the tick enqueued again.
	Rechecked int
}

// Scheduler sweeps the due index into asynq tasks. It is safe for
// concurrent use; ticks of one Scheduler never overlap.
type Scheduler struct {
	st       *store.Store
	enq      Enqueuer
	cfg      Config
	log      logrus.FieldLogger
	schedule cron.Schedule
	opts     []asynq.Option // shared by every task: built once, not per item
	onDemand *OnDemand      // the re-checks after an outage

	tickMu sync.Mutex // serializes ticks of this process

	life   startstop.Lifecycle
	cron   *cron.Cron         // set by Start
	cancel context.CancelFunc // cancels the ticks' context
}

// New returns a scheduler over st that enqueues with enq. It fails,
// naming the field, on an invalid Config.Spec or an incomplete Config.
func New(st *store.Store, enq Enqueuer, cfg Config) (*Scheduler, error) {
	if st == nil || enq == nil {
		return nil, errors.New("scheduler: a store and an enqueuer (an *asynq.Client) are required")
	}
	cfg.Spec = strings.TrimSpace(cfg.Spec)
	if cfg.Spec == "" {
		return nil, fmt.Errorf("scheduler: Config.Spec (%s) is empty; give the tick's cron spec, e.g. \"@every 1m\"", EnvTick)
	}
	sched, err := cron.ParseStandard(cfg.Spec)
	if err != nil {
		return nil, fmt.Errorf("scheduler: tick spec %q (%s) is invalid: %w; use e.g. \"@every 1m\", \"@hourly\" or \"*/5 * * * *\"",
			cfg.Spec, EnvTick, err)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	od, err := recheckOnDemand(st, enq, cfg)
	if err != nil {
		return nil, err
	}
	return &Scheduler{
		st: st, enq: enq, cfg: cfg, schedule: sched, onDemand: od,
		log:  cfg.Logger.WithField("component", "scheduler"),
		opts: append([]asynq.Option{asynq.Queue(cfg.Queue)}, asynqOpts(cfg)...),
	}, nil
}

// asynqOpts are every check task's options but its queue.
func asynqOpts(cfg Config) []asynq.Option {
	return []asynq.Option{asynq.Timeout(cfg.TaskTimeout), asynq.MaxRetry(cfg.MaxRetry)}
}

// Config returns the configuration, with the Clock and Logger it uses.
func (s *Scheduler) Config() Config { return s.cfg }

// Start makes the store's weekly schedule match its interval
// (store.EnsureSchedule: a rebuild after the interval changed, one read
// otherwise), then runs a tick, Tick(ctx, Clock.Now()), on every occurrence
// of Config.Spec until Stop. A tick still running when the next one is due
// makes that one skip. A Scheduler starts once (startstop.Lifecycle): Start
// fails after Start or Stop.
func (s *Scheduler) Start(ctx context.Context) error {
	return s.life.Start("scheduler", func() error { return s.start(ctx) })
}

func (s *Scheduler) start(ctx context.Context) error {
	// The schedule is keyed by the interval: rebuild it first if the
	// interval changed (a no-op read otherwise).
	began := time.Now()
	n, err := s.st.EnsureSchedule(ctx)
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	if n > 0 {
		s.log.WithFields(logrus.Fields{"connections": n, "interval": s.st.Interval().String(), "took": time.Since(began)}).
			Info("rebuilt the weekly schedule for the check interval")
	}
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.cron = cron.New(cron.WithLogger(cronLogger{s.log}), cron.WithChain(cron.Recover(cronLogger{s.log})))
	s.cron.Schedule(s.schedule, cron.FuncJob(func() { s.cronTick(runCtx) }))
	s.cron.Start()
	s.log.WithField("spec", s.cfg.Spec).Info("scheduler started")
	return nil
}

// cronTick is one cron-driven tick; it skips when a tick is still running.
func (s *Scheduler) cronTick(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	if !s.tickMu.TryLock() {
		s.log.Warn("previous tick still running; skipping this one (raise the tick interval or lower MaxPerTick if this repeats)")
		return
	}
	defer s.tickMu.Unlock()
	// tick logs failed enqueues itself; a failed claim, sweep or
	// acknowledgement comes back as its error.
	if _, err := s.tick(ctx, s.cfg.Clock.Now()); err != nil && ctx.Err() == nil {
		s.log.WithError(err).Error("tick failed; its unfinished connections come due again on a later tick")
	}
}

// Stop stops the cron and waits, bounded by ctx, for a running tick to
// finish; when ctx ends first the tick is cancelled (its unfinished
// connections come due again after their lease) and Stop returns ctx's
// error. It is safe to call twice and before Start (startstop.Lifecycle).
func (s *Scheduler) Stop(ctx context.Context) error {
	return s.life.Stop(ctx, "scheduler", s.stop)
}

func (s *Scheduler) stop(ctx context.Context) error {
	defer s.cancel()
	select {
	case <-s.cron.Stop().Done():
		s.log.Info("scheduler stopped")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("scheduler: stop: a tick was still running and has been cancelled: %w", ctx.Err())
	}
}

// cronLogger adapts logrus to robfig/cron's logger (its info is noise).
type cronLogger struct{ log logrus.FieldLogger }

func (l cronLogger) Info(msg string, kv ...any) {}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.WithError(err).WithField("cron", fmt.Sprint(kv...)).Error(msg)
}

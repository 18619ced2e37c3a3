package webhook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/startstop"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// Group is the consumer group of the change-event stream the dispatchers
// share.
const Group = "webhooks"

// DispatcherConfig configures a Dispatcher. Every field is required but
// Consumer and the test hooks: configs/checkd.yaml holds the defaults.
type DispatcherConfig struct {
	// Consumer names this dispatcher in the group; default the host name,
	// the process ID and a random suffix (each process is a consumer of
	// its own).
	Consumer string
	// BatchSize is how many change events one round reads.
	BatchSize int
	// Block is how long a read waits for a change event.
	Block time.Duration
	// ClaimIdle: change events read by a dispatcher but not acknowledged
	// for that long (it died) are taken over by another.
	ClaimIdle time.Duration
	// EnqueueConcurrency is how many delivery tasks are enqueued at once.
	EnqueueConcurrency int
	// Retention is how long messages are kept.
	Retention time.Duration
	// Timeout is the deliverer's attempt timeout (the tasks' asynq timeout
	// outlives it).
	Timeout time.Duration
	// Clock and Logger.
	Clock  clock.Clock
	Logger logrus.FieldLogger

	// OnDispatch, when set, is called after each round that dispatched
	// something (metrics, tests).
	OnDispatch func(DispatchStats)
	// BeforeAck, when set, is called after a round enqueued its tasks and
	// before it acknowledges its events; an error stops the round there
	// (tests: a dispatcher dying at that point).
	BeforeAck func(events []store.Event) error
}

func (c DispatcherConfig) validate() error {
	if c.BatchSize <= 0 || c.Block <= 0 || c.ClaimIdle <= 0 || c.EnqueueConcurrency <= 0 || c.Retention <= 0 || c.Timeout <= 0 {
		return errors.New("webhook: dispatcher config: batchSize, block, claimIdle, enqueueConcurrency, retention and timeout must be positive")
	}
	if c.Clock == nil || c.Logger == nil {
		return errors.New("webhook: dispatcher config: a clock and a logger are required")
	}
	return nil
}

// DispatchStats is what one round did.
type DispatchStats struct {
	// Events read (claimed ones included), Messages stored, Tasks
	// enqueued (a task already enqueued by another dispatcher counts too).
	Events, Messages, Tasks int
	// Skipped events: undecodable or gone.
	Skipped int
}

// Dispatcher turns the change-event stream into webhook messages and their
// delivery tasks: for each event, the message of each of its types that
// some endpoint receives (its body rendered once and stored), and one
// webhook:deliver task per enabled endpoint receiving it. It reads the
// stream through a consumer group and acknowledges an event only once its
// messages are stored and its tasks enqueued: a dispatcher that dies in
// between leaves its events pending, and another takes them over after
// ClaimIdle and dispatches them again, which stores nothing twice
// (messages keep their body and states) and enqueues nothing twice (a
// delivery's task ID is fixed, and a delivery already finished is
// skipped). Several dispatchers share the stream safely.
type Dispatcher struct {
	st  *store.Store
	enq Enqueuer
	cfg DispatcherConfig
	log logrus.FieldLogger

	// endpoints cached for version.
	endpoints []store.WebhookEndpoint
	version   int64
	loaded    bool
	lastClaim time.Time
	// failed: a round failed after reading, so this consumer has events
	// pending to dispatch again.
	failed bool

	life   startstop.Lifecycle
	cancel context.CancelFunc
	done   chan struct{}
}

// NewDispatcher returns a dispatcher of st's change events, enqueueing
// through enq. It touches nothing until Start (or RunOnce).
func NewDispatcher(st *store.Store, enq Enqueuer, cfg DispatcherConfig) (*Dispatcher, error) {
	if st == nil || enq == nil {
		return nil, errors.New("webhook: a dispatcher needs a store and an enqueuer")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Consumer == "" {
		host, _ := os.Hostname()
		cfg.Consumer = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), nonce()[:6])
	}
	return &Dispatcher{st: st, enq: enq, cfg: cfg, log: cfg.Logger.WithField("consumer", cfg.Consumer)}, nil
}

// Start creates the consumer group if needed and dispatches in the
// background until Stop. A dispatcher starts once (startstop.Lifecycle).
func (d *Dispatcher) Start(ctx context.Context) error {
	return d.life.Start("webhook dispatcher", func() error {
		if err := d.st.EnsureEventGroup(ctx, Group); err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		d.cancel, d.done = cancel, make(chan struct{})
		go d.loop(runCtx, d.done)
		d.log.Info("webhook dispatcher started")
		return nil
	})
}

// Stop ends the background loop, waiting for the round in flight (its
// events are acknowledged or stay pending for the next dispatcher) until
// ctx ends. It is safe to call twice and before Start.
func (d *Dispatcher) Stop(ctx context.Context) error {
	return d.life.Stop(ctx, "webhook dispatcher", func(ctx context.Context) error {
		d.cancel()
		select {
		case <-d.done:
			d.log.Info("webhook dispatcher stopped")
			return nil
		case <-ctx.Done():
			return fmt.Errorf("webhook: stop the dispatcher: %w", ctx.Err())
		}
	})
}

func (d *Dispatcher) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	failures := 0
	for ctx.Err() == nil {
		_, err := d.RunOnce(ctx)
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		wait := min(time.Duration(failures)*time.Second, 30*time.Second)
		d.log.WithError(err).WithField("retryIn", wait.String()).Warn("webhook dispatch failed; its change events stay pending and are dispatched again")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// RunOnce is one round: it takes over change events left pending by a
// dispatcher that died (every ClaimIdle/2), dispatches this consumer's own
// pending ones (left by a failed round), then reads and dispatches new
// ones, waiting up to Block for them. It returns how many events it
// dispatched. Tests call it directly.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	total := 0
	if now := d.cfg.Clock.Now(); now.Sub(d.lastClaim) >= d.cfg.ClaimIdle/2 {
		for start := "0-0"; ; {
			b, next, err := d.st.ClaimEvents(ctx, Group, d.cfg.Consumer, d.cfg.ClaimIdle, start, int64(d.cfg.BatchSize))
			if err != nil {
				return total, err
			}
			n, err := d.dispatch(ctx, b)
			total += n
			if err != nil {
				return total, err
			}
			if next == "0-0" || next == "" {
				break
			}
			start = next
		}
		d.lastClaim = now
	}
	if d.failed { // own pending events, from a round that failed after reading them
		b, err := d.st.ReadPendingEvents(ctx, Group, d.cfg.Consumer, int64(d.cfg.BatchSize))
		if err != nil {
			return total, err
		}
		if len(b.Events)+len(b.Skipped) > 0 {
			n, err := d.dispatch(ctx, b)
			return total + n, err
		}
		d.failed = false
	}
	b, err := d.st.ReadEvents(ctx, Group, d.cfg.Consumer, int64(d.cfg.BatchSize), d.cfg.Block)
	if err != nil {
		return total, err
	}
	n, err := d.dispatch(ctx, b)
	return total + n, err
}

// loadEndpoints returns the endpoints, read again when their version moved.
func (d *Dispatcher) loadEndpoints(ctx context.Context) ([]store.WebhookEndpoint, error) {
	v, err := d.st.WebhookEndpointsVersion(ctx)
	if err != nil {
		return nil, err
	}
	if d.loaded && v == d.version {
		return d.endpoints, nil
	}
	es, v, err := d.st.AllWebhookEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	d.endpoints, d.version, d.loaded = es, v, true
	return es, nil
}

// dispatch stores the messages of a batch, enqueues their tasks and
// acknowledges the batch; on failure the batch stays pending.
func (d *Dispatcher) dispatch(ctx context.Context, b store.EventBatch) (int, error) {
	n, err := d.dispatchBatch(ctx, b)
	if err != nil {
		d.failed = true
	}
	return n, err
}

func (d *Dispatcher) dispatchBatch(ctx context.Context, b store.EventBatch) (int, error) {
	for i, id := range b.Skipped {
		if i < len(b.Errors) {
			d.log.WithError(b.Errors[i]).WithField("eventId", id).Error("undecodable change event skipped")
		}
	}
	if len(b.Events) == 0 && len(b.Skipped) == 0 {
		return 0, nil
	}
	eps, err := d.loadEndpoints(ctx)
	if err != nil {
		return 0, err
	}
	var msgs []store.NewWebhookMessage
	type delivery struct{ msg, ep string }
	var deliveries []delivery
	for _, ev := range b.Events {
		for _, typ := range ev.Types {
			var to, enabled []string
			for i := range eps {
				e := &eps[i]
				// An endpoint receives the changes made after its creation.
				if e.Receives(typ, ev.CompanyID) && !ev.Time.Before(e.CreatedAt) {
					to = append(to, e.ID)
					if !e.Disabled {
						enabled = append(enabled, e.ID)
					}
				}
			}
			if len(to) == 0 {
				continue // nobody subscribes: no message is kept
			}
			body, err := Render(ev, typ)
			if err != nil {
				return 0, err
			}
			id := MessageID(ev.ConnectionID, ev.Sequence, typ)
			msgs = append(msgs, store.NewWebhookMessage{ID: id, Type: typ, ConnectionID: ev.ConnectionID, CompanyID: ev.CompanyID,
				Time: ev.Time, Body: body, Endpoints: enabled})
			for _, ep := range enabled {
				deliveries = append(deliveries, delivery{id, ep})
			}
		}
	}
	if err := d.st.SaveWebhookMessages(ctx, msgs, d.cfg.Retention); err != nil {
		return 0, err
	}
	// Enqueue the deliveries, EnqueueConcurrency at a time; the first
	// failure leaves the batch unacknowledged.
	sem := make(chan struct{}, d.cfg.EnqueueConcurrency)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	for _, dl := range deliveries {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			task, err := tasks.NewWebhookDeliverTask(tasks.WebhookDeliverPayload{MessageID: dl.msg, EndpointID: dl.ep, Trigger: store.TriggerScheduled},
				"", asynq.MaxRetry(deliverMaxRetry), asynq.Timeout(d.cfg.Timeout+taskTimeoutMargin))
			if err == nil {
				_, err = d.enq.EnqueueContext(ctx, task)
			}
			if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && !errors.Is(err, asynq.ErrDuplicateTask) {
				errMu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("webhook: enqueue the delivery of %s to %s: %w", dl.msg, dl.ep, err)
				}
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	if d.cfg.BeforeAck != nil {
		if err := d.cfg.BeforeAck(b.Events); err != nil {
			return 0, err
		}
	}
	ids := make([]string, 0, len(b.Events)+len(b.Skipped))
	for _, ev := range b.Events {
		ids = append(ids, ev.ID)
	}
	ids = append(ids, b.Skipped...)
	if err := d.st.AckEvents(ctx, Group, ids); err != nil {
		return 0, err
	}
	stats := DispatchStats{Events: len(b.Events), Messages: len(msgs), Tasks: len(deliveries), Skipped: len(b.Skipped)}
	if d.cfg.OnDispatch != nil {
		d.cfg.OnDispatch(stats)
	}
	if len(deliveries) > 0 {
		d.log.WithFields(logrus.Fields{"events": stats.Events, "messages": stats.Messages, "tasks": stats.Tasks}).Debug("webhook messages dispatched")
	}
	return len(b.Events), nil
}

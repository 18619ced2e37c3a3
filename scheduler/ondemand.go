package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// ReasonAlreadyQueued is why EnqueueNow enqueued no check.
const ReasonAlreadyQueued = "a check is already queued or running"

// ErrQueueUnavailable marks an enqueue that failed in the task queue (as
// opposed to the store): retry in a moment, or let the sweep catch up.
var ErrQueueUnavailable = errors.New("task queue unavailable")

// OnDemand enqueues checks at once, outside the sweep, on the critical
// queue: an API refresh, a connection made checkable by an admin action
// (store.Change.CheckNow), and anything else that wants a connection
// checked now. It keeps the rule the sweep keeps: at most one check of a
// connection queued or running at a time (store.MarkQueued), and a due
// slot enqueued once (store.ServeDue). It needs no running Scheduler: a
// process that only serves the API builds one from its store and asynq
// client. It is safe for concurrent use.
type OnDemand struct {
	st   *store.Store
	enq  Enqueuer
	clk  clock.Clock
	opts []asynq.Option // built once: the caller's options, then the critical queue
}

// NewOnDemand returns an OnDemand over st that enqueues with enq (an
// *asynq.Client) and stamps refreshes with clk. opts are added to every
// task it enqueues (asynq.Timeout, asynq.MaxRetry, ...); the queue is
// always tasks.QueueCritical.
func NewOnDemand(st *store.Store, enq Enqueuer, clk clock.Clock, opts ...asynq.Option) (*OnDemand, error) {
	if st == nil || enq == nil || clk == nil {
		return nil, errors.New("scheduler: an on-demand enqueuer needs a store, an enqueuer (an *asynq.Client) and a clock")
	}
	return &OnDemand{st: st, enq: enq, clk: clk,
		opts: append(slices.Clone(opts), asynq.Queue(tasks.QueueCritical))}, nil
}

// Enqueued tells what EnqueueNow did.
type Enqueued struct {
	// Enqueued: a new check task is queued, of ID TaskID.
	Enqueued bool
	TaskID   string
	// Reason says why no task was enqueued (ReasonAlreadyQueued).
	Reason string
	// NextCheckAt, when not zero, is the connection's next check after the
	// due slot the task served: its next weekly slot.
	NextCheckAt time.Time
}

// EnqueueNow enqueues a check of the connection for reason (a
// tasks.Reason*) unless one is queued or running. due is the on-demand
// due time the store set for the connection (store.Change.DueAt): it is
// the task's slot, and once the task is queued that slot is served, taken
// out of the due index so the sweep does not check the connection a second
// time (NextCheckAt then says when the next check is). A zero due enqueues
// a check for now and serves nothing (a refresh).
//
// A task that already exists under the slot's ID (the sweep enqueued the
// same due slot) is the check: Reason says so. A failed enqueue undoes the
// queued mark and its error wraps ErrQueueUnavailable; other errors are the
// store's. When the task is queued but its due slot could not be served,
// Enqueued says so and the error says what failed: the sweep then enqueues
// the slot too, and the worker skips the second task as served. ctx should
// outlive an HTTP client: detach it from the request.
func (o *OnDemand) EnqueueNow(ctx context.Context, id string, due time.Time, reason string) (Enqueued, error) {
	slot := due
	if slot.IsZero() {
		slot = o.clk.Now()
	}
	ok, err := o.st.MarkQueued(ctx, id)
	if err != nil {
		return Enqueued{}, err
	}
	if !ok {
		return Enqueued{Reason: ReasonAlreadyQueued}, nil
	}
	task, err := tasks.NewCheckTask(id, slot, reason, o.opts...)
	if err == nil {
		_, err = o.enq.EnqueueContext(ctx, task)
	}
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		// The task of this very slot exists (the scheduler enqueued the same
		// due slot): it is the check. The mark stays; it expires anyway.
		return Enqueued{Reason: ReasonAlreadyQueued}, nil
	}
	if err != nil {
		if cerr := o.st.ClearQueued(ctx, id); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return Enqueued{}, fmt.Errorf("%w: enqueue check of %s: %w", ErrQueueUnavailable, id, err)
	}
	out := Enqueued{Enqueued: true, TaskID: tasks.CheckTaskID(id, slot)}
	if due.IsZero() {
		return out, nil
	}
	// The check is enqueued, so the due slot is served: take it out of the
	// due index as the sweep does after enqueueing (only if it is still that
	// slot), or the next sweep would check the connection a second time.
	now := o.clk.Now()
	served, err := o.st.ServeDue(ctx, id, due)
	if err != nil {
		return out, err
	}
	if served {
		out.NextCheckAt = checks.NextSlot(id, now, o.st.Interval()).UTC()
	}
	return out, nil
}

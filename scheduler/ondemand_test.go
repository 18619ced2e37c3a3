package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
)

// TestOnDemand: EnqueueNow enqueues one check at a time per connection on
// the critical queue, with the caller's options; a check for a due slot
// serves that slot; a failed enqueue leaves no queued mark behind.
func TestOnDemand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, defaultInterval)
	aq := asynq.NewClientFromRedisClient(e.rdb)
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	rec := &recorder{next: aq}
	od, err := NewOnDemand(e.st, rec, e.clk, asynq.MaxRetry(1), asynq.Queue(tasks.QueueLow))
	if err != nil {
		t.Fatal(err)
	}
	co := e.company(t, "Acme")

	t.Run("a refresh", func(t *testing.T) {
		cn := e.connection(t, co, "user_refresh")
		got, err := od.EnqueueNow(ctx, cn.ID, time.Time{}, tasks.ReasonRefresh)
		want := tasks.CheckTaskID(cn.ID, e.clk.Now())
		if err != nil || !got.Enqueued || got.TaskID != want || got.Reason != "" || !got.NextCheckAt.IsZero() {
			t.Fatalf("EnqueueNow = %+v, %v; want task %s enqueued", got, err, want)
		}
		info, err := insp.GetTaskInfo(tasks.QueueCritical, want)
		if err != nil || info.MaxRetry != 1 {
			t.Fatalf("task on the critical queue: %+v, %v; want it there with the caller's MaxRetry 1", info, err)
		}
		if c, _ := e.st.GetConnection(ctx, cn.ID); c.NextCheckAt == nil || !c.NextCheckAt.Equal(cn.CreatedAt) {
			t.Fatalf("next check %v, want the creation's due time %v left alone", c.NextCheckAt, cn.CreatedAt)
		}
		again, err := od.EnqueueNow(ctx, cn.ID, time.Time{}, tasks.ReasonRefresh)
		if err != nil || again.Enqueued || again.Reason != ReasonAlreadyQueued {
			t.Fatalf("second EnqueueNow = %+v, %v; want %q", again, err, ReasonAlreadyQueued)
		}
	})

	t.Run("a due slot is served", func(t *testing.T) {
		cn := e.connection(t, co, "user_due")
		due := cn.CreatedAt // a new connection is due at its creation
		got, err := od.EnqueueNow(ctx, cn.ID, due, tasks.ReasonReactivated)
		next := checks.NextSlot(cn.ID, e.clk.Now(), defaultInterval).UTC()
		if err != nil || !got.Enqueued || got.TaskID != tasks.CheckTaskID(cn.ID, due) || !got.NextCheckAt.Equal(next) {
			t.Fatalf("EnqueueNow = %+v, %v; want enqueued for %v, next check %v", got, err, due, next)
		}
		if c, _ := e.st.GetConnection(ctx, cn.ID); c.NextCheckAt == nil || !c.NextCheckAt.Equal(next) {
			t.Fatalf("stored next check %v, want the weekly slot %v", c.NextCheckAt, next)
		}
	})

	t.Run("the sweep enqueued the same slot", func(t *testing.T) {
		cn := e.connection(t, co, "user_conflict")
		if _, err := aq.EnqueueContext(ctx, mustTask(t, cn.ID, cn.CreatedAt), asynq.Queue(tasks.QueueCritical)); err != nil {
			t.Fatal(err)
		}
		got, err := od.EnqueueNow(ctx, cn.ID, cn.CreatedAt, tasks.ReasonReactivated)
		if err != nil || got.Enqueued || got.Reason != ReasonAlreadyQueued {
			t.Fatalf("EnqueueNow = %+v, %v; want %q", got, err, ReasonAlreadyQueued)
		}
		if free, _ := e.st.MarkQueued(ctx, cn.ID); free {
			t.Fatal("the queued mark is gone; want it kept for the task that exists")
		}
	})

	t.Run("the queue is down", func(t *testing.T) {
		cn := e.connection(t, co, "user_down")
		rec.mu.Lock()
		rec.fail = func(tasks.CheckPayload) error { return errors.New("dial tcp: connection refused") }
		rec.mu.Unlock()
		defer func() {
			rec.mu.Lock()
			rec.fail = nil
			rec.mu.Unlock()
		}()
		got, err := od.EnqueueNow(ctx, cn.ID, time.Time{}, tasks.ReasonRefresh)
		if !errors.Is(err, ErrQueueUnavailable) || got.Enqueued {
			t.Fatalf("EnqueueNow = %+v, %v; want ErrQueueUnavailable", got, err)
		}
		if free, err := e.st.MarkQueued(ctx, cn.ID); err != nil || !free {
			t.Fatalf("MarkQueued after the failure = %v, %v; want the mark undone", free, err)
		}
	})

	if _, err := NewOnDemand(e.st, nil, e.clk); err == nil {
		t.Error("NewOnDemand without an enqueuer: no error")
	}
}

// mustTask is the check task of connection id for slot.
func mustTask(t *testing.T, id string, slot time.Time) *asynq.Task {
	t.Helper()
	task, err := tasks.NewCheckTask(id, slot, tasks.ReasonScheduled)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

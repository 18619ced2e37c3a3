package testenv

import (
	"context"
	"slices"
	"sync"

	"github.com/hibiken/asynq"
)

// Enqueuer is an asynq enqueuer (scheduler.Enqueuer) that records the
// tasks instead of enqueueing them, or fails each with the error Reset
// gave: what the API's and the console's tests enqueue through.
type Enqueuer struct {
	mu    sync.Mutex
	tasks []*asynq.Task
	err   error
}

// EnqueueContext records t, or fails with the set error.
func (f *Enqueuer) EnqueueContext(_ context.Context, t *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.tasks = append(f.tasks, t)
	return &asynq.TaskInfo{Type: t.Type(), Payload: t.Payload()}, nil
}

// Enqueued returns the tasks recorded so far, oldest first.
func (f *Enqueuer) Enqueued() []*asynq.Task {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tasks)
}

// Reset forgets the tasks recorded; from now on every enqueue fails with
// err (nil: succeeds).
func (f *Enqueuer) Reset(err error) {
	f.mu.Lock()
	f.tasks, f.err = nil, err
	f.mu.Unlock()
}

package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/tasks"
)

// pollClient is the Redis client the worker gives its asynq server: rdb,
// except that a dequeue from a queue found empty moments ago is answered
// "empty" without asking Redis, while another queue is handing out tasks.
//
// asynq's processor takes one task at a time, trying the queues in a
// weighted random order with one script call per queue until one has a
// task. With the default weights and only the default queue full (the
// weekly sweep), most tasks cost more than one call, the empty ones as
// costly as the full one, and the loop is serial: the empty calls are much
// of the time a busy worker spends getting tasks, and of its dequeue load
// on Redis (BENCHMARKS.md, "The worker remembers empty queues").
// Remembering an empty queue for a few milliseconds removes nearly all of
// them; a task that arrives in that queue meanwhile waits that long while
// the other queues keep handing out tasks (and, if they all run dry in
// that time, asynq's idle poll of about a second, as with asynq alone when
// a task arrives just after it looked).
type pollClient struct {
	redis.UniversalClient
	memo *emptyQueues
}

// newPollClient wraps rdb; ttl 0 returns rdb itself (asynq's own
// behaviour: every dequeue asks Redis). clk is the real clock but in the
// memo's own tests: ttl is polling time, like asynq's sleeps, not the
// checks' time that Config.Clock stamps (a frozen test clock would hold a
// queue "empty" for ever).
func newPollClient(rdb redis.UniversalClient, ttl time.Duration, clk clock.Clock) redis.UniversalClient {
	if ttl <= 0 {
		return rdb
	}
	return pollClient{UniversalClient: rdb, memo: &emptyQueues{ttl: ttl, clock: clk, seen: map[string]time.Time{}}}
}

// EvalSha runs a script by its SHA; asynq's dequeue goes through the memo.
func (c pollClient) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return c.memo.dequeue(ctx, keys, func() *redis.Cmd { return c.UniversalClient.EvalSha(ctx, sha, keys, args...) })
}

// Eval runs a script by its source (go-redis's fallback when Redis lost
// the script); asynq's dequeue goes through the memo.
func (c pollClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.memo.dequeue(ctx, keys, func() *redis.Cmd { return c.UniversalClient.Eval(ctx, script, keys, args...) })
}

// emptyQueues remembers when each queue was last found empty (or paused),
// and when a dequeue last returned a task. It is safe for concurrent use.
type emptyQueues struct {
	ttl   time.Duration
	clock clock.Clock

	mu   sync.Mutex
	seen map[string]time.Time // pending-list key → when a dequeue found nothing there
	hit  time.Time            // when a dequeue last returned a task
	hits bool                 // hit is set
}

// dequeue runs call unless keys name a dequeue from a queue the memo takes
// to be empty; then it answers redis.Nil (what asynq's dequeue script
// returns for an empty or paused queue) without a round trip.
//
// A queue is taken to be empty when a dequeue found it so less than ttl
// ago and another dequeue returned a task less than ttl ago: while tasks
// flow, the empty queue is asked again every ttl. When the busy queue runs
// dry, the others may still be answered from the memo in that round, so
// asynq sleeps its idle poll (0.5–1.5 s) after all; a task that came into
// one of them in the last ttl waits that sleep, as one arriving just after
// asynq's own look would. Once the last task is older than ttl, every
// queue is asked (after one sleep at the 5 ms default; configs bounds ttl
// at 1 s, which a second sleep may take to pass).
func (m *emptyQueues) dequeue(ctx context.Context, keys []string, call func() *redis.Cmd) *redis.Cmd {
	if !tasks.IsDequeue(keys) {
		return call()
	}
	now := m.clock.Now()
	m.mu.Lock()
	at, ok := m.seen[keys[0]]
	skip := ok && m.hits && now.Sub(at) < m.ttl && now.Sub(m.hit) < m.ttl
	m.mu.Unlock()
	if skip {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(redis.Nil)
		return cmd
	}
	cmd := call()
	m.mu.Lock()
	switch err := cmd.Err(); {
	case err == nil:
		m.hit, m.hits = now, true
		delete(m.seen, keys[0])
	case errors.Is(err, redis.Nil):
		m.seen[keys[0]] = now
	}
	m.mu.Unlock()
	return cmd
}

package groupcommit

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Client returns b's Redis client with its EVALSHA calls going through b,
// for an asynq.Client (asynq.NewClientFromRedisClient): asynq enqueues a
// task with one script call, so concurrent enqueues (a sweep's enqueuers)
// then share round trips with each other and with b's other calls, where
// each would take one of its own. A lone call is sent at once, as it would
// be directly; every call gets its own reply or error, as a pipeline gives
// them. Every other method is the underlying client's.
func (b *Batcher) Client() redis.UniversalClient {
	return client{UniversalClient: b.rdb, b: b}
}

// ClientExcept is Client but for the script calls whose keys direct
// reports true, which go straight to Redis. For an asynq.Server
// (asynq.NewServerFromRedisClient), whose handlers' goroutines mark their
// tasks done with a script call each: those then share round trips with
// each other and with the handlers' own calls, while asynq's dequeue,
// which its processor makes one at a time, is kept out (waiting for a
// round trip in flight would only slow that loop).
func (b *Batcher) ClientExcept(direct func(keys []string) bool) redis.UniversalClient {
	return client{UniversalClient: b.rdb, b: b, direct: direct}
}

// client routes EVALSHA through a Batcher. Eval, go-redis's fallback when
// Redis has lost a script, goes straight to Redis: it loads the script
// again, and it is rare.
type client struct {
	redis.UniversalClient
	b      *Batcher
	direct func(keys []string) bool // nil: none
}

// EvalSha runs the script sha as one call of the group commit.
func (c client) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	if c.direct != nil && c.direct(keys) {
		return c.UniversalClient.EvalSha(ctx, sha, keys, args...)
	}
	// The command as the client's EvalSha builds it, queued on a pipeline
	// that is never run: go-redis spreads a lone slice, map or struct
	// argument, which unspread would not encode and would fail every call
	// of its round trip.
	cmd := c.UniversalClient.Pipeline().EvalSha(ctx, sha, keys, args...)
	c.b.do(ctx, false, &scriptCall{cmds: []redis.Cmder{cmd}})
	return cmd
}

package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// SharedClient returns the store's Redis client for an asynq.Client
// (asynq.NewClientFromRedisClient): its script calls, which are how asynq
// enqueues, go through the store's group commit. Concurrent enqueues, such
// as a sweep's EnqueueConcurrency goroutines, then share round trips with
// each other and with the store's own calls, where each would take one of
// its own. A lone call is sent at once, as it would be directly; every
// call gets its own reply or error, as a pipeline gives them. Every other
// method is the store's client's.
func (s *Store) SharedClient() redis.UniversalClient {
	return sharedClient{UniversalClient: s.rdb, b: s.batch}
}

// sharedClient routes EVALSHA through a scriptBatcher. Eval, go-redis's
// fallback when Redis has lost a script, goes straight to Redis: it loads
// the script again, and it is rare.
type sharedClient struct {
	redis.UniversalClient
	b *scriptBatcher
}

// EvalSha runs the script sha as one call of the group commit.
func (c sharedClient) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	// The command as the client's EvalSha builds it, queued on a pipeline
	// that is never run: go-redis spreads a lone slice, map or struct
	// argument, which unspread would not encode and would fail every call
	// of its round trip.
	cmd := c.UniversalClient.Pipeline().EvalSha(ctx, sha, keys, args...)
	c.b.do(ctx, false, &scriptCall{cmds: []redis.Cmder{cmd}})
	return cmd
}

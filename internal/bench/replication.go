package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replication modes of Options.Replication: how the run's Redis replicates
// (an experiment for docs/operating.md's Sentinel section; P2's ratio
// under each).
const (
	ReplicationNone        = ""             // no replica (the default)
	ReplicationAsync       = "async"        // one replica, asynchronous (Redis's default)
	ReplicationMinReplicas = "min-replicas" // and min-replicas-to-write 1 on the primary
	ReplicationWait        = "wait"         // and the store follows each round trip with WAIT 1
)

// waitTimeout bounds each WAIT of ReplicationWait.
const waitTimeout = time.Second

// startReplica starts a replica of srv and waits until it is in sync; for
// ReplicationMinReplicas it sets min-replicas-to-write on the primary.
func startReplica(ctx context.Context, bin string, srv *redisServer, mode string) (*redisServer, error) {
	switch mode {
	case ReplicationAsync, ReplicationMinReplicas, ReplicationWait:
	default:
		return nil, fmt.Errorf("replication mode %q: want %s, %s or %s", mode, ReplicationAsync, ReplicationMinReplicas, ReplicationWait)
	}
	host, port, _ := strings.Cut(srv.Addr, ":")
	rep, err := startRedis(ctx, bin, "--replicaof", host, port)
	if err != nil {
		return nil, err
	}
	c := redis.NewClient(&redis.Options{Addr: rep.Addr})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			rep.stop()
			return nil, fmt.Errorf("replica on %s not in sync after 30s", rep.Addr)
		}
		// Polls a process starting; it times nothing.
		t := time.NewTimer(50 * time.Millisecond)
		<-t.C
	}
	if mode == ReplicationMinReplicas {
		p := redis.NewClient(&redis.Options{Addr: srv.Addr})
		defer p.Close()
		if err := p.ConfigSet(ctx, "min-replicas-to-write", "1").Err(); err != nil {
			rep.stop()
			return nil, err
		}
		if err := p.ConfigSet(ctx, "min-replicas-max-lag", "10").Err(); err != nil {
			rep.stop()
			return nil, err
		}
	}
	return rep, nil
}

// waitHook makes every round trip of its client end with WAIT 1: a
// pipeline gets the command appended, a lone command is sent as a pipeline
// with it (on the same connection, so WAIT covers its write). A WAIT that
// times out with no replica is ignored: the experiment measures its cost.
type waitHook struct{ c *redis.Client }

type inWaitKey struct{}

func (h *waitHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *waitHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(inWaitKey{}) != nil || !isWrite(cmd) {
			return next(ctx, cmd)
		}
		wctx := context.WithValue(ctx, inWaitKey{}, true)
		_, _ = h.c.Pipelined(wctx, func(p redis.Pipeliner) error {
			_ = p.Process(wctx, cmd)
			p.Do(wctx, "WAIT", 1, waitTimeout.Milliseconds())
			return nil
		})
		return cmd.Err()
	}
}

func (h *waitHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ctx.Value(inWaitKey{}) != nil || (len(cmds) > 0 && cmds[0].Name() == "multi") {
			return next(ctx, cmds) // a transaction's replies are parsed as one: no command after EXEC
		}
		wait := redis.NewCmd(ctx, "WAIT", 1, waitTimeout.Milliseconds())
		return next(ctx, append(cmds[:len(cmds):len(cmds)], wait))
	}
}

// isWrite tells the store's lone writes: its scripts (EVALSHA, EVAL) and
// transactions' commands; reads (GET, HGETALL, ...) go without WAIT.
func isWrite(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "evalsha", "eval", "set", "hset", "zadd", "del", "incr", "hdel":
		return true
	}
	return false
}

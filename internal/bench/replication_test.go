package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/checkd/checkd/internal/testing/ci"
	"github.com/redis/go-redis/v9"
)

// TestWaitHook: under the wait experiment every write round trip of the
// store's client carries a WAIT after its writes, on the same connection,
// and a transaction still works; the replica gets the writes.
func TestWaitHook(t *testing.T) {
	ctx := context.Background()
	srv, err := startRedis(ctx, "redis-server")
	if err != nil {
		ci.SkipOrFail(t, "start redis-server: %v", err)
	}
	defer srv.stop()
	rep, err := startReplica(ctx, "redis-server", srv, ReplicationWait)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.stop()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	c.AddHook(&waitHook{c: c})
	script := redis.NewScript(`return redis.call('SET', KEYS[1], ARGV[1])`)
	if err := script.Run(ctx, c, []string{"k1"}, "v").Err(); err != nil { // a lone write
		t.Fatal(err)
	}
	if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error { // a pipeline
		p.Set(ctx, "k2", "v", 0)
		p.Get(ctx, "k1")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error { // a transaction
		p.Set(ctx, "k3", "v", 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k1").Result(); err != nil || v != "v" { // a read: no WAIT
		t.Fatal(v, err)
	}
	stats, err := redis.NewClient(&redis.Options{Addr: srv.Addr}).Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stats, "cmdstat_wait:calls=") || strings.Contains(stats, "cmdstat_wait:calls=1,") {
		t.Fatalf("want a WAIT after the lone write and after the pipeline:\n%s", stats)
	}
	r := redis.NewClient(&redis.Options{Addr: rep.Addr})
	defer r.Close()
	if n, err := r.Exists(ctx, "k1", "k2").Result(); err != nil || n != 2 {
		t.Fatalf("the replica has %d of the 2 waited-for keys: %v", n, err)
	}
}

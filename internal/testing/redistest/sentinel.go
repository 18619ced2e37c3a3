package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/internal/testing/poll"
)

// MasterName is the name the sentinels of StartSentinel monitor.
const MasterName = "mymaster"

// Sentinel is a Redis managed by Sentinel on loopback, for one test: a
// primary, a replica and three sentinels (quorum 2), each its own
// redis-server process, all stopped when the test ends.
type Sentinel struct {
	// Servers are the primary and the replica as started (which one is
	// primary now is the sentinels' word: MasterAddr).
	Servers [2]*Own
	// Sentinels are the sentinels' addresses.
	Sentinels []string

	tb   testing.TB
	mu   sync.Mutex
	cmds []*exec.Cmd
}

// StartSentinel starts a primary, a replica of it and three sentinels
// monitoring it as MasterName, and returns once the sentinels know the
// replica (a failover can pick it). serverArgs go to both Redis servers
// (e.g. "--min-replicas-to-write", "1"). It skips the test, or fails it in
// CI, as StartOwn does when redis-server is missing.
func StartSentinel(tb testing.TB, serverArgs ...string) *Sentinel {
	tb.Helper()
	primary := startOwn(tb, false, serverArgs...)
	_, port, _ := strings.Cut(primary.Addr, ":")
	replica := startOwn(tb, false, append([]string{"--replicaof", "127.0.0.1", port}, serverArgs...)...)
	s := &Sentinel{Servers: [2]*Own{primary, replica}, tb: tb}
	tb.Cleanup(s.stop)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatal(err) // startOwn found it
	}
	for i := range 3 {
		sp, err := freePort()
		if err != nil {
			tb.Fatal(err)
		}
		dir := tb.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		// A sentinel rewrites its configuration file, so each has its own.
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %s 2\n"+
			"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 10000\n",
			sp, dir, MasterName, port, MasterName, MasterName)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			tb.Fatal(err)
		}
		cmd, err := launch(bin, "+monitor master", conf, "--sentinel")
		if err != nil {
			tb.Fatalf("sentinel %d: %v", i+1, err)
		}
		s.mu.Lock()
		s.cmds = append(s.cmds, cmd)
		s.mu.Unlock()
		s.Sentinels = append(s.Sentinels, fmt.Sprintf("127.0.0.1:%d", sp))
	}
	s.waitReady(replica.Addr)
	return s
}

func (s *Sentinel) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cmds {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
}

// URL is the redis+sentinel:// URL of database db.
func (s *Sentinel) URL(db int) string {
	return fmt.Sprintf("redis+sentinel://%s/%s/%d", strings.Join(s.Sentinels, ","), MasterName, db)
}

// MasterAddr is the primary's address, as the first sentinel answers.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0]})
	defer c.Close()
	hp, err := c.GetMasterAddrByName(ctx, MasterName).Result()
	if err != nil {
		return "", err
	}
	return strings.Join(hp, ":"), nil
}

// waitReady waits until every sentinel knows replica as a healthy replica
// and every other sentinel, and the replica's link to the primary is up.
func (s *Sentinel) waitReady(replica string) {
	s.tb.Helper()
	ctx := context.Background()
	ready := func() bool {
		for _, addr := range s.Sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: addr})
			reps, err := c.Replicas(ctx, MasterName).Result()
			sens, err2 := c.Sentinels(ctx, MasterName).Result()
			c.Close()
			if err != nil || err2 != nil || len(sens) < len(s.Sentinels)-1 || !healthyReplica(reps, replica) {
				return false
			}
		}
		r := redis.NewClient(&redis.Options{Addr: replica})
		defer r.Close()
		info, err := r.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}
	poll.WaitFor(s.tb, 30*time.Second, "the sentinels to know replica "+replica, ready)
}

func healthyReplica(reps []map[string]string, addr string) bool {
	for _, r := range reps {
		if r["ip"]+":"+r["port"] == addr && !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") {
			return true
		}
	}
	return false
}

// Failover makes the sentinels promote the replica (SENTINEL FAILOVER) and
// returns the new primary's address once the sentinels name it and it
// takes writes. A failover the sentinels abort (a promotion slower than
// their failover timeout, on a loaded machine) is asked for again, up to
// three times.
func (s *Sentinel) Failover(ctx context.Context) string {
	s.tb.Helper()
	old, err := s.MasterAddr(ctx)
	if err != nil {
		s.tb.Fatal(err)
	}
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0]})
	defer c.Close()
	promoted := func() string {
		addr, err := s.MasterAddr(ctx)
		if err != nil || addr == old {
			return ""
		}
		r := redis.NewClient(&redis.Options{Addr: addr})
		defer r.Close()
		role, err := r.Do(ctx, "ROLE").Slice()
		if err == nil && len(role) > 0 && role[0] == "master" {
			return addr
		}
		return ""
	}
	for range 3 {
		if err := c.Failover(ctx, MasterName).Err(); err != nil && !strings.Contains(err.Error(), "INPROG") {
			s.tb.Fatalf("SENTINEL FAILOVER: %v", err)
		}
		var primary string
		if poll.Until(25*time.Second, func() bool { primary = promoted(); return primary != "" }) {
			return primary
		}
	}
	s.tb.Fatalf("no new primary after three SENTINEL FAILOVERs (still %s)", old)
	return ""
}

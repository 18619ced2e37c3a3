package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is the throwaway redis-server of one run: loopback only, no
// persistence, gone when the run ends.
type redisServer struct {
	Addr    string
	Version string
	// protocol is the clients' RESP version (0: go-redis's default, as the
	// daemon uses).
	protocol int
	cmd      *exec.Cmd
	dir      string
}

// startRedis starts bin (redis-server) on a free loopback port with
// persistence off, and extra arguments, and waits until it answers PING.
func startRedis(ctx context.Context, bin string, extra ...string) (*redisServer, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%s not found on PATH; install it with: apt-get update && apt-get install -y redis-server", bin)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a free loopback port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir, err := os.MkdirTemp("", "checkbench-redis")
	if err != nil {
		return nil, err
	}
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "yes", "--databases", "16", "--loglevel", "warning"}, extra...)
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	s := &redisServer{Addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, dir: dir}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err = c.Ping(pctx).Err()
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("redis-server on %s did not answer PING within 15s: %w", s.Addr, err)
		}
		// Poll the listener; this waits for a process to start, it times nothing.
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	info, err := c.Info(ctx, "server").Result()
	if err == nil {
		s.Version = infoField(info, "redis_version")
	}
	return s, nil
}

func (s *redisServer) stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	_ = os.RemoveAll(s.dir)
}

// client returns a client on database db with a pool of poolSize and a
// round-trip counter.
func (s *redisServer) client(db, poolSize int) (*redis.Client, *rtCounter) {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DB: db, PoolSize: poolSize, Protocol: s.protocol,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, PoolTimeout: 60 * time.Second})
	rt := &rtCounter{}
	c.AddHook(rt)
	return c, rt
}

// rtCounter counts client round trips: one per command, one per pipeline.
// It also times asynq's dequeue script calls: asynq's processor dequeues
// one task at a time, so their latency bounds a server's throughput.
type rtCounter struct {
	n          atomic.Int64
	dequeues   atomic.Int64
	dequeueDur atomic.Int64 // nanoseconds
}

func (r *rtCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *rtCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		if !isDequeue(cmd) {
			return next(ctx, cmd)
		}
		t0 := time.Now()
		err := next(ctx, cmd)
		r.dequeueDur.Add(int64(time.Since(t0)))
		r.dequeues.Add(1)
		return err
	}
}

// isDequeue tells asynq's dequeue script call (v0.26: EVALSHA sha 4
// pending paused active lease ...) by its second key.
func isDequeue(cmd redis.Cmder) bool {
	a := cmd.Args()
	if len(a) < 5 || cmd.Name() != "evalsha" {
		return false
	}
	k, ok := a[4].(string)
	return ok && strings.HasPrefix(k, "asynq:{") && strings.HasSuffix(k, "}:paused")
}

func (r *rtCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

func (r *rtCounter) load() int64 {
	if r == nil {
		return 0
	}
	return r.n.Load()
}

func infoField(info, key string) string {
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && k == key {
			return v
		}
	}
	return ""
}

// usedMemory is INFO memory's used_memory: bytes allocated by Redis.
func usedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(infoField(info, "used_memory"), 10, 64)
}

// redisCPU is the CPU time (user+sys) the server has used, from INFO cpu.
func redisCPU(ctx context.Context, c *redis.Client) time.Duration {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
		f, _ := strconv.ParseFloat(infoField(info, k), 64)
		total += f
	}
	return time.Duration(total * float64(time.Second))
}

// processCPU is the CPU time (user+sys) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cmdStats is INFO commandstats: calls per command, and the microseconds
// spent in it under the key "<name>/usec" (a script's usec includes the
// commands it calls, which are also counted on their own).
type cmdStats map[string]int64

func commandStats(ctx context.Context, c *redis.Client) cmdStats {
	info, err := c.Info(ctx, "commandstats").Result()
	out := cmdStats{}
	if err != nil {
		return out
	}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[name] = n
			}
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[name+"/usec"] = n
			}
		}
	}
	return out
}

// meter measures one run: wall time, client round trips, Redis commands,
// and the CPU of this process and of Redis.
type meter struct {
	c      *redis.Client
	rt     *rtCounter
	began  time.Time
	rt0    int64
	dq0    int64
	dqDur0 int64
	cs0    cmdStats
	goCPU0 time.Duration
	rCPU0  time.Duration

	Wall       time.Duration
	RoundTrips int64
	// Dequeues and DequeueTime: asynq's dequeue script calls and their
	// total client-side latency.
	Dequeues    int64
	DequeueTime time.Duration
	Commands    cmdStats // deltas
	GoCPU       time.Duration
	RedisCPU    time.Duration
}

func startMeter(ctx context.Context, c *redis.Client, rt *rtCounter) *meter {
	m := &meter{c: c, rt: rt}
	m.cs0 = commandStats(ctx, c)
	m.rCPU0 = redisCPU(ctx, c)
	m.goCPU0 = processCPU()
	m.rt0 = rt.load()
	if rt != nil {
		m.dq0, m.dqDur0 = rt.dequeues.Load(), rt.dequeueDur.Load()
	}
	m.began = time.Now()
	return m
}

func (m *meter) stop(ctx context.Context) *meter {
	m.Wall = time.Since(m.began)
	m.RoundTrips = m.rt.load() - m.rt0
	if m.rt != nil {
		m.Dequeues = m.rt.dequeues.Load() - m.dq0
		m.DequeueTime = time.Duration(m.rt.dequeueDur.Load() - m.dqDur0)
	}
	m.GoCPU = processCPU() - m.goCPU0
	m.RedisCPU = redisCPU(ctx, m.c) - m.rCPU0
	cs := commandStats(ctx, m.c)
	m.Commands = cmdStats{}
	for k, v := range cs {
		if d := v - m.cs0[k]; d > 0 {
			m.Commands[k] = d
		}
	}
	delete(m.Commands, "info") // the meter's own
	delete(m.Commands, "info/usec")
	return m
}

// add sums o's measures into m (a measure taken in several runs).
func (m *meter) add(o *meter) {
	m.Wall += o.Wall
	m.RoundTrips += o.RoundTrips
	m.Dequeues += o.Dequeues
	m.DequeueTime += o.DequeueTime
	m.GoCPU += o.GoCPU
	m.RedisCPU += o.RedisCPU
	if m.Commands == nil {
		m.Commands = cmdStats{}
	}
	for k, v := range o.Commands {
		m.Commands[k] += v
	}
}

// dequeueLatency is the mean latency of asynq's dequeue calls in the run.
func (m *meter) dequeueLatency() time.Duration {
	if m.Dequeues == 0 {
		return 0
	}
	return m.DequeueTime / time.Duration(m.Dequeues)
}

// perItem summarises the run per item: round trips, Redis commands (with
// the commands that make up most of them), and CPU.
func (m *meter) perItem(n int) string {
	if n <= 0 {
		return ""
	}
	var total int64
	type kv struct {
		k string
		v int64
	}
	var cmds, usecs []kv
	for k, v := range m.Commands {
		if name, ok := strings.CutSuffix(k, "/usec"); ok {
			usecs = append(usecs, kv{name, v})
			continue
		}
		total += v
		cmds = append(cmds, kv{k, v})
	}
	sort.Slice(usecs, func(i, j int) bool {
		return usecs[i].v > usecs[j].v || usecs[i].v == usecs[j].v && usecs[i].k < usecs[j].k
	})
	var times []string
	for _, u := range usecs {
		per := float64(u.v) / float64(n)
		if per < 0.2 {
			continue
		}
		times = append(times, fmt.Sprintf("%s %.1f", u.k, per))
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].v > cmds[j].v || cmds[i].v == cmds[j].v && cmds[i].k < cmds[j].k })
	var parts []string
	for _, c := range cmds {
		per := float64(c.v) / float64(n)
		if per < 0.05 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", c.k, per))
	}
	f := float64(n)
	return fmt.Sprintf("per item: %.2f client round trips, %.2f Redis commands [%s]; Redis command time µs [%s]; CPU %.1f µs Go + %.1f µs Redis",
		float64(m.RoundTrips)/f, float64(total)/f, strings.Join(parts, ", "), strings.Join(times, ", "),
		float64(m.GoCPU.Nanoseconds())/1e3/f, float64(m.RedisCPU.Nanoseconds())/1e3/f)
}

// cpuPerItem is the CPU (this process + Redis) per item.
func (m *meter) cpuPerItem(n int) time.Duration {
	return (m.GoCPU + m.RedisCPU) / time.Duration(max(n, 1))
}

// cpuRatio compares two runs of n items by CPU instead of wall time:
// base's CPU per item over m's. Unlike wall time it barely moves with the
// load other processes put on a shared machine.
func (m *meter) cpuRatio(base *meter, n int) float64 {
	return m.cpuRatioOf(base, n, n)
}

// cpuRatioOf is cpuRatio for a base run of baseN items and a run of n.
func (m *meter) cpuRatioOf(base *meter, baseN, n int) float64 {
	return float64(base.cpuPerItem(baseN)) / float64(max(m.cpuPerItem(n), 1))
}

// deletePattern deletes every key matching pattern (SCAN + DEL, pipelined).
// DEL, not UNLINK: memory must be freed when it returns.
func deletePattern(ctx context.Context, c *redis.Client, pattern string) (int64, error) {
	var cursor uint64
	var n int64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 20000).Result()
		if err != nil {
			return n, fmt.Errorf("scan %s: %w", pattern, err)
		}
		for lo := 0; lo < len(keys); lo += 1000 {
			hi := min(lo+1000, len(keys))
			d, err := c.Del(ctx, keys[lo:hi]...).Result()
			if err != nil {
				return n, fmt.Errorf("delete %s: %w", pattern, err)
			}
			n += d
		}
		cursor = next
		if cursor == 0 {
			return n, nil
		}
	}
}

// flushAsynq removes every asynq key (queues, tasks, stats, servers) but
// the set of queue names, so the next run starts on empty queues. That set
// stays: an asynq.Client adds a queue's name to it once per process, so
// removing it would leave the queues unknown to asynq's Inspector.
func flushAsynq(ctx context.Context, c *redis.Client) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, "asynq:*", 20000).Result()
		if err != nil {
			return fmt.Errorf("scan asynq keys: %w", err)
		}
		keep := keys[:0]
		for _, k := range keys {
			if k != "asynq:queues" {
				keep = append(keep, k)
			}
		}
		for lo := 0; lo < len(keep); lo += 1000 {
			if err := c.Del(ctx, keep[lo:min(lo+1000, len(keep))]...).Err(); err != nil {
				return fmt.Errorf("delete asynq keys: %w", err)
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// pendingTasks is the length of a queue's pending list (asynq's key
// layout, as its Inspector reads it).
func pendingTasks(ctx context.Context, c *redis.Client, queue string) (int64, error) {
	return c.LLen(ctx, "asynq:{"+queue+"}:pending").Result()
}

// memoryUsage is MEMORY USAGE key SAMPLES samples (0: every element).
func memoryUsage(ctx context.Context, c *redis.Client, key string, samples int) (int64, error) {
	v, err := c.Do(ctx, "MEMORY", "USAGE", key, "SAMPLES", samples).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

package scheduler

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/redistest"
)

// The sweep benchmarks run on a real redis-server (redistest), where the
// numbers mean something. Set CHECKD_BENCH_N to the due connections per op,
// e.g. CHECKD_BENCH_N=1000000 go test -run '^$' -bench 'Sweep|Raw' -benchtime 1x ./scheduler
// BenchmarkRawEnqueue is the yardstick: the same tasks through
// asynq.Client with the same number of goroutines, no claim and no advance.

// cpuMeter measures CPU time, which unlike wall time is meaningful on a
// busy shared machine: the client's (this process, getrusage) and the
// Redis server's (INFO cpu). Both include the benchmark's own bookkeeping.
type cpuMeter struct {
	rdb           *redis.Client
	client, redis time.Duration
	c0, r0        time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func redisCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

func (m *cpuMeter) start(b *testing.B) { m.c0, m.r0 = processCPU(), redisCPU(b, m.rdb) }

func (m *cpuMeter) stop(b *testing.B) {
	m.client += processCPU() - m.c0
	m.redis += redisCPU(b, m.rdb) - m.r0
}

// report adds CPU µs per check of client and server.
func (m *cpuMeter) report(b *testing.B, checks int) {
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(checks) }
	b.ReportMetric(per(m.client), "client-cpu-µs/check")
	b.ReportMetric(per(m.redis), "redis-cpu-µs/check")
}

// benchN is the number of due connections per op.
func benchN(b *testing.B) int {
	n := 20_000
	if v := os.Getenv("CHECKD_BENCH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("CHECKD_BENCH_N=%q: want a positive number", v)
		}
	}
	return n
}

// seedDue writes ids into the store's due index at score at, straight into
// the documented layout ("cd:due"): creating a million connections through
// the store would dominate the benchmark's setup, and the sweep never reads
// connection records.
func seedDue(b *testing.B, rdb *redis.Client, ids []string, at time.Time) {
	b.Helper()
	ctx := context.Background()
	const chunk = 10_000
	for lo := 0; lo < len(ids); lo += chunk {
		hi := min(lo+chunk, len(ids))
		zs := make([]redis.Z, 0, hi-lo)
		for _, id := range ids[lo:hi] {
			zs = append(zs, redis.Z{Score: float64(at.UnixMilli()), Member: id})
		}
		if err := rdb.ZAdd(ctx, "cd:due", zs...).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchEnv returns a store and an asynq client on a flushed real Redis.
func benchEnv(b *testing.B) (*env, *asynq.Client) {
	b.Helper()
	e := newEnvOn(b, redistest.Start(b).Client(b), defaultInterval)
	client := asynq.NewClientFromRedisClient(e.rdb)
	return e, client
}

// BenchmarkSweep: one op is a tick enqueueing N due connections.
func BenchmarkSweep(b *testing.B) {
	n := benchN(b)
	e, client := benchEnv(b)
	ids := randomIDs(n, 1)
	s := mustNew(b, e.st, client, func(c *Config) { c.MaxPerTick = n })
	ctx := context.Background()
	var elapsed time.Duration
	cpu := &cpuMeter{rdb: e.rdb}
	for b.Loop() {
		b.StopTimer()
		if err := e.rdb.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		seedDue(b, e.rdb, ids, t0)
		cpu.start(b)
		b.StartTimer()
		st, err := s.Tick(ctx, t0.Add(time.Minute))
		b.StopTimer()
		cpu.stop(b)
		b.StartTimer()
		if err != nil {
			b.Fatal(err)
		}
		if st.Enqueued != n {
			b.Fatalf("tick %+v, want %d enqueued", st, n)
		}
		elapsed += st.Duration
	}
	b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "checks/s")
	cpu.report(b, n*b.N)
}

// BenchmarkRawEnqueue: one op enqueues the same N tasks straight through
// asynq.Client with the scheduler's default EnqueueConcurrency goroutines.
func BenchmarkRawEnqueue(b *testing.B) {
	n := benchN(b)
	e, client := benchEnv(b)
	ids := randomIDs(n, 1)
	cfg := testConfig()
	opts := []asynq.Option{asynq.Queue(cfg.Queue), asynq.Timeout(cfg.TaskTimeout), asynq.MaxRetry(cfg.MaxRetry)}
	ctx := context.Background()
	var elapsed time.Duration
	cpu := &cpuMeter{rdb: e.rdb}
	for b.Loop() {
		b.StopTimer()
		if err := e.rdb.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		cpu.start(b)
		b.StartTimer()
		began := time.Now()
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		for range cfg.EnqueueConcurrency {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					task, err := tasks.NewCheckTask(ids[i], t0, tasks.ReasonScheduled, opts...)
					if err == nil {
						_, err = client.EnqueueContext(ctx, task)
					}
					if err != nil {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		elapsed += time.Since(began)
		b.StopTimer()
		cpu.stop(b)
		b.StartTimer()
		if f := failed.Load(); f > 0 {
			b.Fatalf("%d enqueues failed", f)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "checks/s")
	cpu.report(b, n*b.N)
}

// BenchmarkTickNothingDue: a tick when nothing is due, over an index of
// 100k connections due later; it costs one claim round trip.
func BenchmarkTickNothingDue(b *testing.B) {
	e, client := benchEnv(b)
	seedDue(b, e.rdb, randomIDs(100_000, 2), t0.Add(time.Hour))
	s := mustNew(b, e.st, client)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		st, err := s.Tick(ctx, t0)
		if err != nil || st.Claimed != 0 {
			b.Fatalf("tick %+v %v, want nothing claimed", st, err)
		}
	}
}

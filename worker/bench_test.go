package worker_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/worker"
)

// benchConnections is how many connections the benchmarks spread checks
// over, so concurrent checks rarely race on one connection.
const benchConnections = 512

// infoLogger logs at info (the per-check line is formatted) into io.Discard.
func infoLogger() *logrus.Logger {
	l := quietLogger()
	l.SetLevel(logrus.InfoLevel)
	return l
}

func benchEnv(b *testing.B, rdb *redis.Client, mod func(*worker.Config)) (*env, []string) {
	b.Helper()
	e := newEnv(b, envOpts{rdb: rdb, autoTrack: true, cfg: func(c *worker.Config) {
		c.Logger = infoLogger()
		if mod != nil {
			mod(c)
		}
	}})
	ids := make([]string, benchConnections)
	for i := range ids {
		ids[i] = e.connection(b, "sandbox", "user_good").ID
	}
	return e, ids
}

// BenchmarkHandleCheck measures the handler alone: payload, LoadCheck, the
// sandbox checker (user_good, two accounts pulled) and RecordCheck.
func BenchmarkHandleCheck(b *testing.B) {
	for _, bb := range []struct {
		name string
		rdb  func(b *testing.B) *redis.Client
	}{
		{name: "miniredis", rdb: func(*testing.B) *redis.Client { return nil }},
		{name: "redis", rdb: func(b *testing.B) *redis.Client { return redistest.Start(b).Client(b) }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			e, ids := benchEnv(b, bb.rdb(b), nil)
			var n atomic.Int64
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					// A new slot each time: every call is a fresh attempt, not a duplicate.
					tk, _ := tasks.NewCheckTask(ids[i%benchConnections], t0.Add(time.Duration(i)*time.Millisecond), tasks.ReasonScheduled)
					if err := e.w.HandleCheck(ctx, tk); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
		})
	}
}

// BenchmarkServer measures end to end on a real Redis: b.N queued tasks
// drained by an asynq server (concurrency 20 and 100), with the worker's
// handler against a raw no-op handler on the same server configuration.
func BenchmarkServer(b *testing.B) {
	for _, bb := range []struct {
		name        string
		concurrency int
	}{{"raw-noop", 20}, {"worker", 20}, {"raw-noop-c100", 100}, {"worker-c100", 100}} {
		name := strings.TrimSuffix(bb.name, "-c100")
		b.Run(bb.name, func(b *testing.B) {
			var done atomic.Int64
			all := make(chan struct{})
			count := func() {
				if done.Add(1) == int64(b.N) {
					close(all)
				}
			}
			e, ids := benchEnv(b, redistest.Start(b).Client(b), func(c *worker.Config) {
				c.Concurrency, c.OnCheck = bb.concurrency, func(worker.CheckEvent) { count() }
			})
			cl := asynq.NewClientFromRedisClient(e.rdb)
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				tk, _ := tasks.NewCheckTask(ids[i%benchConnections], t0.Add(time.Duration(i)*time.Millisecond), tasks.ReasonScheduled)
				if _, err := cl.EnqueueContext(ctx, tk); err != nil {
					b.Fatal(err)
				}
			}
			goCPU0, redisCPU0 := processCPU(), redisCPU(b, e.rdb)
			b.ResetTimer()
			stop := func() {}
			if name == "worker" {
				must(b, e.w.Start(ctx))
				stop = func() { _ = e.w.Stop(ctx) }
			} else {
				srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{Concurrency: bb.concurrency,
					Queues: configs.Default().Worker.Queues, Logger: infoLogger()})
				must(b, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { count(); return nil })))
				stop = srv.Shutdown
			}
			select {
			case <-all:
			case <-time.After(5 * time.Minute):
				b.Fatalf("only %d of %d tasks handled", done.Load(), b.N)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
			// CPU per task does not depend on what else the machine runs,
			// unlike tasks/s on a shared box.
			b.ReportMetric(float64((processCPU()-goCPU0).Microseconds())/float64(b.N), "go-cpu-µs/task")
			b.ReportMetric(float64((redisCPU(b, e.rdb)-redisCPU0).Microseconds())/float64(b.N), "redis-cpu-µs/task")
			stop()
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the CPU time the Redis server has used, from INFO cpu.
func redisCPU(b *testing.B, rdb redis.UniversalClient) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

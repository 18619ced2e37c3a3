package worker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/worker"
)

// The empty-queue memo under an operator's pause and resume and under
// Redis faults, through a real asynq server: the default queue holds a
// backlog of quick tasks (connections that do not exist: a "not found"
// each, recorded by no OnCheck), and on-demand checks of real connections
// go to the critical queue, which the memo holds empty while default hands
// out tasks.

// memoFaultEnv is a worker over rdb with its empty-queue memo at recheck, a
// default backlog of n, and a record of each real check.
type memoFaultEnv struct {
	*env
	enq     *asynq.Client
	insp    *asynq.Inspector
	backlog int

	mu     sync.Mutex
	served map[string]int // connection → checks recorded
	// onServe, when set, is called with each check (under mu).
	onServe func(connID string)
}

func newMemoFaultEnv(t *testing.T, rdb *redis.Client, recheck time.Duration, backlog int) *memoFaultEnv {
	t.Helper()
	m := &memoFaultEnv{backlog: backlog, served: map[string]int{}}
	m.env = newEnv(t, envOpts{rdb: rdb, cfg: func(c *worker.Config) {
		c.Concurrency, c.EmptyQueueRecheck, c.ShutdownTimeout = 8, recheck, 10*time.Second
		c.OnCheck = func(ev worker.CheckEvent) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.served[ev.ConnectionID]++
			if m.onServe != nil {
				m.onServe(ev.ConnectionID)
			}
		}
	}})
	m.enq = asynq.NewClientFromRedisClient(m.rdb)
	m.insp = asynq.NewInspectorFromRedisClient(m.rdb)
	ctx := context.Background()
	for i := range backlog {
		tk, err := tasks.NewCheckTask(fmt.Sprintf("missing-%d", i), t0, tasks.ReasonScheduled)
		must(t, err)
		if _, err := m.enq.EnqueueContext(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (m *memoFaultEnv) start(t *testing.T) {
	t.Helper()
	must(t, m.w.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.w.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
}

// urgent creates n connections and enqueues a check of each on critical.
func (m *memoFaultEnv) urgent(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = m.connection(t, "sandbox", "user_good").ID
		tk, err := tasks.NewCheckTask(ids[i], t0, tasks.ReasonRefresh, asynq.Queue(tasks.QueueCritical))
		must(t, err)
		if _, err := m.enq.EnqueueContext(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// queue is q's asynq info.
func (m *memoFaultEnv) queue(t *testing.T, q string) *asynq.QueueInfo {
	t.Helper()
	qi, err := m.insp.GetQueueInfo(q)
	if err != nil {
		t.Fatal(err)
	}
	return qi
}

// pending is how many tasks wait in q.
func (m *memoFaultEnv) pending(t *testing.T, q string) int { return m.queue(t, q).Pending }

// servedAll reports whether each of ids was checked, and fails the test
// when one was checked twice.
func (m *memoFaultEnv) servedAll(t *testing.T, ids []string) bool {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	all := true
	for _, id := range ids {
		switch n := m.served[id]; {
		case n == 0:
			all = false
		case n > 1:
			t.Fatalf("%s checked %d times", id, n)
		}
	}
	return all
}

// TestEmptyQueueMemoPauseResume proves that the memo keeps asynq's pause
// and resume of a queue (the Inspector's PauseQueue and UnpauseQueue, the
// API's /v1/queues routes) as they are without it, with the default
// recheck, a longer one, and none:
//
//   - critical paused while default hands out 300 tasks: none of
//     critical's checks runs, and its tasks stay pending;
//   - critical resumed: all its checks run while default still has a
//     backlog (the memo asks it again, it does not wait for default to
//     drain);
//   - default paused mid-flow: it hands out no task (its pending count
//     holds), and checks put on critical meanwhile run (with no task
//     flowing the memo answers nothing);
//   - default resumed: it drains, every task processed once, every check
//     recorded once.
func TestEmptyQueueMemoPauseResume(t *testing.T) {
	t.Parallel()
	const backlog, urgentN = 1200, 12
	for _, tc := range []struct {
		name    string
		recheck time.Duration
	}{
		{"default recheck", configs.Default().Worker.EmptyQueueRecheck},
		{"recheck 50ms", 50 * time.Millisecond},
		{"memo off", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newMemoFaultEnv(t, nil, tc.recheck, backlog)
			var critPaused atomic.Bool
			var servedPausedCrit atomic.Int64
			m.onServe = func(string) {
				if critPaused.Load() {
					servedPausedCrit.Add(1)
				}
			}
			must(t, m.insp.PauseQueue(tasks.QueueCritical))
			critPaused.Store(true)
			first := m.urgent(t, urgentN)
			m.start(t)

			poll.WaitFor(t, 60*time.Second, "default handing out 300 tasks with critical paused", func() bool {
				return m.pending(t, tasks.QueueDefault) <= backlog-300
			})
			if n := servedPausedCrit.Load(); n > 0 {
				t.Fatalf("%d checks of the paused critical queue ran", n)
			}
			if qi := m.queue(t, tasks.QueueCritical); qi.Pending != urgentN || qi.Active != 0 || !qi.Paused {
				t.Fatalf("paused critical: %d pending, %d active, paused %v; want %d pending", qi.Pending, qi.Active, qi.Paused, urgentN)
			}

			critPaused.Store(false)
			must(t, m.insp.UnpauseQueue(tasks.QueueCritical))
			left := -1
			poll.WaitFor(t, 60*time.Second, "the resumed critical queue's checks", func() bool {
				if !m.servedAll(t, first) {
					return false
				}
				left = m.pending(t, tasks.QueueDefault)
				return true
			})
			t.Logf("critical resumed: its %d checks ran with %d of %d default tasks still pending", urgentN, left, backlog)
			if left == 0 {
				t.Errorf("the resumed critical queue was served only once default's backlog had drained")
			}

			must(t, m.insp.PauseQueue(tasks.QueueDefault))
			held := m.pending(t, tasks.QueueDefault)
			second := m.urgent(t, urgentN)
			poll.WaitFor(t, 60*time.Second, "critical's checks with default paused", func() bool { return m.servedAll(t, second) })
			if n := m.pending(t, tasks.QueueDefault); n != held {
				t.Errorf("paused default handed out tasks: %d pending, %d when paused", n, held)
			}

			must(t, m.insp.UnpauseQueue(tasks.QueueDefault))
			poll.WaitFor(t, 60*time.Second, "default to drain", func() bool {
				qi := m.queue(t, tasks.QueueDefault)
				return qi.Pending == 0 && qi.Active == 0
			})
			qi := m.queue(t, tasks.QueueDefault)
			if qi.Processed != backlog || qi.Failed != 0 || qi.Retry != 0 || qi.Archived != 0 {
				t.Errorf("default: %d processed, %d failed, %d retry, %d archived; want %d processed", qi.Processed, qi.Failed, qi.Retry, qi.Archived, backlog)
			}
			m.servedAll(t, append(first, second...))
			if c := m.queue(t, tasks.QueueCritical); c.Processed != 2*urgentN || c.Pending != 0 {
				t.Errorf("critical: %d processed, %d pending; want %d processed", c.Processed, c.Pending, 2*urgentN)
			}
		})
	}
}

// dequeueEvals counts asynq's dequeue script run by its source (EVAL, the
// fallback after NOSCRIPT) that reached Redis.
type dequeueEvals struct{ n atomic.Int64 }

func (h *dequeueEvals) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *dequeueEvals) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *dequeueEvals) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); cmd.Name() == "eval" && len(a) > 3 {
			if k, _ := a[3].(string); len(k) > 8 && k[len(k)-8:] == ":pending" {
				h.n.Add(1)
			}
		}
		return next(ctx, cmd)
	}
}

// TestEmptyQueueMemoRedisFaults proves that the memo survives Redis
// losing its scripts while a worker hands out a backlog with critical
// held empty: SCRIPT FLUSH, and a crash and restart (AOF) of a real
// redis-server of the test's own. Every dequeue then meets NOSCRIPT (or a
// dead connection), which the memo must neither take for "empty" nor
// keep; go-redis's EVAL fallback goes through it and reloads the script.
// Checks put on critical after the fault all run, once each, while
// default still has a backlog, and default is then handed out to the end.
func TestEmptyQueueMemoRedisFaults(t *testing.T) {
	t.Parallel()
	const backlog, urgentN = 1500, 12
	for _, tc := range []struct {
		name  string
		aof   bool
		fault func(t *testing.T, srv *redistest.Own, rdb *redis.Client)
	}{
		{"script flush", false, func(t *testing.T, _ *redistest.Own, rdb *redis.Client) {
			must(t, rdb.ScriptFlush(context.Background()).Err())
		}},
		{"crash and restart", true, func(t *testing.T, srv *redistest.Own, _ *redis.Client) { srv.Crash() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.StartOwn(t, tc.aof)
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 32})
			t.Cleanup(func() { _ = rdb.Close() })
			evals := &dequeueEvals{}
			rdb.AddHook(evals)
			admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
			t.Cleanup(func() { _ = admin.Close() })
			m := newMemoFaultEnv(t, rdb, 0, backlog)
			m.start(t)
			poll.WaitFor(t, 60*time.Second, "default handing out tasks", func() bool {
				return m.pending(t, tasks.QueueDefault) <= backlog-200
			})
			before := evals.n.Load()
			tc.fault(t, srv, admin)
			ids := m.urgent(t, urgentN)
			left := -1
			poll.WaitFor(t, 60*time.Second, "critical's checks after the fault", func() bool {
				if !m.servedAll(t, ids) {
					return false
				}
				left = m.pending(t, tasks.QueueDefault)
				return true
			})
			t.Logf("%s: critical's %d checks ran with %d of %d default tasks pending; %d dequeue EVALs after it",
				tc.name, urgentN, left, backlog, evals.n.Load()-before)
			if evals.n.Load() == before {
				t.Error("no dequeue fell back to EVAL: the fault did not empty the script cache")
			}
			if left == 0 {
				t.Error("critical was served only once default had drained")
			}
			poll.WaitFor(t, 60*time.Second, "default handed out to the end", func() bool {
				return m.pending(t, tasks.QueueDefault) == 0
			})
			m.servedAll(t, ids)
			if c := m.queue(t, tasks.QueueCritical); c.Pending != 0 || c.Processed != urgentN {
				t.Errorf("critical: %d pending, %d processed; want %d processed", c.Pending, c.Processed, urgentN)
			}
			m.mu.Lock()
			n := len(m.served)
			m.mu.Unlock()
			if n != urgentN {
				t.Errorf("%d connections checked, want the %d urgent ones", n, urgentN)
			}
			for _, id := range ids {
				if c := m.get(t, id); c.Status != checks.ConnConnected {
					t.Errorf("%s: %s, want CONNECTED", id, c.Status)
				}
			}
		})
	}
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/testenv"
	"github.com/checkd/checkd/store"
)

// qt0 is the fake clocks' start in these tests.
var qt0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// dequeueKeys are the keys asynq v0.26's dequeue script gets for queue q
// (internal/rdb.Dequeue: pending list, paused flag, active list, lease set).
func dequeueKeys(q string) []string {
	p := "asynq:{" + q + "}:"
	return []string{p + "pending", p + "paused", p + "active", p + "lease"}
}

// scriptCalls is a go-redis hook counting the script calls that reach
// Redis: every EVALSHA and EVAL, and those shaped like asynq's dequeue
// (first key a pending list, second a paused flag), told apart
// independently of tasks.IsDequeue.
type scriptCalls struct {
	evalsha, eval atomic.Int64
	dequeues      atomic.Int64
	// notDequeue counts dequeue-shaped calls tasks.IsDequeue does not recognise
	// (asynq's keys changed shape: the memo would never skip).
	notDequeue atomic.Int64
	// queues counts dequeue calls per queue's pending key.
	mu     sync.Mutex
	queues map[string]int
}

func (h *scriptCalls) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *scriptCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *scriptCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "evalsha":
			h.evalsha.Add(1)
		case "eval":
			h.eval.Add(1)
		default:
			return next(ctx, cmd)
		}
		// EVAL[SHA] script numkeys key...
		args := cmd.Args()
		if len(args) >= 5 {
			k0, _ := args[3].(string)
			k1, _ := args[4].(string)
			if strings.HasSuffix(k0, "}:pending") && strings.HasSuffix(k1, "}:paused") {
				h.dequeues.Add(1)
				n, _ := args[2].(int)
				if keys := stringArgs(args[3:], n); !tasks.IsDequeue(keys) {
					h.notDequeue.Add(1)
				}
				h.mu.Lock()
				if h.queues == nil {
					h.queues = map[string]int{}
				}
				h.queues[k0]++
				h.mu.Unlock()
			}
		}
		return next(ctx, cmd)
	}
}

// queueCalls is how many dequeue calls for queue q reached Redis.
func (h *scriptCalls) queueCalls(q string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.queues[dequeueKeys(q)[0]]
}

// stringArgs returns the first n of args as strings.
func stringArgs(args []any, n int) []string {
	if n > len(args) {
		n = len(args)
	}
	out := make([]string, 0, n)
	for _, a := range args[:n] {
		s, _ := a.(string)
		out = append(out, s)
	}
	return out
}

// calls is how many EVALSHA and EVAL reached Redis.
func (h *scriptCalls) calls() int64 { return h.evalsha.Load() + h.eval.Load() }

// dequeueScript is shaped like asynq's: it pops a task from KEYS[1] into
// KEYS[3] unless the queue is paused, and returns nil when it has none.
var dequeueScript = redis.NewScript(`if redis.call('EXISTS', KEYS[2]) == 0 then
	local id = redis.call('RPOPLPUSH', KEYS[1], KEYS[3])
	if id then return id end
end
return nil`)

// otherScript stands for asynq's other scripts: it returns ARGV[1], or
// nil without one.
var otherScript = redis.NewScript(`if ARGV[1] then return ARGV[1] end
return nil`)

// memoEnv is a poll client over its own miniredis, with a fake clock and
// a hook counting the script calls that reach Redis.
type memoEnv struct {
	raw   *redis.Client
	clk   *clock.Fake
	hook  *scriptCalls
	c     redis.UniversalClient
	ctx   context.Context
	calls int64 // hook.calls() at the last step
}

func newMemoEnv(t *testing.T, ttl time.Duration) *memoEnv {
	t.Helper()
	mr := miniredis.RunT(t)
	raw := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = raw.Close() })
	e := &memoEnv{raw: raw, clk: clock.NewFake(qt0), hook: &scriptCalls{}, ctx: context.Background()}
	raw.AddHook(e.hook)
	// Loaded, so that a dequeue is one EVALSHA, as in a running asynq.
	if err := dequeueScript.Load(e.ctx, raw).Err(); err != nil {
		t.Fatal(err)
	}
	if err := otherScript.Load(e.ctx, raw).Err(); err != nil {
		t.Fatal(err)
	}
	e.c = newPollClient(raw, ttl, e.clk)
	return e
}

// dequeue runs the dequeue script for q through the poll client and
// checks its answer ("" for none, i.e. redis.Nil) and how many script
// calls reached Redis for it.
func (e *memoEnv) dequeue(t *testing.T, q, want string, wantCalls int64) {
	t.Helper()
	e.run(t, dequeueScript, dequeueKeys(q), nil, want, wantCalls)
}

// run runs s with keys and args through the poll client and checks its
// answer ("" for redis.Nil) and the script calls that reached Redis.
func (e *memoEnv) run(t *testing.T, s *redis.Script, keys []string, args []any, want string, wantCalls int64) {
	t.Helper()
	res, err := s.Run(e.ctx, e.c, keys, args...).Result()
	switch {
	case want == "" && !errors.Is(err, redis.Nil):
		t.Errorf("%q: got %v, %v; want redis.Nil", keys[0], res, err)
	case want != "" && (err != nil || res != want):
		t.Errorf("%q: got %v, %v; want %q", keys[0], res, err, want)
	}
	n := e.hook.calls()
	if got := n - e.calls; got != wantCalls {
		t.Errorf("%q: %d script calls reached Redis, want %d", keys[0], got, wantCalls)
	}
	e.calls = n
}

func (e *memoEnv) push(t *testing.T, q, id string) {
	t.Helper()
	if err := e.raw.LPush(e.ctx, dequeueKeys(q)[0], id).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestEmptyQueueMemo proves, on a fake clock, what the memo answers and
// what it lets through to Redis: a queue found empty is answered empty
// without a round trip only while another queue returned a task less than
// ttl ago and for less than ttl after it was found empty (a task arriving
// meanwhile waits at most that long); with nothing flowing every queue is
// asked; paused counts as empty; other scripts always reach Redis; the
// EVAL fallback after SCRIPT FLUSH is observed too; ttl ≤ 0 is asynq's own
// behaviour; and concurrent use pops every task exactly once.
func TestEmptyQueueMemo(t *testing.T) {
	t.Parallel()
	const ttl = time.Second

	t.Run("walk", func(t *testing.T) {
		t.Parallel()
		e := newMemoEnv(t, ttl)
		steps := []struct {
			name   string
			before func(t *testing.T)
			queue  string
			want   string // "" for redis.Nil
			calls  int64  // script calls that reach Redis
		}{
			{name: "critical is empty: asked", queue: "critical", calls: 1},
			{name: "default has a task: asked, a hit", before: func(t *testing.T) { e.push(t, "default", "d1") },
				queue: "default", want: "d1", calls: 1},
			{name: "critical again: answered from memory", queue: "critical", calls: 0},
			{name: "low, never asked: asked", queue: "low", calls: 1},
			{name: "low again: answered from memory", queue: "low", calls: 0},
			{name: "a task arrives in critical: unseen for just under ttl",
				before: func(t *testing.T) { e.push(t, "critical", "c1"); e.clk.Advance(ttl - time.Nanosecond) },
				queue:  "critical", calls: 0},
			{name: "ttl after critical was found empty: asked, gets its task",
				before: func(t *testing.T) { e.clk.Advance(time.Nanosecond) }, queue: "critical", want: "c1", calls: 1},
			{name: "critical's hit forgot it was empty: asked", queue: "critical", calls: 1},
			{name: "low found empty ttl ago: asked", queue: "low", calls: 1},
			{name: "low found empty just now, hits flowing: from memory", queue: "low", calls: 0},
			{name: "default found empty: asked", queue: "default", calls: 1},
			{name: "default again, a hit less than ttl ago: from memory", queue: "default", calls: 0},
			{name: "no hit for ttl: critical asked", before: func(t *testing.T) { e.clk.Advance(ttl) },
				queue: "critical", calls: 1},
			{name: "no hit for ttl: critical, just found empty, asked again", queue: "critical", calls: 1},
			{name: "no hit for ttl: low asked", queue: "low", calls: 1},
			{name: "no hit for ttl: low asked again", queue: "low", calls: 1},
			{name: "no hit for ttl: default asked", queue: "default", calls: 1},
			{name: "a task arrives in critical, nothing flowing: asked, a hit",
				before: func(t *testing.T) { e.push(t, "critical", "c2") }, queue: "critical", want: "c2", calls: 1},
			{name: "critical, which just gave a task, is asked again", queue: "critical", calls: 1},
			{name: "a task arrives in default, found empty just before critical's hit: from memory",
				before: func(t *testing.T) { e.push(t, "default", "d2") }, queue: "default", calls: 0},
			{name: "low, found empty just before critical's hit: from memory", queue: "low", calls: 0},
			{name: "ttl later: default asked, gets its task", before: func(t *testing.T) { e.clk.Advance(ttl) },
				queue: "default", want: "d2", calls: 1},
			{name: "critical found empty ttl ago: asked", queue: "critical", calls: 1},
			{name: "critical just found empty, hits flowing: from memory", queue: "critical", calls: 0},
		}
		for _, s := range steps { // in order, on one memo
			t.Run(s.name, func(t *testing.T) {
				if s.before != nil {
					s.before(t)
				}
				e.dequeue(t, s.queue, s.want, s.calls)
			})
		}
		if n, err := e.raw.LLen(e.ctx, "asynq:{critical}:active").Result(); err != nil || n != 2 {
			t.Errorf("critical's active list holds %d, %v; want its two tasks, popped by Redis", n, err)
		}
	})

	t.Run("paused queue", func(t *testing.T) {
		t.Parallel()
		e := newMemoEnv(t, ttl)
		e.push(t, "default", "d1")
		if err := e.raw.Set(e.ctx, dequeueKeys("default")[1], 1, 0).Err(); err != nil {
			t.Fatal(err)
		}
		e.dequeue(t, "default", "", 1) // paused: the script returns nil
		e.push(t, "critical", "c1")
		e.dequeue(t, "critical", "c1", 1)
		e.dequeue(t, "default", "", 0) // paused is taken as empty
		if err := e.raw.Del(e.ctx, dequeueKeys("default")[1]).Err(); err != nil {
			t.Fatal(err)
		}
		e.dequeue(t, "default", "", 0) // resumed within ttl: not seen yet
		e.clk.Advance(ttl)
		e.dequeue(t, "default", "d1", 1)
	})

	t.Run("other scripts", func(t *testing.T) {
		t.Parallel()
		e := newMemoEnv(t, ttl)
		e.dequeue(t, "critical", "", 1)
		e.push(t, "default", "d1")
		e.dequeue(t, "default", "d1", 1)
		e.dequeue(t, "critical", "", 0) // the memo skips now, but never another script:
		others := [][]string{
			{"asynq:{critical}:scheduled", "asynq:{critical}:pending"},
			{"asynq:{critical}:active", "asynq:{critical}:lease", "asynq:{critical}:pending", "asynq:{critical}:t:x"},
			dequeueKeys("critical")[:3],
			{"asynq:{low}:pending", "asynq:{low}:paused"},
		}
		for _, keys := range others {
			e.run(t, otherScript, keys, nil, "", 1)
			e.run(t, otherScript, keys, nil, "", 1)
		}
		// A nil from another script on low's keys did not mark low empty.
		e.dequeue(t, "low", "", 1)
		// Nor does another script's answer count as a hit: with the last
		// hit ttl ago, critical is asked each time.
		e.clk.Advance(ttl)
		e.dequeue(t, "critical", "", 1)
		e.run(t, otherScript, []string{"asynq:{critical}:scheduled", "asynq:{critical}:pending"}, []any{"x"}, "x", 1)
		e.dequeue(t, "critical", "", 1)
	})

	t.Run("eval fallback", func(t *testing.T) {
		t.Parallel()
		e := newMemoEnv(t, ttl)
		flush := func(t *testing.T) {
			t.Helper()
			if err := e.raw.ScriptFlush(e.ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		// Each call after a flush is EVALSHA (NOSCRIPT), then EVAL.
		flush(t)
		e.dequeue(t, "critical", "", 2)
		e.push(t, "default", "d1")
		flush(t)
		e.dequeue(t, "default", "d1", 2)
		if got := e.hook.eval.Load(); got != 2 {
			t.Fatalf("%d EVALs reached Redis, want 2 (the fallback was not exercised)", got)
		}
		// Both results came back through EVAL; the memo saw them.
		flush(t)
		e.dequeue(t, "critical", "", 0)
		if got := e.hook.eval.Load(); got != 2 {
			t.Errorf("%d EVALs reached Redis, want still 2", got)
		}
	})

	t.Run("off", func(t *testing.T) {
		t.Parallel()
		for _, off := range []time.Duration{0, -time.Nanosecond, -time.Hour} {
			t.Run(off.String(), func(t *testing.T) {
				t.Parallel()
				e := newMemoEnv(t, off)
				if e.c != redis.UniversalClient(e.raw) {
					t.Fatalf("newPollClient(rdb, %v) = %T, want rdb itself", off, e.c)
				}
				e.dequeue(t, "critical", "", 1)
				e.push(t, "default", "d1")
				e.dequeue(t, "default", "d1", 1)
				e.dequeue(t, "critical", "", 1)
				e.dequeue(t, "critical", "", 1)
				e.dequeue(t, "default", "", 1)
				e.dequeue(t, "default", "", 1)
			})
		}
	})

	t.Run("concurrent use", func(t *testing.T) {
		t.Parallel()
		e := newMemoEnv(t, ttl)
		const items, goroutines = 200, 8
		for i := range items {
			e.push(t, "default", fmt.Sprint(i))
		}
		var (
			mu  sync.Mutex
			got = map[string]int{}
			wg  sync.WaitGroup
		)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					q := []string{"critical", "default", "low"}[(g+i)%3]
					res, err := dequeueScript.Run(e.ctx, e.c, dequeueKeys(q)).Text()
					switch {
					case errors.Is(err, redis.Nil):
						if q == "default" {
							return // drained (default is never skipped: it is where hits come from)
						}
					case err != nil:
						t.Error(err)
						return
					default:
						mu.Lock()
						got[res]++
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		if len(got) != items {
			t.Errorf("popped %d distinct tasks, want %d", len(got), items)
		}
		for id, n := range got {
			if n != 1 {
				t.Errorf("task %s popped %d times", id, n)
			}
		}
	})
}

// queueEnv is a worker (not started) over its own miniredis, whose client
// counts the script calls reaching Redis; it counts the checks recorded.
type queueEnv struct {
	rdb     *redis.Client
	hook    *scriptCalls
	st      *store.Store
	w       *Worker
	co      store.Company
	checked atomic.Int64
	onCheck func(CheckEvent) // called after counting, if set (before Start)
}

func newQueueEnv(t *testing.T, mod func(*Config)) *queueEnv {
	t.Helper()
	te := testenv.New(t, testenv.Options{Start: qt0})
	e := &queueEnv{rdb: te.Redis, hook: &scriptCalls{}, st: te.Store}
	e.rdb.AddHook(e.hook)
	reg := checks.NewRegistry()
	if err := reg.Register(sandbox.Datasource, sandbox.New(sandbox.Options{})); err != nil {
		t.Fatal(err)
	}
	cfg := ConfigFrom(configs.Default())
	mod(&cfg)
	cfg.Clock, cfg.Logger = te.Clock, testenv.QuietLogger()
	cfg.OnCheck = func(ev CheckEvent) {
		e.checked.Add(1)
		if e.onCheck != nil {
			e.onCheck(ev)
		}
	}
	var err error
	if e.w, err = New(e.rdb, e.st, reg, cfg); err != nil {
		t.Fatal(err)
	}
	e.co = te.Company(t, "Acme")
	return e
}

// connections creates n sandbox connections that check CONNECTED.
func (e *queueEnv) connections(t *testing.T, n int) []store.Connection {
	t.Helper()
	ins := make([]store.NewConnection, n)
	for i := range ins {
		ins[i] = store.NewConnection{Datasource: sandbox.Datasource,
			Credentials: checks.Credentials{Username: sandbox.UserGood, Password: "hunter2"}}
	}
	cs, err := e.st.CreateConnections(context.Background(), e.co.ID, ins)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// enqueue puts the check of each connection ID into queue q.
func (e *queueEnv) enqueue(t *testing.T, q string, ids ...string) {
	t.Helper()
	cl := asynq.NewClientFromRedisClient(e.rdb)
	for _, id := range ids {
		tk, err := tasks.NewCheckTask(id, qt0, tasks.ReasonScheduled, asynq.Queue(q))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.EnqueueContext(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *queueEnv) start(t *testing.T) {
	t.Helper()
	if err := e.w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.stop(t) })
}

func (e *queueEnv) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.w.Stop(ctx); err != nil {
		t.Error(err)
	}
}

// TestWorkerSkipsEmptyQueues proves, through a real asynq server, that
// with the memo a backlog in one queue costs about one dequeue round trip
// per task, where asynq alone also asks the empty queues (about 1.92 per
// task with the default weights and only the default queue full: critical
// comes before default 6/9 of the time, low 1/4). It also checks that
// asynq's real dequeue keys are what tasks.IsDequeue recognises.
func TestWorkerSkipsEmptyQueues(t *testing.T) {
	t.Parallel()
	const n = 200
	tests := []struct {
		name     string
		recheck  time.Duration
		min, max int64 // dequeue calls reaching Redis
	}{
		{name: "memo", recheck: time.Minute, min: n, max: n + 10},
		{name: "off", recheck: 0, min: n * 13 / 10, max: 1 << 62},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newQueueEnv(t, func(c *Config) { c.EmptyQueueRecheck, c.ShutdownTimeout = tt.recheck, 10*time.Second })
			cs := e.connections(t, n)
			ids := make([]string, len(cs))
			for i, c := range cs {
				ids[i] = c.ID
			}
			e.enqueue(t, tasks.QueueDefault, ids...)
			e.start(t)
			poll.WaitFor(t, 60*time.Second, fmt.Sprintf("%d checks", n), func() bool { return e.checked.Load() >= n })
			e.stop(t)

			calls := e.hook.dequeues.Load()
			t.Logf("EmptyQueueRecheck %v: %d dequeue calls reached Redis for %d tasks (%.2f per task; critical %d, default %d, low %d)",
				tt.recheck, calls, n, float64(calls)/n,
				e.hook.queueCalls("critical"), e.hook.queueCalls("default"), e.hook.queueCalls("low"))
			if got := e.checked.Load(); got != n {
				t.Errorf("%d checks recorded, want %d", got, n)
			}
			if calls < tt.min || calls > tt.max {
				t.Errorf("%d dequeue calls reached Redis for %d tasks, want %d to %d", calls, n, tt.min, tt.max)
			}
			if d := e.hook.queueCalls("default"); d < n {
				t.Errorf("default was asked %d times for its %d tasks", d, n)
			}
			if bad := e.hook.notDequeue.Load(); bad != 0 {
				t.Errorf("%d of asynq's dequeue calls were not recognised by tasks.IsDequeue", bad)
			}
		})
	}
}

// TestEmptyQueueRecheckServesCritical proves that a task put into a queue
// the memo holds empty is served while another queue still has a long
// backlog: the memo asks again ttl after it found the queue empty, instead
// of starving it until the busy queue drains.
func TestEmptyQueueRecheckServesCritical(t *testing.T) {
	t.Parallel()
	const backlog = 2000
	e := newQueueEnv(t, func(c *Config) { c.EmptyQueueRecheck, c.ShutdownTimeout = 20*time.Millisecond, 10*time.Second })
	urgent := e.connections(t, 1)[0]
	// The backlog's connections do not exist: each task is a quick "not
	// found" (no OnCheck), so only the urgent check is recorded.
	ids := make([]string, backlog)
	for i := range ids {
		ids[i] = fmt.Sprintf("missing-%d", i)
	}
	e.enqueue(t, tasks.QueueDefault, ids...)
	pendingKey := dequeueKeys(tasks.QueueDefault)[0]
	left := make(chan int64, 1)
	e.onCheck = func(ev CheckEvent) {
		if ev.ConnectionID != urgent.ID {
			return
		}
		n, err := e.rdb.LLen(context.Background(), pendingKey).Result()
		if err != nil {
			t.Error(err)
		}
		left <- n
	}
	e.start(t)
	// Critical has been found empty, and default is handing out tasks.
	poll.WaitFor(t, 60*time.Second, "default handing out tasks, critical found empty", func() bool {
		n, err := e.rdb.LLen(context.Background(), pendingKey).Result()
		return err == nil && n < backlog-20 && e.hook.queueCalls(tasks.QueueCritical) > 0
	})
	e.enqueue(t, tasks.QueueCritical, urgent.ID)

	select {
	case n := <-left:
		t.Logf("the critical task was served with %d of %d default tasks still pending", n, backlog)
		if n == 0 {
			t.Errorf("the critical task was served only once default's backlog of %d had drained", backlog)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the critical task was not served within 60s")
	}
	if c, err := e.st.GetConnection(context.Background(), urgent.ID); err != nil || c.Status != checks.ConnConnected {
		t.Errorf("urgent connection: %v, %v; want CONNECTED", c.Status, err)
	}
}

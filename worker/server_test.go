package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/worker"
)

func TestServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rdb  func(t *testing.T) *redis.Client
	}{
		{name: "miniredis", rdb: func(*testing.T) *redis.Client { return nil }},
		{name: "real redis", rdb: func(t *testing.T) *redis.Client { return redistest.Start(t).Client(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{rdb: tt.rdb(t), cfg: func(c *worker.Config) { c.Concurrency, c.ShutdownTimeout = 4, 5*time.Second }})
			good := e.connection(t, "sandbox", "user_good")
			bad := e.connection(t, "sandbox", "error_MFA_TOKEN_EXPIRED")
			ctx := context.Background()
			must(t, e.w.Start(ctx))
			if err := e.w.Start(ctx); err == nil {
				t.Error("second Start succeeded")
			}
			if n := e.st.BatchStats().Slots; n != 4 {
				t.Errorf("the store counts %d check slots while the worker runs, want its concurrency 4", n)
			}

			cl := asynq.NewClientFromRedisClient(e.rdb)
			for _, cn := range []string{good.ID, bad.ID} {
				tk, err := tasks.NewCheckTask(cn, t0, tasks.ReasonRefresh, asynq.Queue(tasks.QueueCritical))
				must(t, err)
				if _, err := cl.EnqueueContext(ctx, tk); err != nil {
					t.Fatalf("enqueue: %v", err)
				}
			}
			poll.WaitFor(t, 20*time.Second, "both checks recorded", func() bool {
				return e.get(t, good.ID).Status != checks.ConnPending && e.get(t, bad.ID).Status != checks.ConnPending
			})
			if g := e.get(t, good.ID); g.Status != checks.ConnConnected || len(g.Accounts) != 2 {
				t.Errorf("user_good: %s with %d accounts, want CONNECTED with 2", g.Status, len(g.Accounts))
			}
			if b := e.get(t, bad.ID); b.Status != checks.ConnMFATokenExpired {
				t.Errorf("error_MFA_TOKEN_EXPIRED: %s", b.Status)
			}
			h, err := e.st.History(ctx, good.ID, 1)
			if err != nil || len(h) == 0 || h[0].Attempt != tasks.CheckTaskID(good.ID, t0) {
				t.Errorf("history %+v, %v: want asynq's task ID as the attempt", h, err)
			}

			stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			must(t, e.w.Stop(stopCtx))
			must(t, e.w.Stop(stopCtx))
			if err := e.w.Start(ctx); err == nil {
				t.Error("Start after Stop succeeded")
			}
			if n := e.st.BatchStats().Slots; n != 0 {
				t.Errorf("the store counts %d check slots after Stop (twice) and a refused Start, want 0", n)
			}
		})
	}
}

// TestStopDrains checks that Stop lets an in-flight check finish and record.
func TestStopDrains(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	e := newEnv(t, envOpts{cfg: func(c *worker.Config) { c.Concurrency, c.ShutdownTimeout = 1, 10*time.Second },
		checkers: map[string]checks.Checker{
			"gated": checks.CheckerFunc(func(ctx context.Context, req checks.Request) (checks.Result, error) {
				close(entered)
				<-release
				return checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "1"}}}, nil
			}),
		}})
	cn := e.connection(t, "gated", "user_good")
	ctx := context.Background()
	must(t, e.w.Start(ctx))
	if _, err := asynq.NewClientFromRedisClient(e.rdb).EnqueueContext(ctx, task(t, cn.ID, t0)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the check did not start")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- e.w.Stop(ctx) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a check was in flight", err)
	default:
	}
	close(release)
	must(t, <-stopped)
	if got := e.get(t, cn.ID); got.Status != checks.ConnConnected {
		t.Fatalf("status %s after a graceful stop, want the in-flight check recorded", got.Status)
	}
}

func TestStopBeforeStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	must(t, e.w.Stop(ctx))
	must(t, e.w.Stop(ctx))
	if err := e.w.Start(ctx); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
}

func TestStartRedisDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	_ = e.rdb.Close()
	if err := e.w.Start(context.Background()); err == nil {
		t.Fatal("Start with Redis down succeeded")
	}
	if n := e.st.BatchStats().Slots; n != 0 {
		t.Errorf("a worker that did not start left %d check slots counted", n)
	}
	must(t, e.w.Stop(context.Background()))
}

// TestTemporaryFailureOnLastAttempt: a check whose checker fails
// temporarily on every attempt is recorded as OTHER_ERROR on the last one
// (asynq retries the earlier ones), and its queued mark ends with it.
func TestTemporaryFailureOnLastAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{cfg: func(c *worker.Config) { c.Concurrency, c.ShutdownTimeout = 2, 5*time.Second }})
	cn := e.connection(t, "sandbox", "user_temporary")
	ctx := context.Background()
	if first, err := e.st.MarkQueued(ctx, cn.ID); err != nil || !first {
		t.Fatalf("mark queued: %v %v", first, err)
	}
	must(t, e.w.Start(ctx))
	t.Cleanup(func() { _ = e.w.Stop(ctx) })
	tk, err := tasks.NewCheckTask(cn.ID, t0, tasks.ReasonRefresh, asynq.Queue(tasks.QueueCritical), asynq.MaxRetry(0))
	must(t, err)
	if _, err := asynq.NewClientFromRedisClient(e.rdb).EnqueueContext(ctx, tk); err != nil {
		t.Fatal(err)
	}
	poll.WaitFor(t, 20*time.Second, "the failure recorded", func() bool { return e.get(t, cn.ID).Status != checks.ConnPending })
	got := e.get(t, cn.ID)
	if got.Status != checks.ConnOtherError || !strings.Contains(got.StatusErrorDetail, "temporary failure on every attempt") {
		t.Fatalf("status %s %q, want OTHER_ERROR naming the temporary failure", got.Status, got.StatusErrorDetail)
	}
	if again, err := e.st.MarkQueued(ctx, cn.ID); err != nil || !again {
		t.Fatalf("the queued mark outlived the recorded check: %v %v", again, err)
	}
}

// TestCheckerIgnoringItsContext: a checker that does not return by its
// deadline is abandoned there; the timeout is recorded and the handler
// returns, so the task's slot is free for the next check.
func TestCheckerIgnoringItsContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	e := newEnv(t, envOpts{cfg: func(c *worker.Config) { c.CheckTimeout = 50 * time.Millisecond },
		checkers: map[string]checks.Checker{
			"stuck": checks.CheckerFunc(func(context.Context, checks.Request) (checks.Result, error) {
				<-release // never looks at its context
				return checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "1"}}}, nil
			}),
		}})
	cn := e.connection(t, "stuck", "user_good")
	returned := make(chan error, 1)
	go func() { returned <- e.w.HandleCheck(context.Background(), task(t, cn.ID, t0)) }()
	select {
	case err := <-returned:
		must(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("HandleCheck waited for a checker that ignores its context")
	}
	if got := e.get(t, cn.ID); got.Status != checks.ConnWebsiteDown || !strings.Contains(got.StatusErrorDetail, "timed out") {
		t.Fatalf("status %s %q, want the timeout recorded", got.Status, got.StatusErrorDetail)
	}
}

// TestRetryAfterNotCounted: a checker's Retry-After puts the task back for
// that long without counting a failed attempt, even on the last counted
// one (tasks.AsynqMaxRetry keeps a retry for it), until the check's slot
// is an interval old; a temporary failure counts, and is recorded on the
// last counted attempt.
func TestRetryAfterNotCounted(t *testing.T) {
	t.Parallel()
	// answers, in order, what the checker gives on each call; then CONNECTED.
	answers := make(chan error, 8)
	e := newEnv(t, envOpts{cfg: func(c *worker.Config) { c.Concurrency, c.ShutdownTimeout = 2, 5*time.Second },
		checkers: map[string]checks.Checker{"busy": checks.CheckerFunc(func(context.Context, checks.Request) (checks.Result, error) {
			select {
			case err := <-answers:
				return checks.Result{}, err
			default:
				return checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "1"}}}, nil
			}
		})}})
	ctx := context.Background()
	must(t, e.w.Start(ctx))
	t.Cleanup(func() { _ = e.w.Stop(ctx) })
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	busy := &checks.RetryAfterError{Delay: time.Hour, Err: errors.New("checker answered 429")}
	temporary := fmt.Errorf("browser pool down: %w", checks.ErrTemporary)

	enqueue := func(cn string, maxRetry int) string {
		t.Helper()
		tk, err := tasks.NewCheckTask(cn, t0, tasks.ReasonRefresh, asynq.Queue(tasks.QueueCritical), asynq.MaxRetry(tasks.AsynqMaxRetry(maxRetry)))
		must(t, err)
		ti, err := asynq.NewClientFromRedisClient(e.rdb).EnqueueContext(ctx, tk)
		must(t, err)
		return ti.ID
	}
	// inRetry waits for the task's failed attempt and returns its info.
	inRetry := func(id, errText string) *asynq.TaskInfo {
		t.Helper()
		var ti *asynq.TaskInfo
		poll.WaitFor(t, 20*time.Second, id+" back in the retry set with "+errText, func() bool {
			var err error
			ti, err = insp.GetTaskInfo(tasks.QueueCritical, id)
			return err == nil && ti.State == asynq.TaskStateRetry && strings.Contains(ti.LastErr, errText)
		})
		return ti
	}

	// No counted retry at all (maxRetry 0): two Retry-Afters are retried,
	// then the check is recorded.
	cn := e.connection(t, "busy", "user_good")
	answers <- busy
	id := enqueue(cn.ID, 0)
	ti := inRetry(id, "429")
	if ti.Retried != 0 || ti.NextProcessAt.Before(time.Now().Add(59*time.Minute)) || ti.NextProcessAt.After(time.Now().Add(61*time.Minute)) {
		t.Fatalf("after a Retry-After: retried %d, next at %v; want 0 and in an hour", ti.Retried, ti.NextProcessAt)
	}
	answers <- busy
	must(t, insp.RunTask(tasks.QueueCritical, id))
	poll.WaitFor(t, 20*time.Second, "the second attempt", func() bool { return len(answers) == 0 })
	ti = inRetry(id, "429")
	if ti.Retried != 0 {
		t.Fatalf("after a second Retry-After on the last counted attempt: retried %d, want 0", ti.Retried)
	}
	must(t, insp.RunTask(tasks.QueueCritical, id))
	poll.WaitFor(t, 20*time.Second, "the check recorded", func() bool { return e.get(t, cn.ID).Status == checks.ConnConnected })

	// One counted retry: a temporary failure counts, a Retry-After does
	// not, and the second temporary failure is recorded.
	cn2 := e.connection(t, "busy", "user_good")
	answers <- temporary
	id2 := enqueue(cn2.ID, 1)
	if ti := inRetry(id2, "browser pool down"); ti.Retried != 1 {
		t.Fatalf("after a temporary failure: retried %d, want 1", ti.Retried)
	}
	answers <- busy
	must(t, insp.RunTask(tasks.QueueCritical, id2))
	if ti := inRetry(id2, "429"); ti.Retried != 1 {
		t.Fatalf("after a Retry-After: retried %d, want still 1", ti.Retried)
	}
	answers <- temporary
	must(t, insp.RunTask(tasks.QueueCritical, id2))
	poll.WaitFor(t, 20*time.Second, "the failure recorded", func() bool { return e.get(t, cn2.ID).Status != checks.ConnPending })
	if got := e.get(t, cn2.ID); got.Status != checks.ConnOtherError || !strings.Contains(got.StatusErrorDetail, "temporary failure on every attempt") {
		t.Fatalf("status %s %q, want OTHER_ERROR naming the temporary failure", got.Status, got.StatusErrorDetail)
	}

	// A check pushed back for a whole interval is recorded.
	cn3 := e.connection(t, "busy", "user_good")
	answers <- busy
	id3 := enqueue(cn3.ID, 0)
	inRetry(id3, "429")
	e.clk.Advance(e.st.Interval())
	answers <- busy
	must(t, insp.RunTask(tasks.QueueCritical, id3))
	poll.WaitFor(t, 20*time.Second, "the push-back recorded", func() bool { return e.get(t, cn3.ID).Status != checks.ConnPending })
	if got := e.get(t, cn3.ID); got.Status != checks.ConnOtherError || !strings.Contains(got.StatusErrorDetail, "for a whole check interval") {
		t.Fatalf("status %s %q, want OTHER_ERROR naming the interval of push-backs", got.Status, got.StatusErrorDetail)
	}
}

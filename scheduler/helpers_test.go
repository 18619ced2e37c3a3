package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/internal/testing/testenv"
	"github.com/checkd/checkd/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// defaultInterval is checkd's default check interval, which most tests run
// with.
var defaultInterval = configs.Default().CheckInterval

// t0 is the simulated start of every test: a Monday.
var t0 = testenv.T0

// env is a store on a fresh Redis with a fake clock (testenv.Env, under
// the names these tests use).
type env struct {
	rdb *redis.Client
	st  *store.Store
	clk *clock.Fake
	te  *testenv.Env
}

// newEnv returns an env on its own miniredis.
func newEnv(tb testing.TB, interval time.Duration) *env {
	tb.Helper()
	return wrapEnv(testenv.New(tb, testenv.Options{MiniOptions: func(o *redis.Options) { o.PoolSize = 64 },
		Store: func(c *store.Config) { c.Interval = interval }}))
}

// newEnvOn returns an env over rdb.
func newEnvOn(tb testing.TB, rdb *redis.Client, interval time.Duration) *env {
	tb.Helper()
	return wrapEnv(testenv.New(tb, testenv.Options{Redis: rdb, Store: func(c *store.Config) { c.Interval = interval }}))
}

func wrapEnv(te *testenv.Env) *env { return &env{rdb: te.Redis, st: te.Store, clk: te.Clock, te: te} }

// company creates an active company.
func (e *env) company(tb testing.TB, name string) store.Company { return e.te.Company(tb, name) }

// connection creates a PENDING connection of co at the fake clock's time,
// with password "pw-" + username.
func (e *env) connection(tb testing.TB, co store.Company, username string) store.Connection {
	return e.te.Connection(tb, store.NewConnection{CompanyID: co.ID, Datasource: "sandbox",
		Credentials: checks.Credentials{Username: username, Password: "pw-" + username}})
}

// connections creates n connections of co, in parallel.
func (e *env) connections(tb testing.TB, co store.Company, n int) []store.Connection {
	return e.te.Connections(tb, co.ID, n)
}

// quietLogger discards logs (tests assert on stats, not on log lines).
func quietLogger() logrus.FieldLogger { return testenv.QuietLogger() }

// recorder is an Enqueuer that records every call. With next set it
// forwards to it (a real asynq client); without, it behaves like asynq's
// TaskID uniqueness: a second task with the same ID is ErrTaskIDConflict.
type recorder struct {
	next Enqueuer
	// fail, when set, makes the enqueue of a payload fail with its error.
	fail func(p tasks.CheckPayload) error

	mu       sync.Mutex
	calls    int
	accepted []tasks.CheckPayload // in acceptance order
	ids      map[string]int       // task ID → times accepted
}

// EnqueueContext implements Enqueuer.
func (r *recorder) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	p, err := tasks.ParseCheckPayload(task.Payload())
	if err != nil {
		return nil, err
	}
	id := tasks.CheckTaskID(p.ConnectionID, time.UnixMilli(p.Slot))
	r.mu.Lock()
	r.calls++
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		if err := fail(p); err != nil {
			return nil, err
		}
	}
	var info *asynq.TaskInfo
	if r.next != nil {
		if info, err = r.next.EnqueueContext(ctx, task, opts...); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = map[string]int{}
	}
	if r.next == nil && r.ids[id] > 0 {
		return nil, fmt.Errorf("enqueue %s: %w", id, asynq.ErrTaskIDConflict)
	}
	r.ids[id]++
	r.accepted = append(r.accepted, p)
	if info == nil {
		info = &asynq.TaskInfo{ID: id, Type: task.Type(), Payload: task.Payload()}
	}
	return info, nil
}

// take returns the payloads accepted since the last take.
func (r *recorder) take() []tasks.CheckPayload {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.accepted
	r.accepted = nil
	return out
}

// dupes returns the task IDs accepted more than once.
func (r *recorder) dupes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id, n := range r.ids {
		if n > 1 {
			out = append(out, id)
		}
	}
	return out
}

// distinct returns how many task IDs were accepted.
func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

// testConfig is checkd's default scheduler configuration with a quiet
// logger.
func testConfig() Config {
	cfg := ConfigFrom(configs.Default())
	cfg.Logger = quietLogger()
	return cfg
}

// mustNew returns a scheduler with testConfig changed by each of mods, or
// fails the test.
func mustNew(tb testing.TB, st *store.Store, enq Enqueuer, mods ...func(*Config)) *Scheduler {
	tb.Helper()
	cfg := testConfig()
	for _, m := range mods {
		m(&cfg)
	}
	s, err := New(st, enq, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

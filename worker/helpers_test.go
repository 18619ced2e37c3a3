package worker_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/internal/testing/testenv"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/worker"
)

func TestMain(m *testing.M) {
	if os.Getenv(envCapChild) != "" { // a worker process of TestCapAcrossWorkerProcesses
		os.Exit(runCapChild())
	}
	redistest.Main(m)
}

var t0 = testenv.T0

// env is one isolated worker over its own Redis.
type env struct {
	rdb redis.UniversalClient
	st  *store.Store
	clk *clock.Fake
	te  *testenv.Env
	reg *checks.Registry
	w   *worker.Worker
	co  store.Company
	// users overrides the sandbox username per connection ID, so one
	// connection can go from user_good to error_PASSWORD_INCORRECT without
	// a credential update.
	users  sync.Map
	mu     sync.Mutex
	events []worker.CheckEvent
}

type envOpts struct {
	rdb       *redis.Client // default: a fresh miniredis
	autoTrack bool
	cfg       func(*worker.Config)      // changes checkd's default worker configuration
	checkers  map[string]checks.Checker // extra datasources
}

func quietLogger() *logrus.Logger { return testenv.QuietLogger() }

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	te := testenv.New(t, testenv.Options{Redis: o.rdb, Store: func(c *store.Config) { c.AutoTrack = o.autoTrack }})
	e := &env{rdb: te.Redis, st: te.Store, clk: te.Clock, te: te, reg: checks.NewRegistry()}
	sb := sandbox.New(sandbox.Options{})
	must(t, e.reg.Register(sandbox.Datasource, checks.CheckerFunc(func(ctx context.Context, req checks.Request) (checks.Result, error) {
		if u, ok := e.users.Load(req.ConnectionID); ok {
			req.Credentials.Username = u.(string)
		}
		return sb.Check(ctx, req)
	})))
	for ds, c := range o.checkers {
		must(t, e.reg.Register(ds, c))
	}
	cfg := worker.ConfigFrom(configs.Default())
	cfg.Logger = quietLogger()
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	cfg.Clock = e.clk
	next := cfg.OnCheck
	cfg.OnCheck = func(ev worker.CheckEvent) {
		e.mu.Lock()
		e.events = append(e.events, ev)
		e.mu.Unlock()
		if next != nil {
			next(ev)
		}
	}
	var err error
	if e.w, err = worker.New(e.rdb, e.st, e.reg, cfg); err != nil {
		t.Fatal(err)
	}
	e.co = te.Company(t, "Acme")
	return e
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// connection creates a connection of the env's company.
func (e *env) connection(t testing.TB, datasource, user string) store.Connection {
	return e.te.Connection(t, store.NewConnection{CompanyID: e.co.ID, Datasource: datasource,
		Credentials: checks.Credentials{Username: user, Password: "hunter2"}})
}

// get reads a connection.
func (e *env) get(t testing.TB, id string) store.Connection { return e.te.Get(t, id) }

// task returns the check task of id for slot.
func task(t testing.TB, id string, slot time.Time) *asynq.Task {
	t.Helper()
	tk, err := tasks.NewCheckTask(id, slot, tasks.ReasonScheduled)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func (e *env) outcomes() []store.Outcome {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]store.Outcome, len(e.events))
	for i, ev := range e.events {
		out[i] = ev.Outcome
	}
	return out
}

var errBroken = errors.New("login form changed: selector #username not found")

package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/internal/testing/testenv"
	"github.com/checkd/checkd/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// schedule is the default retry schedule (configs/checkd.yaml).
var schedule = []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// env is a store with a fake clock, a recording enqueuer and a deliverer
// and dispatcher over them.
type env struct {
	t   testing.TB
	ctx context.Context
	rdb *redis.Client
	st  *store.Store
	clk *clock.Fake
	enq *recorder
	log *logtest.Hook
	co  store.Company
}

// miniClient is nil: testenv makes a fresh miniredis.
func miniClient(testing.TB) *redis.Client { return nil }

func realClient(t testing.TB) *redis.Client { return redistest.Start(t).Client(t) }

// newEnv is an env over rdb (nil: a fresh miniredis), its store with the
// stream long enough to keep every event of a test and the group commit's
// window off (tests call the store from few goroutines).
func newEnv(t testing.TB, rdb *redis.Client, mods ...func(*store.Config)) *env {
	t.Helper()
	te := testenv.New(t, testenv.Options{Redis: rdb, Start: t0, Store: func(c *store.Config) {
		c.EventsMaxLen, c.CheckBatchWindow = 1<<20, 0
		for _, m := range mods {
			m(c)
		}
	}})
	_, hook := logtest.NewNullLogger()
	e := &env{t: t, ctx: context.Background(), rdb: te.Redis, st: te.Store, clk: te.Clock, enq: &recorder{}, log: hook}
	e.co = te.Company(t, "Acme")
	return e
}

func (e *env) logger() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.AddHook(e.log)
	l.SetLevel(logrus.DebugLevel)
	return l
}

func (e *env) delivererConfig() DelivererConfig {
	return DelivererConfig{Concurrency: 4, PerEndpoint: 2, Servers: 2, Timeout: 5 * time.Second, Schedule: schedule, Jitter: 0.2,
		DisableAfter: 5 * 24 * time.Hour, Retention: 30 * 24 * time.Hour, Policy: Policy{AllowPrivate: true},
		ShutdownTimeout: 5 * time.Second, PollInterval: 20 * time.Millisecond, Clock: e.clk, Logger: e.logger()}
}

func (e *env) deliverer(mod func(*DelivererConfig)) *Deliverer {
	e.t.Helper()
	cfg := e.delivererConfig()
	if mod != nil {
		mod(&cfg)
	}
	d, err := NewDeliverer(e.rdb, e.st, e.enq, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) dispatcherConfig() DispatcherConfig {
	return DispatcherConfig{Consumer: "test", BatchSize: 100, Block: 10 * time.Millisecond, ClaimIdle: time.Minute,
		EnqueueConcurrency: 8, Retention: 30 * 24 * time.Hour, Timeout: 5 * time.Second, Clock: e.clk, Logger: e.logger()}
}

func (e *env) dispatcher(enq Enqueuer, mod func(*DispatcherConfig)) *Dispatcher {
	e.t.Helper()
	cfg := e.dispatcherConfig()
	if mod != nil {
		mod(&cfg)
	}
	if enq == nil {
		enq = e.enq
	}
	d, err := NewDispatcher(e.st, enq, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.EnsureEventGroup(e.ctx, Group); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// drain runs the dispatcher until a round dispatches nothing.
func (e *env) drain(d *Dispatcher) int {
	e.t.Helper()
	total := 0
	for {
		n, err := d.RunOnce(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

func (e *env) endpoint(url string, mod func(*store.NewWebhookEndpoint)) (store.WebhookEndpoint, string) {
	e.t.Helper()
	secret, err := NewSecret()
	if err != nil {
		e.t.Fatal(err)
	}
	in := store.NewWebhookEndpoint{URL: url, Secret: secret}
	if mod != nil {
		mod(&in)
	}
	ep, err := e.st.CreateWebhookEndpoint(e.ctx, in)
	if err != nil {
		e.t.Fatal(err)
	}
	return ep, secret
}

func (e *env) conn(user string) store.Connection {
	e.t.Helper()
	c, err := e.st.CreateConnection(e.ctx, store.NewConnection{CompanyID: e.co.ID, Datasource: "sandbox",
		Credentials: checks.Credentials{Username: user, Password: "pw"}})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// check records a check of id as the worker would, a second long.
func (e *env) check(id string, res checks.Result) {
	e.t.Helper()
	tg, err := e.st.LoadCheck(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	start := e.clk.Now()
	end := e.clk.Advance(time.Second)
	if _, err := e.st.RecordCheck(e.ctx, tg, store.CheckResult{Attempt: "a" + end.Format("150405.000"), StartedAt: start, FinishedAt: end, Result: res}); err != nil {
		e.t.Fatal(err)
	}
}

// recorder is an Enqueuer that keeps the tasks and refuses a task ID it
// holds, as asynq does while a task is pending, retrying or archived.
type recorder struct {
	mu    sync.Mutex
	tasks []*asynq.Task
	ids   map[string]bool
	err   error
}

func (r *recorder) EnqueueContext(_ context.Context, t *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	// asynq keeps a task's options to itself: a scheduled delivery's ID is
	// fixed, the others' fresh.
	id := ""
	if p, err := tasks.ParseWebhookDeliverPayload(t.Payload()); err == nil && t.Type() == tasks.TypeWebhookDeliver &&
		p.Trigger == store.TriggerScheduled {
		id = tasks.WebhookDeliverTaskID(p.MessageID, p.EndpointID, p.Trigger, "")
	}
	if r.ids == nil {
		r.ids = map[string]bool{}
	}
	if id != "" && r.ids[id] {
		return nil, asynq.ErrTaskIDConflict
	}
	if id != "" {
		r.ids[id] = true
	}
	r.tasks = append(r.tasks, t)
	return &asynq.TaskInfo{ID: id, Type: t.Type(), Payload: t.Payload()}, nil
}

// take returns and forgets the tasks enqueued so far (their IDs stay
// taken, as for tasks asynq still holds).
func (r *recorder) take() []*asynq.Task {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.tasks
	r.tasks = nil
	return out
}

// free forgets a task ID, as asynq does once a task completes.
func (r *recorder) free(id string) {
	r.mu.Lock()
	delete(r.ids, id)
	r.mu.Unlock()
}

// request is one request a receiver got.
type request struct {
	header http.Header
	body   []byte
}

// receiver is an HTTP endpoint that answers with reply(n) its n-th request
// (from 0) and keeps every request.
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []request
	reply func(n int, w http.ResponseWriter)
}

func newReceiver(t testing.TB, reply func(n int, w http.ResponseWriter)) *receiver {
	r := &receiver{reply: reply}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.reqs)
		r.reqs = append(r.reqs, request{header: req.Header.Clone(), body: b})
		r.mu.Unlock()
		if reply == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		reply(n, w)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// failFirst answers status to the first n requests, 204 after.
func failFirst(n, status int) func(int, http.ResponseWriter) {
	return func(i int, w http.ResponseWriter) {
		if i < n {
			w.WriteHeader(status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// deliverTasks keeps the webhook:deliver tasks of ts.
func deliverTasks(t testing.TB, ts []*asynq.Task) []tasks.WebhookDeliverPayload {
	var out []tasks.WebhookDeliverPayload
	for _, task := range ts {
		if task.Type() != tasks.TypeWebhookDeliver {
			continue
		}
		p, err := tasks.ParseWebhookDeliverPayload(task.Payload())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// waitFor is poll.WaitFor.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	poll.WaitFor(t, d, what, cond)
}

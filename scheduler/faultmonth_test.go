package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/checkd/checkd/internal/testing/storetest"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/worker"
)

// The fault-injected month: the freshness promise under the faults checkd
// is built to survive, on the fake clock.
//
// A real redis-server (append-only file, fsync before every reply), the
// real store, two scheduler replicas ticking every simulated hour
// (scheduler.Tick), and asynq servers running the real check handler
// (worker.HandleCheck) over a fake datasource, all on one fake clock, run a
// month over SimConns connections of five companies in mixed scenarios
// (healthy, wrong password, website down, flaky), with admin actions
// (deactivations, a company's deactivation and reactivation, new
// credentials, new connections) and these faults:
//
//   - a worker crashes mid-check: its in-flight tasks are orphaned and
//     asynq redelivers them once their lease has run out;
//   - redis-server is killed and restarted from its append-only file while
//     checks run;
//   - Redis is down (connection refused) for 30 simulated seconds across a
//     tick (outageReal of real time);
//   - a scheduler replica dies mid-sweep holding the sweep lock; the other
//     takes the sweep over once the lock's lease has run out;
//   - the datasource fails every login for two days (WEBSITE_DOWN): its
//     outage breaker opens (issue 20; fmHealth), and during a tick it is
//     open for, the logins are only the minute's probes (a tick's checks
//     run at one fake minute); it closes within a few ticks of the
//     outage's end, and every connection not attempted meanwhile is
//     checked again, with a login, by the end of the next tick (a probe
//     during the outage is such a login: the store forgets a connection
//     once a check of it is attempted), so that none is left listed and
//     none shows a check not attempted as its last.
//
// It asserts, after every tick once the queues are empty: every eligible
// connection has a recorded update within interval + one tick + the lease
// (a new, reactivated or unblocked one within one tick + the lease); no
// ineligible connection reaches the checker; no slot's check is recorded
// twice; no connection's status times move backwards. It prints the worst
// staleness seen.
//
// asynq and Redis keep real time, so the simulation bridges two real-time
// waits the fake month cannot sit out: an orphaned task's lease (30 s, and
// asynq's recoverer looks once a minute) is expired by hand and a fresh
// asynq server (the crashed worker restarted) recovers it at once; the
// dead replica's sweep lock is expired by hand once the scheduler's lease
// has passed on the fake clock. The asynq servers poll every few
// milliseconds instead of every second and retry a failed task at once
// (asynq.Config), which only shortens real waits.

// simConns is the month's size: connections created before the first
// tick, plus a tenth more during the month. FAULT_MONTH_CONNS overrides
// it; by default it is 5,000, or 2,000 under the race detector (CI's
// make test: about 40 s on two busy cores). FAULT_MONTH_CONNS=20000 runs
// the full size (about 3 minutes without the race detector).
func simConns(t *testing.T) int {
	if v := os.Getenv("FAULT_MONTH_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 50 {
			t.Fatalf("FAULT_MONTH_CONNS=%q: want a number of at least 50", v)
		}
		return n
	}
	if raceEnabled {
		return 2000
	}
	return 5000
}

const (
	fmInterval = 168 * time.Hour
	fmTick     = time.Hour
	fmLease    = time.Hour // the schedulers' lease: a dead replica's sweep is taken over a tick or two later
	fmDays     = 30
	fmCompany  = 5
)

var fmStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// fmConn is what the simulation knows of a connection.
type fmConn struct {
	id      string
	idx     int
	company int
	// since is when it last became checkable (created, reactivated, its
	// credentials replaced); last is its last recorded update (zero:
	// none since it became checkable).
	since, last          time.Time
	checks               int
	blocked, deactivated bool
	// What the store showed last: status times must not move backwards.
	seenFirst, seenLast, seenCheck time.Time
}

// fmChecker is the fake datasource: a connection's scenario is its
// username ("s<idx>"; "fixed" once its credentials were replaced).
type fmChecker struct {
	sim *fmSim

	mu       sync.Mutex
	outage   bool
	block    int           // calls still to hold (a worker about to crash), on servers marked crashing
	held     chan struct{} // closed to release the held calls
	heldConn []string
}

func (c *fmChecker) Check(ctx context.Context, req checks.Request) (checks.Result, error) {
	c.sim.checked(ctx, req.ConnectionID)
	c.mu.Lock()
	outage := c.outage
	c.mu.Unlock()
	idx := -1
	if n, ok := strings.CutPrefix(req.Credentials.Username, "s"); ok {
		idx, _ = strconv.Atoi(n)
	}
	switch {
	case outage:
		return checks.Result{Status: checks.ConnWebsiteDown, Detail: "datasource outage"}, nil
	case idx >= 0 && idx%10 == 0:
		return checks.Result{Status: checks.ConnPasswordIncorrect, Detail: "rejected"}, nil
	case idx >= 0 && (idx%10 == 1 || idx%10 == 2):
		return checks.Result{Status: checks.ConnWebsiteDown, Detail: "503"}, nil
	case idx >= 0 && idx%10 == 3 && c.sim.clk.Now().YearDay()%2 == 0: // flaky
		return checks.Result{Status: checks.ConnWebsiteDown, Detail: "timeout"}, nil
	}
	return checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "A-" + req.ConnectionID}}}, nil
}

// crashingChecker is the datasource of the worker that crashes: it holds
// its first calls until released, so they are in flight at the crash. A
// held call is a login like any other: one the worker gives up on after
// worker.checkTimeout (when fewer than block calls came before the crash)
// is recorded WEBSITE_DOWN "check timed out", an attempted check.
type crashingChecker struct{ *fmChecker }

func (c crashingChecker) Check(ctx context.Context, req checks.Request) (checks.Result, error) {
	c.mu.Lock()
	if c.block > 0 {
		c.block--
		c.heldConn = append(c.heldConn, req.ConnectionID)
		held := c.held
		c.mu.Unlock()
		c.sim.checked(ctx, req.ConnectionID)
		<-held
		return checks.Result{}, errors.New("the worker crashed")
	}
	c.mu.Unlock()
	return c.fmChecker.Check(ctx, req)
}

// fmServer is one asynq server running the real check handler with a
// store of its own over a client of its own (which a crash poisons).
type fmServer struct {
	srv    *asynq.Server
	rdb    *redis.Client
	dead   atomic.Bool
	closed bool
}

// poisonHook fails every command once dead is set: a crashed process says
// nothing more to Redis.
type poisonHook struct{ dead *atomic.Bool }

var errCrashed = errors.New("simulated crash: this process is gone")

func (h poisonHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h poisonHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.dead.Load() {
			cmd.SetErr(errCrashed)
			return errCrashed
		}
		return next(ctx, cmd)
	}
}
func (h poisonHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.dead.Load() {
			for _, c := range cmds {
				c.SetErr(errCrashed)
			}
			return errCrashed
		}
		return next(ctx, cmds)
	}
}

// lockKiller is a scheduler replica's hook: once armed, it lets the sweep
// lock be taken and a few more commands through, then fails everything:
// the replica died mid-sweep holding the lock.
type lockKiller struct {
	armed, locked atomic.Bool
	after         atomic.Int64
	dead          atomic.Bool
}

func (h *lockKiller) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *lockKiller) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := h.step(cmd); err != nil {
			return err
		}
		err := next(ctx, cmd)
		if h.armed.Load() && err == nil && touchesLock(cmd) {
			h.locked.Store(true)
		}
		return err
	}
}
func (h *lockKiller) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if err := h.step(c); err != nil {
				return err
			}
		}
		return next(ctx, cmds)
	}
}

func (h *lockKiller) step(cmd redis.Cmder) error {
	if h.dead.Load() || (h.locked.Load() && h.after.Add(-1) < 0) {
		h.dead.Store(true)
		cmd.SetErr(errCrashed)
		return errCrashed
	}
	return nil
}

func touchesLock(cmd redis.Cmder) bool {
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok && strings.HasSuffix(s, "sw:lock") {
			return true
		}
	}
	return false
}

// fmSim is the simulation's state.
type fmSim struct {
	t       *testing.T
	ctx     context.Context
	own     *redistest.Own
	rdb     *redis.Client
	clk     *clock.Fake
	st      *store.Store
	cipher  *store.Cipher
	checker *fmChecker
	insp    *asynq.Inspector
	quiet   *logrus.Logger

	mu         sync.Mutex
	conns      map[string]*fmConn
	order      []*fmConn
	applied    map[string]int // task ID → checks recorded
	calls      int            // checker calls
	inflight   atomic.Int64
	servers    []*fmServer
	touched    map[string]bool
	companyOff map[int]bool
	ineligible []string
	twice      []string
	worst      time.Duration
	worstConn  string
	recorded   int
	redone     int
	// The datasource's outage breaker (issue 20), as the workers report
	// it opening and closing, and the checks recorded not attempted.
	brOpen             bool
	brOpens, brCloses  int
	brOpenedAt         time.Time
	brClosedAt         time.Time
	na                 fmRechecks
	openTicks, maxOpen int  // ticks open from start to end, most logins in one
	sweptNA            bool // every connection's last check was read once after the close
}

// fmRechecks is the simulation's model of the re-check promise: the
// connections recorded not attempted with no login since. Like the store
// (a connection stays listed until a check of it that started no earlier
// is attempted, probes included: docs/architecture.md), a login of a
// connection after its check was not attempted ends its wait. The model
// follows each delivery of a task, not each connection: two checks of one
// connection overlap when a check recording "not attempted" is still
// reporting while the re-check it caused already logs in, and the
// workers' reports of the two (the checker's call, OnCheck) arrive
// interleaved in any order.
type fmRechecks struct {
	seq     int64                // logins so far
	start   map[string]int64     // task ID → seq when its current delivery began
	called  map[string]bool      // task ID → its current delivery called the checker
	login   map[string]int64     // connection ID → seq of its latest login
	waiting map[string]time.Time // connection ID → when its check was recorded not attempted
	count   int                  // checks recorded not attempted
}

func newFMRechecks() fmRechecks {
	return fmRechecks{start: map[string]int64{}, called: map[string]bool{}, login: map[string]int64{}, waiting: map[string]time.Time{}}
}

// begin: a delivery of task begins (the handler is called).
func (m *fmRechecks) begin(task string) {
	m.start[task] = m.seq
	delete(m.called, task)
}

// loggedIn: the checker was called for conn by task's delivery.
func (m *fmRechecks) loggedIn(task, conn string) {
	m.seq++
	m.login[conn], m.called[task] = m.seq, true
	delete(m.waiting, conn)
}

// recorded: task's delivery recorded a check of conn with status st at
// at, applied or not. A check applied WEBSITE_DOWN without a call of the
// checker was not attempted: conn waits for a login, unless one of conn
// began after this delivery did (a re-check overtook this report; the
// store forgets conn with that login's outcome, or, if the login began
// before conn was listed, still lists it, which assertBreaker's read of
// the store sees).
func (m *fmRechecks) recorded(task, conn string, applied bool, st checks.ConnectionStatus, at time.Time) {
	called, started := m.called[task], m.start[task]
	delete(m.called, task)
	delete(m.start, task)
	if !applied || called || st != checks.ConnWebsiteDown {
		return
	}
	m.count++
	if m.login[conn] <= started {
		m.waiting[conn] = at
	}
}

// fmHealth are the datasource's health rules in the month: the defaults
// but for the window, which spans three ticks: a tick's checks run at one
// fake minute an hour after the last, and under the race detector a
// tick's dozen checks alone would not reach minChecks.
func fmHealth(string) store.HealthRules {
	r := configs.Default().HealthRules("sim")
	r.Window = 3 * fmTick
	return r
}

// onBreaker is the workers' report of the breaker opening or closing.
func (s *fmSim) onBreaker(_ string, b store.Breaker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.brOpen = b.Open
	if b.Open {
		s.brOpens++
		s.brOpenedAt = s.clk.Now()
	} else {
		s.brCloses++
		s.brClosedAt = s.clk.Now()
	}
}

// checked is the checker's report of a call (ctx is the check's, under
// its task's): the connection must be eligible now.
func (s *fmSim) checked(ctx context.Context, id string) {
	task, _ := asynq.GetTaskID(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.na.loggedIn(task, id)
	c := s.conns[id]
	if c == nil || c.blocked || c.deactivated || s.companyOff[c.company] {
		s.ineligible = append(s.ineligible, fmt.Sprintf("%s at %s", id, s.clk.Now().Format(time.RFC3339)))
	}
}

// onCheck records what the worker recorded.
func (s *fmSim) onCheck(ev worker.CheckEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.touched[ev.ConnectionID] = true
	s.na.recorded(ev.TaskID, ev.ConnectionID, ev.Outcome == store.Applied, ev.Status, s.clk.Now())
	if ev.Outcome != store.Applied {
		s.redone++
		return
	}
	s.applied[ev.TaskID]++
	if s.applied[ev.TaskID] > 1 {
		s.twice = append(s.twice, ev.TaskID)
	}
	s.recorded++
	if c := s.conns[ev.ConnectionID]; c != nil {
		c.checks++
		c.last = s.clk.Now()
		c.blocked = ev.To.CredentialBlocked()
	}
}

func TestFaultMonth(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation: skipped in -short mode")
	}
	t.Parallel()
	n := simConns(t)
	own := redistest.StartOwn(t, true)
	rdb := redis.NewClient(&redis.Options{Addr: own.Addr, PoolSize: 64})
	t.Cleanup(func() { _ = rdb.Close() })
	clk := clock.NewFake(fmStart)
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	key, err := store.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ci, err := store.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	s := &fmSim{t: t, ctx: context.Background(), own: own, rdb: rdb, clk: clk, quiet: quiet, cipher: ci,
		conns: map[string]*fmConn{}, applied: map[string]int{}, na: newFMRechecks(), touched: map[string]bool{}, companyOff: map[int]bool{},
		st:   storetest.New(t, rdb, fmStoreConfig(ci, clk)),
		insp: asynq.NewInspectorFromRedisClient(rdb)}
	s.checker = &fmChecker{sim: s, held: make(chan struct{})}
	s.run(n)
}

// outageReal is how long, in real time, Redis stays down during the tick
// it is down for: the clients' retries and the workers' polls meet a
// refused connection for that long.
const outageReal = 3 * time.Second

// newServer starts an asynq server running the real check handler with a
// store and client of its own; crashing ones use the holding checker.
func (s *fmSim) newServer(crashing bool) *fmServer {
	s.t.Helper()
	sv := &fmServer{rdb: redis.NewClient(&redis.Options{Addr: s.own.Addr, PoolSize: 32})}
	sv.rdb.AddHook(poisonHook{&sv.dead})
	s.t.Cleanup(func() { _ = sv.rdb.Close() })
	st := storetest.New(s.t, sv.rdb, fmStoreConfig(s.cipher, s.clk))
	reg := checks.NewRegistry()
	var c checks.Checker = s.checker
	if crashing {
		c = crashingChecker{s.checker}
	}
	if err := reg.Register("sim", c); err != nil {
		s.t.Fatal(err)
	}
	wc := worker.ConfigFrom(configs.Default())
	wc.Clock, wc.Logger, wc.OnCheck, wc.OnBreaker = s.clk, s.quiet, s.onCheck, s.onBreaker
	wc.Datasources.Health = fmHealth
	w, err := worker.New(sv.rdb, st, reg, wc)
	if err != nil {
		s.t.Fatal(err)
	}
	sv.srv = asynq.NewServerFromRedisClient(sv.rdb, asynq.Config{
		Concurrency: 8, Queues: wc.Queues, Logger: quietAsynq{}, LogLevel: asynq.FatalLevel,
		TaskCheckInterval: 2 * time.Millisecond, DelayedTaskCheckInterval: 20 * time.Millisecond,
		RetryDelayFunc:  func(int, error, *asynq.Task) time.Duration { return 0 },
		ShutdownTimeout: 2 * time.Second,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeCheckConnection, func(ctx context.Context, t *asynq.Task) error {
		if id, ok := asynq.GetTaskID(ctx); ok {
			s.mu.Lock()
			s.na.begin(id)
			s.mu.Unlock()
		}
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		return w.HandleCheck(ctx, t)
	})
	if err := sv.srv.Start(mux); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { sv.stop() })
	s.mu.Lock()
	s.servers = append(s.servers, sv)
	s.mu.Unlock()
	return sv
}

func (sv *fmServer) stop() {
	if !sv.closed {
		sv.closed = true
		sv.srv.Shutdown()
	}
}

// quietAsynq discards asynq's logs.
type quietAsynq struct{}

func (quietAsynq) Debug(...any) {}
func (quietAsynq) Info(...any)  {}
func (quietAsynq) Warn(...any)  {}
func (quietAsynq) Error(...any) {}
func (quietAsynq) Fatal(...any) {}

// pending counts the check tasks not done yet, by asynq's queues.
func (s *fmSim) pending() (int, error) {
	qs, err := s.insp.Queues() // only the queues asynq created (a task came)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, q := range qs {
		qi, err := s.insp.GetQueueInfo(q)
		if err != nil {
			return 0, err
		}
		n += qi.Pending + qi.Active + qi.Scheduled + qi.Retry
	}
	return n, nil
}

// drain waits until every check task is done. Tasks left active by a
// crashed worker are recovered (recoverOrphans) once nothing moved for a
// second.
func (s *fmSim) drain() {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	last, lastChange := -1, time.Now()
	for {
		n, err := s.pending()
		if err == nil && n == 0 && s.inflight.Load() == 0 {
			return
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
		if time.Since(lastChange) > time.Second && s.inflight.Load() == 0 {
			s.recoverOrphans()
			lastChange = time.Now()
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("at %s: %d check tasks still not done after 3 minutes (last error %v)", s.clk.Now(), n, err)
		}
		pause(2 * time.Millisecond)
	}
}

// recoverOrphans does what asynq does for tasks whose worker died, without
// its real-time waits: their leases are expired by hand, and a fresh
// server (the dead worker restarted) recovers them as it starts.
func (s *fmSim) recoverOrphans() {
	s.t.Helper()
	var orphans int
	for _, q := range tasks.Queues {
		active, err := s.insp.ListActiveTasks(q)
		if err != nil {
			continue
		}
		for _, ti := range active {
			past := float64(time.Now().Add(-2 * time.Minute).Unix())
			if err := s.rdb.ZAdd(s.ctx, "asynq:{"+q+"}:lease", redis.Z{Score: past, Member: ti.ID}).Err(); err == nil {
				orphans++
			}
		}
	}
	if orphans > 0 {
		s.newServer(false)
	}
}

// fmStoreConfig sets a store's config for the month: its shared key, the
// fake clock, the weekly interval.
func fmStoreConfig(ci *store.Cipher, clk *clock.Fake) func(*store.Config) {
	return func(c *store.Config) { c.Cipher, c.Clock, c.Interval, c.HistoryLimit = ci, clk, fmInterval, 8 }
}

// pause waits d of real time (polling the real asynq servers).
func pause(d time.Duration) {
	t := time.NewTimer(d)
	<-t.C
}

func (s *fmSim) eligible(c *fmConn) bool {
	return !c.blocked && !c.deactivated && !s.companyOff[c.company]
}

// run is the month.
func (s *fmSim) run(n int) {
	t, ctx := s.t, s.ctx
	initial, later := n*10/11, n-n*10/11
	var companies []store.Company
	for i := range fmCompany {
		co, err := s.st.CreateCompany(ctx, store.NewCompany{Name: fmt.Sprintf("Company %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		companies = append(companies, co)
	}
	add := func(co int, count int) {
		ins := make([]store.NewConnection, count)
		for i := range ins {
			ins[i] = store.NewConnection{Datasource: "sim", Credentials: checks.Credentials{Username: "s" + strconv.Itoa(len(s.order)+i)}}
		}
		cs, err := s.st.CreateConnections(ctx, companies[co].ID, ins)
		if err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		for _, cn := range cs {
			c := &fmConn{id: cn.ID, idx: len(s.order), company: co, since: cn.CreatedAt, deactivated: false}
			s.conns[cn.ID] = c
			s.order = append(s.order, c)
		}
		s.mu.Unlock()
	}
	for i := range fmCompany {
		add(i, initial/fmCompany)
	}

	// Two scheduler replicas, each over a client of its own; A's can die.
	killer := &lockKiller{}
	schedulerOn := func(hook redis.Hook) *scheduler.Scheduler {
		c := redis.NewClient(&redis.Options{Addr: s.own.Addr, PoolSize: 48})
		if hook != nil {
			c.AddHook(hook)
		}
		t.Cleanup(func() { _ = c.Close() })
		st := storetest.New(t, c, fmStoreConfig(s.cipher, s.clk))
		sc := scheduler.ConfigFrom(configs.Default())
		sc.Lease, sc.Clock, sc.Logger, sc.MaxPerTick = fmLease, s.clk, s.quiet, 100000
		sch, err := scheduler.New(st, asynq.NewClientFromRedisClient(st.SharedClient()), sc)
		if err != nil {
			t.Fatal(err)
		}
		return sch
	}
	schA, schB := schedulerOn(killer), schedulerOn(nil)
	var aDiedAt time.Time
	crasher := s.newServer(true)
	s.newServer(false)

	// Admin actions and faults, at fake times between ticks.
	day := func(d int, h int) time.Time {
		return fmStart.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour + 30*time.Minute)
	}
	type event struct {
		at    time.Time
		name  string
		do    func(now time.Time)
		fault bool // runs while Redis is down too (others wait for it)
	}
	var events []event
	for i := range later {
		at := fmStart.Add(fmTick/2 + time.Duration(i)*(fmDays*24*time.Hour-fmTick)/time.Duration(later))
		events = append(events, event{at, "", func(time.Time) { add(i%fmCompany, 1) }, false})
	}
	setActive := func(pick func(c *fmConn) bool, active bool) func(time.Time) {
		return func(now time.Time) {
			for _, c := range slices.Clone(s.order) {
				if !pick(c) || c.deactivated == !active {
					continue
				}
				was := s.eligible(c)
				if _, err := s.st.UpdateDetails(ctx, c.id, store.DetailsPatch{IsActive: &active}); err != nil {
					t.Fatal(err)
				}
				s.mu.Lock()
				c.deactivated = !active
				if !was && s.eligible(c) {
					c.since, c.last = now, time.Time{}
				}
				s.mu.Unlock()
			}
		}
	}
	setCompany := func(co int, active bool) func(time.Time) {
		return func(now time.Time) {
			if _, err := s.st.SetCompanyActive(ctx, companies[co].ID, active); err != nil {
				t.Fatal(err)
			}
			s.mu.Lock()
			s.companyOff[co] = !active
			for _, c := range s.order {
				if c.company == co && active && s.eligible(c) {
					c.since, c.last = now, time.Time{}
				}
			}
			s.mu.Unlock()
		}
	}
	newCredentials := func(now time.Time) {
		for _, c := range slices.Clone(s.order) {
			if c.idx%20 != 0 || !c.blocked {
				continue
			}
			if _, err := s.st.UpdateCredentials(ctx, c.id, checks.Credentials{Username: "fixed"}); err != nil {
				t.Fatal(err)
			}
			s.mu.Lock()
			c.blocked = false
			if s.eligible(c) {
				c.since, c.last = now, time.Time{}
			}
			s.mu.Unlock()
		}
	}
	var faults []string
	fault := func(at time.Time, name string, do func(time.Time)) {
		events = append(events, event{at, name, do, true})
	}
	events = append(events,
		event{day(4, 0), "", setActive(func(c *fmConn) bool { return c.idx%10 == 5 }, false), false},
		event{day(9, 0), "", setCompany(4, false), false},
		event{day(13, 0), "", setActive(func(c *fmConn) bool { return c.idx%20 == 5 }, true), false},
		event{day(19, 0), "", setCompany(4, true), false},
		event{day(24, 0), "", newCredentials, false},
	)
	// Faults that strike during a tick are armed here and fired by the
	// tick loop.
	var crashWorkerAt, restartRedisAt time.Time
	fault(day(3, 5), "worker crash mid-check", func(time.Time) { crashWorkerAt = day(3, 6).Add(-30 * time.Minute) })
	fault(day(7, 5), "Redis killed and restarted from its AOF mid-tick", func(time.Time) { restartRedisAt = day(7, 6).Add(-30 * time.Minute) })
	var redisDown bool
	outageTick := day(11, 6).Add(-30 * time.Minute)
	fault(outageTick.Add(-10*time.Second), "Redis down for 30 s across a tick", func(time.Time) { s.own.Down(); redisDown = true })
	fault(outageTick.Add(20*time.Second), "", func(time.Time) { s.own.Up(); redisDown = false })
	fault(day(15, 5), "scheduler replica dies holding the sweep lock", func(time.Time) { killer.after.Store(3); killer.armed.Store(true) })
	outageFrom, outageTo := day(20, 0), day(22, 0)
	fault(outageFrom, "datasource down for two days", func(time.Time) { s.checker.mu.Lock(); s.checker.outage = true; s.checker.mu.Unlock() })
	fault(outageTo, "", func(time.Time) { s.checker.mu.Lock(); s.checker.outage = false; s.checker.mu.Unlock() })
	slices.SortStableFunc(events, func(a, b event) int { return a.at.Compare(b.at) })

	bound := fmInterval + fmTick + fmLease
	fresh := fmTick + fmLease
	end := fmStart.Add(fmDays * 24 * time.Hour)
	began := time.Now()
	var tickErrors int
	for now := fmStart.Add(fmTick); !now.After(end); now = now.Add(fmTick) {
		var waiting []event // admin actions while Redis is down: done once it is back
		for len(events) > 0 && events[0].at.Before(now) {
			ev := events[0]
			events = events[1:]
			if redisDown && !ev.fault {
				waiting = append(waiting, ev)
				continue
			}
			s.clk.Set(ev.at)
			if ev.name != "" {
				faults = append(faults, ev.name)
			}
			ev.do(ev.at)
			if !redisDown && len(waiting) > 0 {
				for _, w := range waiting {
					w.do(ev.at)
				}
				waiting = nil
			}
		}
		if len(waiting) > 0 { // still down at the tick: they wait for the next one
			for i := range waiting {
				waiting[i].at = now
			}
			events = append(waiting, events...)
		}
		s.clk.Set(now)
		s.mu.Lock()
		openAtStart, closes, calls := s.brOpen, s.brCloses, s.calls
		s.mu.Unlock()
		if crashWorkerAt.Equal(now) {
			s.checker.mu.Lock()
			s.checker.block = 5
			s.checker.mu.Unlock()
		}
		// The dead replica's sweep lock runs out after the lease, on the
		// fake clock (see the comment at the top).
		if !aDiedAt.IsZero() && !now.Before(aDiedAt.Add(fmLease)) {
			s.rdb.PExpire(ctx, "cd:sw:lock", time.Millisecond)
		}
		for i, sch := range []*scheduler.Scheduler{schA, schB} {
			if i == 0 && killer.dead.Load() {
				continue
			}
			if _, err := sch.Tick(ctx, now); err != nil {
				tickErrors++
				if i == 0 && killer.dead.Load() && aDiedAt.IsZero() {
					aDiedAt = now
				}
			}
		}
		if restartRedisAt.Equal(now) {
			for s.recordedNow() < 20 && !s.idle() {
				pause(time.Millisecond)
			}
			s.own.Crash()
		}
		if crashWorkerAt.Equal(now) {
			s.crash(crasher)
		}
		if redisDown {
			// The tick failed; the workers wait for Redis. Nothing to
			// drain or read until it is back.
			pause(outageReal)
			s.assertFresh(now, bound, fresh)
			continue
		}
		s.drain()
		s.assertFresh(now, bound, fresh)
		s.assertMonotonic()
		s.assertBreaker(now, openAtStart, closes, calls)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ineligible) > 0 {
		t.Errorf("%d checks of ineligible connections, e.g. %v", len(s.ineligible), s.ineligible[:min(5, len(s.ineligible))])
	}
	if len(s.twice) > 0 {
		t.Errorf("%d slots recorded twice, e.g. %v", len(s.twice), s.twice[:min(5, len(s.twice))])
	}
	if !killer.dead.Load() || aDiedAt.IsZero() {
		t.Error("the scheduler replica did not die holding the sweep lock")
	}
	t.Logf("outage breaker: open %s to %s (outage %s to %s), %d whole ticks open with at most %d logins in one; %d checks not attempted",
		s.brOpenedAt.Format(time.RFC3339), s.brClosedAt.Format(time.RFC3339), outageFrom.Format(time.RFC3339), outageTo.Format(time.RFC3339),
		s.openTicks, s.maxOpen, s.na.count)
	switch {
	case s.brOpens != 1 || s.brCloses != 1:
		t.Errorf("the outage breaker opened %d and closed %d times, want once each (the two-day outage)", s.brOpens, s.brCloses)
	case s.brOpenedAt.Before(outageFrom) || s.brOpenedAt.After(outageFrom.Add(fmHealth("sim").Window+fmTick)):
		t.Errorf("the outage breaker opened at %s; the outage began at %s and its window is %s", s.brOpenedAt, outageFrom, fmHealth("sim").Window)
	case s.brClosedAt.Before(outageTo) || s.brClosedAt.After(outageTo.Add(4*fmTick)):
		t.Errorf("the outage breaker closed at %s; the outage ended at %s and a tick's probes reach the website", s.brClosedAt, outageTo)
	}
	if s.openTicks < 40 || s.na.count == 0 {
		t.Errorf("open for %d whole ticks with %d checks not attempted; the two days of outage should be about 47 ticks not attempted but for the probes",
			s.openTicks, s.na.count)
	}
	t.Logf("fault month: %d connections over %d days (interval %s, tick %s, lease %s), %s of real time; faults: %s",
		len(s.order), fmDays, fmInterval, fmTick, fmLease, time.Since(began).Round(time.Second), strings.Join(faults, "; "))
	t.Logf("%d checks recorded, %d checker calls, %d dropped or skipped records, %d tick errors during faults; "+
		"worst staleness of an eligible connection: %s (%s; the bound is %s)",
		s.recorded, s.calls, s.redone, tickErrors, s.worst, s.worstConn, bound)
}

// assertBreaker checks the outage breaker after a tick's checks, given
// whether it was open at the tick's start, how many times it had closed
// and how many checker calls there had been: during a tick it was open
// for from start to end, the logins were at most the minute's probes (the
// tick's checks run at one fake minute); from the tick after it closed,
// every connection not attempted has been checked again with a login (the
// scheduler enqueued it again) and none is left waiting in the store; at
// the first such tick, no eligible connection's last check is one not
// attempted (read from the store: what an integrator sees, whatever order
// the workers' reports came in).
func (s *fmSim) assertBreaker(now time.Time, openAtStart bool, closesAtStart, callsAtStart int) {
	s.t.Helper()
	s.mu.Lock()
	wholeTick := openAtStart && s.brOpen && s.brCloses == closesAtStart
	logins, closedAt := s.calls-callsAtStart, s.brClosedAt
	var late []string
	if !closedAt.IsZero() && now.Sub(closedAt) >= fmTick {
		for id, at := range s.na.waiting {
			if c := s.conns[id]; c != nil && s.eligible(c) {
				late = append(late, fmt.Sprintf("%s (not attempted at %s)", id, at.Format(time.RFC3339)))
			}
		}
	}
	if wholeTick {
		s.openTicks++
		s.maxOpen = max(s.maxOpen, logins)
	}
	s.mu.Unlock()
	if probes := fmHealth("sim").ProbesPerMinute; wholeTick && logins > probes {
		s.t.Errorf("at %s: %d logins at the DOWN datasource in one tick, want at most the %d probes", now, logins, probes)
	}
	if closedAt.IsZero() || now.Sub(closedAt) < fmTick {
		return
	}
	hs, err := s.st.DatasourceHealths(s.ctx, []string{"sim"}, func(ds string) (store.HealthRules, int) { return fmHealth(ds), 0 }, now)
	if err != nil {
		s.t.Fatalf("at %s: read the datasource's health: %v", now, err)
	}
	if len(late) > 0 {
		slices.Sort(late)
		for i, l := range late[:min(5, len(late))] {
			id, _, _ := strings.Cut(l, " ")
			if cn, err := s.st.GetConnection(s.ctx, id); err == nil {
				late[i] += fmt.Sprintf(": %s %q, last check %v", cn.Status, cn.StatusErrorDetail, cn.LastCheckAt)
			}
		}
		s.t.Fatalf("at %s, %s after the breaker closed: %d connections not attempted not checked again (the store has %+v), e.g. %v",
			now, now.Sub(closedAt), len(late), hs, late[:min(5, len(late))])
	}
	if len(hs) != 1 || hs[0].NotAttempted != 0 || hs[0].Breaker != "closed" {
		s.t.Fatalf("at %s, %s after the breaker closed: the store shows %+v, want the breaker closed and no connection waiting", now, now.Sub(closedAt), hs)
	}
	s.mu.Lock()
	swept := s.sweptNA
	s.sweptNA = true
	var eligible []string
	for _, c := range s.order {
		if s.eligible(c) {
			eligible = append(eligible, c.id)
		}
	}
	s.mu.Unlock()
	if swept {
		return
	}
	var stuck []string
	for _, id := range eligible {
		cn, err := s.st.GetConnection(s.ctx, id)
		if err != nil {
			s.t.Fatalf("at %s: read %s: %v", now, id, err)
		}
		if strings.HasSuffix(cn.LastCheckDetail, notAttemptedEnd) {
			stuck = append(stuck, fmt.Sprintf("%s (%s %q at %v)", id, cn.LastCheckStatus, cn.LastCheckDetail, cn.LastCheckAt))
		}
	}
	if len(stuck) > 0 {
		s.t.Fatalf("at %s, %s after the breaker closed: %d eligible connections show a check not attempted as their last, e.g. %v",
			now, now.Sub(closedAt), len(stuck), stuck[:min(5, len(stuck))])
	}
}

// notAttemptedEnd is how the detail of a check not attempted ends.
var notAttemptedEnd = func() string {
	d := store.Breaker{}.NotAttemptedDetail("sim")
	return d[strings.LastIndex(d, ")")+1:]
}()

// recordedNow is the number of checks recorded so far.
func (s *fmSim) recordedNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recorded
}

// idle reports whether no check task is left.
func (s *fmSim) idle() bool {
	n, err := s.pending()
	return err == nil && n == 0 && s.inflight.Load() == 0
}

// crash kills the crashing worker once it holds calls in flight (or the
// tick's tasks are done without it).
func (s *fmSim) crash(sv *fmServer) {
	for {
		s.checker.mu.Lock()
		left := s.checker.block
		s.checker.mu.Unlock()
		if left == 0 || s.idle() {
			break
		}
		pause(time.Millisecond)
	}
	sv.dead.Store(true)
	s.checker.mu.Lock()
	close(s.checker.held)
	held := len(s.checker.heldConn)
	s.checker.block = 0
	s.checker.mu.Unlock()
	go sv.stop() // its Redis calls fail: nothing is handed back
	if held == 0 {
		s.t.Log("the crashing worker held no check at its crash")
	} else {
		s.t.Logf("worker crashed holding %d checks", held)
	}
}

// assertFresh checks the freshness promise after a tick and tracks the
// worst staleness. The simulation learns of recorded checks from the
// worker's OnCheck; a check whose write landed but whose reply a fault
// cut off is recorded without one (its retry finds the slot served), so a
// connection that looks stale is read from the store before it counts.
func (s *fmSim) assertFresh(now time.Time, bound, fresh time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.order {
		if !s.eligible(c) {
			continue
		}
		limit, from := bound, c.last
		if c.last.IsZero() {
			limit, from = fresh, c.since
		}
		if now.Sub(from) > limit {
			if cn, err := s.st.GetConnection(s.ctx, c.id); err == nil && cn.LastCheckAt != nil && cn.LastCheckAt.After(from) {
				c.last = *cn.LastCheckAt // recorded without an OnCheck
			}
		}
		if c.last.IsZero() {
			if d := now.Sub(c.since); d > fresh {
				s.t.Fatalf("at %s: %s, checkable since %s, not checked yet (%s; bound %s)", now, c.id, c.since, d, fresh)
			}
			continue
		}
		d := now.Sub(c.last)
		if d > s.worst {
			s.worst, s.worstConn = d, c.id
		}
		if d > bound {
			s.t.Fatalf("at %s: %s last updated %s ago (at %s); bound %s", now, c.id, d, c.last, bound)
		}
	}
}

// assertMonotonic reads the connections checked since the last call and
// checks that no status time moved backwards.
func (s *fmSim) assertMonotonic() {
	s.mu.Lock()
	ids := make([]string, 0, len(s.touched))
	for id := range s.touched {
		ids = append(ids, id)
	}
	clear(s.touched)
	s.mu.Unlock()
	for _, id := range ids {
		cn, err := s.st.GetConnection(s.ctx, id)
		if err != nil {
			s.t.Fatal(err)
		}
		s.mu.Lock()
		c := s.conns[id]
		var check time.Time
		if cn.LastCheckAt != nil {
			check = *cn.LastCheckAt
		}
		if cn.StatusLastUpdateTime.Before(c.seenLast) || check.Before(c.seenCheck) ||
			(cn.StatusFirstSeenTime.Before(c.seenFirst) && cn.StatusFirstSeenTime.Before(c.seenLast)) {
			s.t.Errorf("%s: status times moved backwards: first seen %s → %s, last update %s → %s, last check %s → %s",
				id, c.seenFirst, cn.StatusFirstSeenTime, c.seenLast, cn.StatusLastUpdateTime, c.seenCheck, check)
		}
		c.seenFirst, c.seenLast, c.seenCheck = cn.StatusFirstSeenTime, cn.StatusLastUpdateTime, check
		s.mu.Unlock()
	}
}

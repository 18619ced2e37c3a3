package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/tasks"
)

func TestNewConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, defaultInterval)
	rec := &recorder{}
	tests := []struct {
		spec    string
		wantErr bool
	}{
		{spec: "", wantErr: true}, // no default: the configuration says
		{spec: "@every 1m"},
		{spec: "@every 90s"},
		{spec: "@hourly"},
		{spec: "@daily"},
		{spec: "*/5 * * * *"},
		{spec: "0 9 * * MON-FRI"},
		{spec: "every minute", wantErr: true},
		{spec: "* * * *", wantErr: true},
		{spec: "0 */5 * * * *", wantErr: true}, // seconds field: not a standard spec
		{spec: "@every banana", wantErr: true},
		{spec: "61 * * * *", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.Spec = tc.spec
			s, err := New(e.st, rec, cfg)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("New(%q) accepted an invalid spec", tc.spec)
				}
				if !strings.Contains(err.Error(), tc.spec) || !strings.Contains(err.Error(), "@every 1m") {
					t.Errorf("error %q should name the spec and show a valid example", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tc.spec, err)
			}
			if s.Config().Spec != tc.spec {
				t.Errorf("spec = %q, want %q", s.Config().Spec, tc.spec)
			}
		})
	}

	t.Run("checkd.yaml", func(t *testing.T) {
		t.Parallel()
		d := configs.Default()
		c := mustNew(t, e.st, rec).Config()
		if c.Spec != d.Tick || c.BatchSize != d.Scheduler.BatchSize || c.MaxPerTick != d.Scheduler.MaxPerTick ||
			c.Lease != d.Scheduler.Lease || c.EnqueueConcurrency != d.Scheduler.EnqueueConcurrency || c.Queue != tasks.QueueDefault ||
			c.TaskTimeout != d.Scheduler.TaskTimeout || c.MaxRetry != tasks.AsynqMaxRetry(d.Scheduler.MaxRetry) || c.Clock == nil {
			t.Errorf("ConfigFrom(configs.Default()) = %+v, want checkd.yaml's tick and scheduler section", c)
		}
	})
	t.Run("incomplete", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			field  string
			modify func(*Config)
		}{
			{"BatchSize", func(c *Config) { c.BatchSize = 0 }},
			{"MaxPerTick", func(c *Config) { c.MaxPerTick = 0 }},
			{"Lease", func(c *Config) { c.Lease = 0 }},
			{"EnqueueConcurrency", func(c *Config) { c.EnqueueConcurrency = 0 }},
			{"Queue", func(c *Config) { c.Queue = "" }},
			{"TaskTimeout", func(c *Config) { c.TaskTimeout = 0 }},
			{"MaxRetry", func(c *Config) { c.MaxRetry = -1 }},
		} {
			cfg := testConfig()
			tc.modify(&cfg)
			if _, err := New(e.st, rec, cfg); err == nil || !strings.Contains(err.Error(), "Config."+tc.field) {
				t.Errorf("New without %s: %v, want an error naming Config.%s", tc.field, err, tc.field)
			}
		}
	})
	t.Run("nil store or enqueuer", func(t *testing.T) {
		t.Parallel()
		if _, err := New(nil, rec, testConfig()); err == nil {
			t.Error("New accepted a nil store")
		}
		if _, err := New(e.st, nil, testConfig()); err == nil {
			t.Error("New accepted a nil enqueuer")
		}
	})
}

// TestTickPromptFirstCheck: nothing due enqueues nothing; a new PENDING
// connection is enqueued on the next tick, with the deterministic task ID on
// the configured queue and IDs only in the payload.
func TestTickPromptFirstCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       func(*Config) // nil: checkd's defaults
		wantQueue string
		wantRetry int
		wantTO    time.Duration
	}{
		{name: "checkd.yaml", wantQueue: tasks.QueueDefault,
			wantRetry: tasks.AsynqMaxRetry(configs.Default().Scheduler.MaxRetry), wantTO: configs.Default().Scheduler.TaskTimeout},
		{name: "configured", cfg: func(c *Config) { c.Queue, c.MaxRetry, c.TaskTimeout = tasks.QueueLow, 2, 30*time.Second },
			wantQueue: tasks.QueueLow, wantRetry: 2, wantTO: 30 * time.Second},
		{name: "no retry", cfg: func(c *Config) { c.MaxRetry = 0 },
			wantQueue: tasks.QueueDefault, wantRetry: 0, wantTO: configs.Default().Scheduler.TaskTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			// The tick comes a minute after creation: with a century-long
			// interval the weekly slot cannot fall inside it (at a week, 1 in
			// 10080 did).
			e := newEnv(t, longInterval)
			client := asynq.NewClientFromRedisClient(e.rdb)
			insp := asynq.NewInspectorFromRedisClient(e.rdb)
			var mods []func(*Config)
			if tc.cfg != nil {
				mods = append(mods, tc.cfg)
			}
			s := mustNew(t, e.st, client, mods...)

			st, err := s.Tick(ctx, e.clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			if st != (TickStats{Duration: st.Duration}) {
				t.Fatalf("empty tick: %+v, want zero counts", st)
			}

			co := e.company(t, "Acme")
			const secretUser, secretPass = "alice@example.com", "pw-alice@example.com"
			cn := e.connection(t, co, secretUser)
			now := e.clk.Advance(time.Minute) // the next tick
			st, err = s.Tick(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			if st.Claimed != 1 || st.Enqueued != 1 || st.AlreadyQueued != 0 || st.Failed != 0 || st.Truncated {
				t.Fatalf("tick after creation: %+v, want 1 claimed and enqueued", st)
			}

			pending, err := insp.ListPendingTasks(tc.wantQueue)
			if err != nil {
				t.Fatal(err)
			}
			if len(pending) != 1 {
				t.Fatalf("%d pending tasks on %q, want 1", len(pending), tc.wantQueue)
			}
			ti := pending[0]
			if want := tasks.CheckTaskID(cn.ID, cn.CreatedAt); ti.ID != want {
				t.Errorf("task ID %q, want %q", ti.ID, want)
			}
			if ti.Type != tasks.TypeCheckConnection || ti.Queue != tc.wantQueue || ti.MaxRetry != tc.wantRetry || ti.Timeout != tc.wantTO {
				t.Errorf("task %s on %s retry %d timeout %s, want %s on %s retry %d timeout %s",
					ti.Type, ti.Queue, ti.MaxRetry, ti.Timeout, tasks.TypeCheckConnection, tc.wantQueue, tc.wantRetry, tc.wantTO)
			}
			p, err := tasks.ParseCheckPayload(ti.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if p != (tasks.CheckPayload{ConnectionID: cn.ID, Slot: cn.CreatedAt.UnixMilli(), Reason: tasks.ReasonScheduled}) {
				t.Errorf("payload %+v", p)
			}
			for _, secret := range []string{secretUser, secretPass, "alice"} {
				if bytes.Contains(ti.Payload, []byte(secret)) {
					t.Errorf("payload %s contains the credential %q", ti.Payload, secret)
				}
			}

			// Advanced to its weekly slot: the next tick has nothing to do.
			st, err = s.Tick(ctx, now)
			if err != nil || st.Claimed != 0 {
				t.Fatalf("second tick: %+v %v, want nothing claimed", st, err)
			}
			got, err := e.st.GetConnection(ctx, cn.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.NextCheckAt == nil || !got.NextCheckAt.After(now) || got.NextCheckAt.After(now.Add(longInterval)) {
				t.Errorf("next check at %v, want within an interval after %v", got.NextCheckAt, now)
			}
		})
	}
}

// TestTickAlreadyQueued: a task that exists under its deterministic ID (a
// replica enqueued it) counts as AlreadyQueued, a success: the connection
// is advanced.
func TestTickAlreadyQueued(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, defaultInterval)
	client := asynq.NewClientFromRedisClient(e.rdb)
	cn := e.connection(t, e.company(t, "Acme"), "bob")
	task, err := tasks.NewCheckTask(cn.ID, cn.CreatedAt, tasks.ReasonScheduled)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.EnqueueContext(ctx, task); err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, e.st, client)
	st, err := s.Tick(ctx, e.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Claimed != 1 || st.Enqueued != 0 || st.AlreadyQueued != 1 || st.Failed != 0 {
		t.Fatalf("stats %+v, want 1 already queued", st)
	}
	// Advanced to its weekly slot, which may fall anywhere in the coming
	// week: nothing is due just before it, and it is due at it.
	next := checks.NextSlot(cn.ID, cn.CreatedAt, defaultInterval)
	if n, err := e.st.DueBacklog(ctx, next.Add(-time.Millisecond)); err != nil || n != 0 {
		t.Errorf("%d connections due before the weekly slot %v (%v), want the already-queued one advanced", n, next, err)
	}
	if n, err := e.st.DueBacklog(ctx, next); err != nil || n != 1 {
		t.Errorf("%d connections due at the weekly slot %v (%v), want 1", n, next, err)
	}
	if got, err := e.st.GetConnection(ctx, cn.ID); err != nil || got.NextCheckAt == nil || !got.NextCheckAt.Equal(next) {
		t.Errorf("next check at %v (%v), want the weekly slot %v", got.NextCheckAt, err, next)
	}
}

// TestConcurrentSchedulers: three schedulers on one store ticking at once
// enqueue each due check exactly once.
func TestConcurrentSchedulers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, defaultInterval)
	const n = 3000
	want := map[string]bool{}   // every first check, exactly once
	weekly := map[string]bool{} // weekly slots that came in the minute since creation
	now := t0.Add(time.Minute)
	for c := range 3 {
		for _, cn := range e.connections(t, e.company(t, fmt.Sprint("Co", c)), n/3) {
			want[tasks.CheckTaskID(cn.ID, cn.CreatedAt)] = true
			if w := checks.NextSlot(cn.ID, cn.CreatedAt, defaultInterval); !w.After(now) {
				weekly[tasks.CheckTaskID(cn.ID, w)] = true
			}
		}
	}
	rec := &recorder{next: asynq.NewClientFromRedisClient(e.rdb)}
	e.clk.Set(now)

	var scheds []*Scheduler
	for range 3 {
		// Small batches so the three interleave many claim rounds.
		scheds = append(scheds, mustNew(t, e.st, rec, func(c *Config) { c.BatchSize, c.EnqueueConcurrency = 50, 4 }))
	}
	stats := make([]TickStats, len(scheds))
	errs := make([]error, len(scheds))
	startGun := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range scheds {
		wg.Go(func() {
			<-startGun
			stats[i], errs[i] = s.Tick(ctx, now)
		})
	}
	close(startGun)
	wg.Wait()

	var sum TickStats
	for i, st := range stats {
		if errs[i] != nil {
			t.Fatalf("scheduler %d: %v", i, errs[i])
		}
		t.Logf("scheduler %d: %+v", i, st)
		sum.Claimed += st.Claimed
		sum.Enqueued += st.Enqueued
		sum.AlreadyQueued += st.AlreadyQueued
		sum.Failed += st.Failed
	}
	// A connection whose weekly slot came before the tick may also get that
	// slot's check (a different task) when another scheduler claimed its
	// first check; the scheduler that claims both enqueues one.
	got := rec.take()
	extra := 0
	seen := map[string]bool{}
	for _, p := range got {
		id := tasks.CheckTaskID(p.ConnectionID, time.UnixMilli(p.Slot))
		switch {
		case want[id]:
			seen[id] = true
		case weekly[id]:
			extra++
		default:
			t.Errorf("unexpected task %s", id)
		}
	}
	if len(seen) != n {
		t.Errorf("%d of %d first checks enqueued", len(seen), n)
	}
	total := n + extra
	if sum.Claimed != total || sum.Enqueued != total || sum.AlreadyQueued != 0 || sum.Failed != 0 {
		t.Errorf("sum of stats %+v, want %d claimed and enqueued (%d first checks, %d weekly)", sum, total, n, extra)
	}
	if d := rec.dupes(); len(d) > 0 {
		t.Errorf("%d tasks enqueued twice, e.g. %s", len(d), d[0])
	}
	if rec.calls != total || rec.distinct() != total {
		t.Errorf("%d enqueue calls for %d distinct tasks, want %d each", rec.calls, rec.distinct(), total)
	}
	qi, err := asynq.NewInspectorFromRedisClient(e.rdb).GetQueueInfo(tasks.QueueDefault)
	if err != nil {
		t.Fatal(err)
	}
	if qi.Pending != total || qi.Size != total {
		t.Errorf("asynq queue holds %d pending of %d tasks, want %d", qi.Pending, qi.Size, total)
	}

	// All advanced: nobody finds anything due any more.
	for i, s := range scheds {
		if st, err := s.Tick(ctx, now); err != nil || st.Claimed != 0 {
			t.Errorf("scheduler %d ticking again: %+v %v, want nothing", i, st, err)
		}
	}
}

// TestBoundedCatchUp: MaxPerTick bounds a tick; later ticks drain the rest
// and nothing is enqueued twice.
func TestBoundedCatchUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, defaultInterval)
	const n, perTick = 1000, 100
	cns := e.connections(t, e.company(t, "Acme"), n)
	rec := &recorder{}
	s := mustNew(t, e.st, rec, func(c *Config) { c.MaxPerTick, c.BatchSize = perTick, 30 })

	now := e.clk.Advance(time.Minute)
	// Every first check, and the weekly slots that fell in the minute since
	// creation (1000 connections have one about 1 time in 10).
	want := n
	for _, cn := range cns {
		if !checks.NextSlot(cn.ID, cn.CreatedAt, defaultInterval).After(now) {
			want++
		}
	}
	st, err := s.Tick(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Claimed != perTick || st.Enqueued != perTick || !st.Truncated {
		t.Fatalf("first tick %+v, want %d enqueued and truncated", st, perTick)
	}
	total := st.Enqueued
	ticks := 1
	// Later ticks at the same time: a later now could reach the new weekly
	// slot of an advanced connection, which would be a legitimate claim.
	for ; total < want && ticks < 100; ticks++ {
		st, err := s.Tick(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if st.Enqueued > perTick || st.Failed != 0 || st.AlreadyQueued != 0 {
			t.Fatalf("tick %d: %+v", ticks, st)
		}
		total += st.Enqueued
	}
	if wantTicks := (want + perTick - 1) / perTick; total != want || ticks != wantTicks {
		t.Errorf("enqueued %d in %d ticks, want %d in %d", total, ticks, want, wantTicks)
	}
	if st, err := s.Tick(ctx, now); err != nil || st.Claimed != 0 || st.Truncated {
		t.Errorf("tick after the backlog drained: %+v %v, want nothing", st, err)
	}
	if d := rec.dupes(); len(d) > 0 || rec.distinct() != want {
		t.Errorf("%d distinct tasks, %d enqueued twice; want %d once each", rec.distinct(), len(d), want)
	}
}

// TestFailedEnqueueComesDueAgain: items whose enqueue failed are not
// acknowledged; they come back after the lease, with their original slot,
// and are then enqueued.
func TestFailedEnqueueComesDueAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// This test moves the clock past the lease; with a century-long interval
	// no advanced connection's next slot falls inside those minutes.
	e := newEnv(t, longInterval)
	cns := e.connections(t, e.company(t, "Acme"), 20)
	failing := map[string]bool{}
	for _, cn := range cns[:5] {
		failing[cn.ID] = true
	}
	errDown := errors.New("redis: connection refused")
	var mu sync.Mutex
	down := true
	rec := &recorder{fail: func(p tasks.CheckPayload) error {
		mu.Lock()
		defer mu.Unlock()
		if down && failing[p.ConnectionID] {
			return errDown
		}
		return nil
	}}
	const lease = 5 * time.Minute
	s := mustNew(t, e.st, rec, func(c *Config) { c.Lease = lease })

	slot := e.clk.Now() // the connections were created, so due, now
	now := e.clk.Advance(time.Minute)
	st, err := s.Tick(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Claimed != 20 || st.Enqueued != 15 || st.Failed != 5 {
		t.Fatalf("stats %+v, want 20 claimed, 15 enqueued, 5 failed", st)
	}
	for _, p := range rec.take() {
		if failing[p.ConnectionID] {
			t.Errorf("failed connection %s recorded as accepted", p.ConnectionID)
		}
	}

	mu.Lock()
	down = false
	mu.Unlock()
	// Still leased: not due yet.
	if st, err := s.Tick(ctx, e.clk.Advance(lease-time.Second)); err != nil || st.Claimed != 0 {
		t.Fatalf("tick inside the lease: %+v %v, want nothing", st, err)
	}
	st, err = s.Tick(ctx, e.clk.Advance(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.Claimed != 5 || st.Enqueued != 5 || st.Failed != 0 {
		t.Fatalf("tick after the lease: %+v, want the 5 failed ones enqueued", st)
	}
	got := rec.take()
	for _, p := range got {
		if !failing[p.ConnectionID] {
			t.Errorf("connection %s enqueued again", p.ConnectionID)
		}
		// The original slot, hence the original task ID: had the first
		// enqueue reached asynq after all, this one would be refused.
		if want := slot.UnixMilli(); p.Slot != want {
			t.Errorf("retried slot %d, want the original slot %d", p.Slot, want)
		}
	}
	if len(got) != 5 {
		t.Errorf("%d accepted after the lease, want 5", len(got))
	}
	if st, err := s.Tick(ctx, e.clk.Advance(lease+time.Second)); err != nil || st.Claimed != 0 {
		t.Errorf("tick after recovery: %+v %v, want nothing", st, err)
	}
}

// TestTickCancelled: a cancelled tick reports the error, and nothing it
// claimed is lost.
func TestTickCancelled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, defaultInterval)
	e.connections(t, e.company(t, "Acme"), 10)
	s := mustNew(t, e.st, &recorder{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st, err := s.Tick(ctx, e.clk.Now())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled tick: %+v, error %v, want context.Canceled", st, err)
	}
	st, err = s.Tick(context.Background(), e.clk.Now())
	if err != nil || st.Enqueued != 10 {
		t.Errorf("next tick: %+v %v, want the 10 due enqueued", st, err)
	}
}

// TestStartStop: Stop is safe before Start and twice; a started scheduler
// ticks on its spec and reports through OnTick.
func TestStartStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, defaultInterval)
	cn := e.connection(t, e.company(t, "Acme"), "carol")
	ctx := context.Background()

	idle := mustNew(t, e.st, &recorder{})
	for range 2 {
		if err := idle.Stop(ctx); err != nil {
			t.Fatalf("Stop before Start: %v", err)
		}
	}
	if err := idle.Start(ctx); err == nil {
		t.Error("Start after Stop succeeded, want an error")
	}

	ticks := make(chan TickStats, 16)
	rec := &recorder{}
	s := mustNew(t, e.st, rec, func(c *Config) {
		c.Spec, c.Clock = "@every 1s", e.clk
		c.OnTick = func(st TickStats) {
			select {
			case ticks <- st:
			default:
			}
		}
	})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err == nil {
		t.Error("second Start succeeded, want an error")
	}
	deadline := time.After(10 * time.Second)
	select {
	case st := <-ticks:
		if st.Enqueued != 1 {
			t.Errorf("first cron tick %+v, want the pending connection enqueued", st)
		}
	case <-deadline:
		t.Fatal("no tick within 10s of Start with spec @every 1s")
	}
	if got := rec.take(); len(got) != 1 || got[0].ConnectionID != cn.ID {
		t.Errorf("cron tick enqueued %+v, want %s", got, cn.ID)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for range 2 {
		if err := s.Stop(stopCtx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
	}
}

// TestStopCancelsLongTick: Stop bounded by its context cancels a tick that
// does not finish in time.
func TestStopCancelsLongTick(t *testing.T) {
	t.Parallel()
	e := newEnv(t, defaultInterval)
	e.connection(t, e.company(t, "Acme"), "dave")
	entered := make(chan struct{})
	var once sync.Once
	blocking := enqueuerFunc(func(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
		once.Do(func() { close(entered) })
		<-ctx.Done() // a hung Redis: returns only when cancelled
		return nil, ctx.Err()
	})
	ticked := make(chan TickStats, 1)
	s := mustNew(t, e.st, blocking, func(c *Config) { c.Spec, c.OnTick = "@every 1s", func(st TickStats) { ticked <- st } })
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no tick within 10s")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no patience at all
	if err := s.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with an expired context: %v, want context.Canceled", err)
	}
	select {
	case st := <-ticked:
		if st.Failed != 1 {
			t.Errorf("cancelled tick %+v, want its enqueue failed", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the running tick did not end after Stop cancelled it")
	}
}

// longInterval makes next slots land (almost surely) beyond any test's
// clock moves: one slot per century.
const longInterval = 100 * 365 * 24 * time.Hour

// enqueuerFunc adapts a function to Enqueuer.
type enqueuerFunc func(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)

func (f enqueuerFunc) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	return f(ctx, task, opts...)
}

// TestOverlappingTicksSerialize: two ticks of one scheduler never run at
// once (the second waits), so they never enqueue the same slot twice.
func TestOverlappingTicksSerialize(t *testing.T) {
	t.Parallel()
	e := newEnv(t, defaultInterval)
	e.connections(t, e.company(t, "Acme"), 50)
	var mu sync.Mutex
	active, maxActive := 0, 0
	var s *Scheduler
	inner := &recorder{}
	probe := enqueuerFunc(func(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
		mu.Lock()
		active++
		maxActive = max(maxActive, active)
		mu.Unlock()
		defer func() { mu.Lock(); active--; mu.Unlock() }()
		return inner.EnqueueContext(ctx, task, opts...)
	})
	s = mustNew(t, e.st, probe, func(c *Config) { c.EnqueueConcurrency, c.BatchSize = 1, 5 })
	var wg sync.WaitGroup
	var total int
	var tmu sync.Mutex
	for range 4 {
		wg.Go(func() {
			st, err := s.Tick(context.Background(), e.clk.Now())
			if err != nil {
				t.Error(err)
			}
			tmu.Lock()
			total += st.Enqueued
			tmu.Unlock()
		})
	}
	wg.Wait()
	if maxActive != 1 {
		t.Errorf("%d enqueues ran at once with EnqueueConcurrency 1: ticks overlapped", maxActive)
	}
	if total != 50 || len(inner.dupes()) != 0 {
		t.Errorf("enqueued %d (dupes %v), want 50 once each", total, inner.dupes())
	}
}

// TestCronTickSkipsWhileTicking: a cron tick due while a tick still runs
// skips (and says so) instead of queueing up behind it.
func TestCronTickSkipsWhileTicking(t *testing.T) {
	t.Parallel()
	e := newEnv(t, defaultInterval)
	e.connection(t, e.company(t, "Acme"), "erin")
	logger, hook := logtest.NewNullLogger()
	rec := &recorder{}
	var ticks atomic.Int32
	s := mustNew(t, e.st, rec, func(c *Config) { c.Clock, c.Logger, c.OnTick = e.clk, logger, func(TickStats) { ticks.Add(1) } })

	s.tickMu.Lock() // a tick is running
	s.cronTick(context.Background())
	s.tickMu.Unlock()
	if ticks.Load() != 0 || rec.calls != 0 {
		t.Fatalf("cron tick ran during a running tick: %d ticks, %d enqueues", ticks.Load(), rec.calls)
	}
	if last := hook.LastEntry(); last == nil || last.Level != logrus.WarnLevel || !strings.Contains(last.Message, "skipping") {
		t.Errorf("skip not logged: %+v", last)
	}

	s.cronTick(context.Background())
	if ticks.Load() != 1 || len(rec.take()) != 1 {
		t.Errorf("cron tick with none running: %d ticks, want 1 and the due connection enqueued", ticks.Load())
	}
}

// TestCronTickLogsItsError: a cron tick that fails (Redis unreachable:
// the claim fails) says so at error level; nothing else would.
func TestCronTickLogsItsError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, defaultInterval)
	logger, hook := logtest.NewNullLogger()
	s := mustNew(t, e.st, &recorder{}, func(c *Config) { c.Clock, c.Logger = e.clk, logger })
	_ = e.rdb.Close() // every command now fails
	s.cronTick(context.Background())
	var found bool
	for _, en := range hook.AllEntries() {
		if err, ok := en.Data[logrus.ErrorKey].(error); ok && en.Level == logrus.ErrorLevel && strings.Contains(en.Message, "tick failed") && err != nil {
			found = true
		}
	}
	if !found {
		t.Fatalf("a failed cron tick was not logged at error level: %v", hook.AllEntries())
	}
}

// TestTickLogs: info with counts when something was enqueued, debug when
// not; a failed enqueue is logged with the connection and task IDs, never
// credentials.
func TestTickLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, defaultInterval)
	co := e.company(t, "Acme")
	ok := e.connection(t, co, "frank")
	bad := e.connection(t, co, "grace")
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	rec := &recorder{fail: func(p tasks.CheckPayload) error {
		if p.ConnectionID == bad.ID {
			return errors.New("connection reset by peer")
		}
		return nil
	}}
	s := mustNew(t, e.st, rec, func(c *Config) { c.Logger = logger })

	if _, err := s.Tick(ctx, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	var info, warn *logrus.Entry
	for _, en := range hook.AllEntries() {
		switch en.Level {
		case logrus.InfoLevel:
			info = en
		case logrus.WarnLevel:
			warn = en
		}
		for k, v := range en.Data {
			if s := fmt.Sprint(v); strings.Contains(s, "pw-") || strings.Contains(en.Message, "pw-") {
				t.Errorf("log field %s=%q holds a credential", k, s)
			}
		}
	}
	if info == nil || info.Data["enqueued"] != 1 || info.Data["claimed"] != 2 || info.Data["failed"] != 1 {
		t.Errorf("info entry %+v, want claimed 2, enqueued 1, failed 1", info)
	}
	if warn == nil || warn.Data["connection_id"] != bad.ID || warn.Data["task_id"] != tasks.CheckTaskID(bad.ID, bad.CreatedAt) {
		t.Errorf("warn entry %+v, want the failed connection's and task's IDs", warn)
	}
	if got := rec.take(); len(got) != 1 || got[0].ConnectionID != ok.ID {
		t.Errorf("accepted %+v, want only %s", got, ok.ID)
	}

	hook.Reset()
	if _, err := s.Tick(ctx, e.clk.Now()); err != nil { // still leased: nothing to do
		t.Fatal(err)
	}
	if last := hook.LastEntry(); last == nil || last.Level != logrus.DebugLevel {
		t.Errorf("idle tick logged %+v, want one debug entry", last)
	}
}

// TestReclaimedPartialClaimsInOneTick: when enqueues failed for a few
// connections of several claim batches (the rest acknowledged), the claims
// come back after their lease one batch at a time, each shorter than a
// batch. A tick takes them all, and goes on to what is newly due: a short
// reclaimed batch is not the end of the due index. (Before, each tick took
// one such batch and stopped, so recovery from a burst of failures took a
// tick per batch and held back new connections' first checks.)
func TestReclaimedPartialClaimsInOneTick(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, longInterval)
	co := e.company(t, "Acme")
	e.connections(t, co, 20)
	const lease, batch = 5 * time.Minute, 5
	// A scheduler claimed three batches, enqueued all but one connection of
	// each (acknowledged), and failed that one.
	var left []string
	for range 3 {
		claim := e.st.SweepOnDemand(e.clk.Now(), lease)
		items, err := claim.Next(ctx, batch)
		if err != nil || len(items) != batch {
			t.Fatalf("claim: %d items, %v", len(items), err)
		}
		ok := make([]bool, len(items))
		for i := 1; i < len(ok); i++ {
			ok[i] = true // acknowledged; items[0] failed
		}
		if err := claim.Ack(ctx, items, ok); err != nil {
			t.Fatal(err)
		}
		left = append(left, items[0].ConnectionID)
	}
	fresh := e.connections(t, co, 3) // due after the failures, before the lease ended
	e.clk.Advance(lease + time.Second)

	rec := &recorder{}
	s := mustNew(t, e.st, rec, func(c *Config) { c.Lease, c.BatchSize = lease, batch })
	st, err := s.Tick(ctx, e.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	// 3 reclaimed, 5 never claimed, 3 new.
	if st.Enqueued != 11 || st.Failed != 0 {
		t.Errorf("tick after the lease: %+v, want the 3 reclaimed, the 5 unclaimed and the 3 new enqueued", st)
	}
	got := map[string]bool{}
	for _, p := range rec.take() {
		got[p.ConnectionID] = true
	}
	for _, id := range left {
		if !got[id] {
			t.Errorf("reclaimed connection %s not enqueued", id)
		}
	}
	for _, cn := range fresh {
		if !got[cn.ID] {
			t.Errorf("new connection %s not enqueued in the same tick", cn.ID)
		}
	}
	if st, err := s.Tick(ctx, e.clk.Advance(time.Minute)); err != nil || st.Claimed != 0 {
		t.Errorf("next tick: %+v %v, want nothing left", st, err)
	}
}

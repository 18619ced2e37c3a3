package worker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/worker"
)

// simQueue is asynq for the simulation: tasks by ID, a second task of a
// queued ID refused as asynq does.
type simQueue struct {
	mu    sync.Mutex
	ids   map[string]bool
	tasks []*asynq.Task
}

func (q *simQueue) EnqueueContext(_ context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	p, err := tasks.ParseCheckPayload(t.Payload())
	if err != nil {
		return nil, err
	}
	id := tasks.CheckTaskID(p.ConnectionID, time.UnixMilli(p.Slot))
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ids[id] {
		return nil, asynq.ErrTaskIDConflict
	}
	q.ids[id] = true
	q.tasks = append(q.tasks, t)
	return &asynq.TaskInfo{ID: id}, nil
}

// take hands out the queued tasks; their IDs are free again once taken
// (as asynq forgets a completed task's ID).
func (q *simQueue) take() []*asynq.Task {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.tasks
	q.tasks, q.ids = nil, map[string]bool{}
	return out
}

// TestOutageMonth drives a month of 10-minute ticks over thousands of
// connections of one datasource on a fake clock, through the real
// scheduler and the worker's HandleCheck, with a provider outage of two
// days in the middle (the sandbox's SetDown). It checks the operations
// rules end to end: no connection goes longer than the interval and a tick
// (plus the queue's lag) without a recorded update, the outage breaker
// opens and no login reaches the DOWN datasource beyond one probe a
// minute, every connection not attempted is checked again within two
// ticks of the breaker closing, the connections that always fail are
// escalated to UNDER_INVESTIGATION (and still checked), and the others
// are not.
func TestOutageMonth(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation: skipped in -short mode")
	}
	t.Parallel()
	const (
		ds       = "provider"
		n        = 3000
		tick     = 10 * time.Minute
		days     = 30
		checkDur = 200 * time.Millisecond
	)
	rules := store.HealthRules{Window: 3 * time.Hour, MinChecks: 20, DownRatio: 0.8, DegradedRatio: 0.3, ProbesPerMinute: 1}
	sb := sandbox.New(sandbox.Options{})
	var brMu sync.Mutex
	var opened, closed []time.Time
	e := newEnv(t, envOpts{rdb: redistest.Start(t).Client(t), checkers: map[string]checks.Checker{ds: sb},
		cfg: func(c *worker.Config) {
			c.Datasources.Health = func(string) store.HealthRules { return rules }
			c.OnBreaker = func(_ string, b store.Breaker) {
				brMu.Lock()
				defer brMu.Unlock()
				if b.Open {
					opened = append(opened, b.Since)
				} else {
					closed = append(closed, b.Since)
				}
			}
		}})
	ctx := context.Background()
	interval := e.st.Interval()
	ins := make([]store.NewConnection, n)
	failing := map[string]bool{}
	for i := range ins {
		user := "user_good"
		if i%10 == 0 {
			user = "error_WEBSITE_DOWN"
		}
		ins[i] = store.NewConnection{Datasource: ds, Credentials: checks.Credentials{Username: user, Password: "p"}}
	}
	conns, err := e.st.CreateConnections(ctx, e.co.ID, ins)
	must(t, err)
	last := map[string]time.Time{} // the connection's last recorded update
	for i, c := range conns {
		last[c.ID] = c.CreatedAt
		if i%10 == 0 {
			failing[c.ID] = true
		}
	}
	q := &simQueue{ids: map[string]bool{}}
	sch, err := scheduler.New(e.st, q, scheduler.Config{Spec: "@every 10m", BatchSize: 500, MaxPerTick: 10000, Lease: 5 * time.Minute,
		EnqueueConcurrency: 4, Queue: tasks.QueueDefault, TaskTimeout: 5 * time.Minute, MaxRetry: 3, Clock: e.clk,
		Logger: quietLogger(), RecheckPerTick: 5000})
	must(t, err)

	start := e.clk.Now()
	outageFrom, outageTo := start.Add(10*24*time.Hour), start.Add(12*24*time.Hour)
	var (
		notAttempted     = map[string]time.Time{} // not attempted, and when
		loginsWhileOpen  int64
		checksWhileOpen  int
		ticksWhileOpen   int
		lateRecheck      []string
		maxGap           time.Duration
		checkedAfterDown = map[string]time.Time{}
	)
	for k := 0; k < days*24*int(time.Hour/tick); k++ {
		at := start.Add(time.Duration(k) * tick)
		if now := e.clk.Now(); now.Before(at) {
			e.clk.Advance(at.Sub(now))
		}
		sb.SetDown(!at.Before(outageFrom) && at.Before(outageTo))
		if _, err := sch.Tick(ctx, e.clk.Now()); err != nil {
			t.Fatalf("tick at %s: %v", at, err)
		}
		brMu.Lock()
		open, closes := len(opened) > len(closed), len(closed)
		brMu.Unlock()
		var tickLogins, tickChecks int
		minutes := map[int64]bool{} // the fake minutes the tick's checks started in
		for _, tk := range q.take() {
			p, err := tasks.ParseCheckPayload(tk.Payload())
			must(t, err)
			before := sb.Logins()
			minutes[e.clk.Now().Unix()/60] = true
			if err := e.w.HandleCheck(ctx, tk); err != nil && !errors.Is(err, asynq.SkipRetry) {
				t.Fatalf("check of %s: %v", p.ConnectionID, err)
			}
			login := sb.Logins() > before
			now := e.clk.Advance(checkDur)
			last[p.ConnectionID] = now
			tickChecks++
			if login {
				tickLogins++
			}
			if !login {
				notAttempted[p.ConnectionID] = now
			} else if _, was := notAttempted[p.ConnectionID]; was {
				checkedAfterDown[p.ConnectionID] = now
				delete(notAttempted, p.ConnectionID)
			}
		}
		// A tick the breaker was open for from start to end: its logins
		// are the probes of the minutes its checks started in, at most.
		brMu.Lock()
		wholeTick := open && len(opened) > len(closed) && len(closed) == closes
		brMu.Unlock()
		if wholeTick {
			ticksWhileOpen++
			checksWhileOpen += tickChecks
			loginsWhileOpen += int64(tickLogins)
			if tickLogins > len(minutes)*rules.ProbesPerMinute {
				t.Errorf("tick at %s, the breaker open: %d logins in %d checks over %d minutes; want at most the %d probes a minute",
					at, tickLogins, tickChecks, len(minutes), rules.ProbesPerMinute)
			}
		}
		// Every connection recorded within the interval and a tick of its
		// last update (and the queue's lag: the checks of one tick run one
		// after another).
		for id, l := range last {
			if gap := e.clk.Now().Sub(l); gap > maxGap {
				maxGap = gap
			}
			if gap := e.clk.Now().Sub(l); gap > interval+2*tick {
				t.Fatalf("connection %s: no recorded update for %s (interval %s)", id, gap, interval)
			}
		}
		brMu.Lock()
		if len(closed) > 0 && e.clk.Now().Sub(closed[len(closed)-1]) > 2*tick && len(notAttempted) > 0 && len(lateRecheck) == 0 {
			for id := range notAttempted {
				lateRecheck = append(lateRecheck, id)
			}
		}
		brMu.Unlock()
	}
	if len(opened) != 1 || len(closed) != 1 {
		t.Fatalf("breaker opened %d and closed %d times, want once each (a two-day outage)", len(opened), len(closed))
	}
	if opened[0].Before(outageFrom) || opened[0].After(outageFrom.Add(rules.Window)) || closed[0].Before(outageTo) || closed[0].After(outageTo.Add(time.Hour)) {
		t.Errorf("breaker open %s to %s, outage %s to %s", opened[0], closed[0], outageFrom, outageTo)
	}
	// The outage is two days of 10-minute ticks, less the window it takes
	// to open and the tick it closes in.
	if ticksWhileOpen < 250 || checksWhileOpen <= int(loginsWhileOpen) {
		t.Errorf("while DOWN: %d ticks open from start to end, %d logins in %d checks; want about 280 ticks, most checks not attempted",
			ticksWhileOpen, loginsWhileOpen, checksWhileOpen)
	}
	if len(checkedAfterDown) == 0 {
		t.Fatal("no connection was not attempted: the breaker did nothing")
	}
	for id, at := range checkedAfterDown {
		if at.Sub(closed[0]) > 2*tick {
			t.Errorf("connection %s checked again %s after the breaker closed, want within 2 ticks", id, at.Sub(closed[0]))
		}
	}
	if len(lateRecheck) > 0 {
		t.Errorf("%d connections not attempted were not checked again within 2 ticks of recovery (e.g. %s)", len(lateRecheck), lateRecheck[0])
	}
	// Escalation: the connections that always fail, and only those.
	page, err := e.st.ListConnections(ctx, e.co.ID, nil, "", store.MaxPageSize)
	must(t, err)
	var esc, wrong int
	for cur := page; ; {
		for _, c := range cur.Connections {
			under := c.Status == checks.ConnUnderInvestigation
			if under {
				esc++
			}
			if under != failing[c.ID] {
				wrong++
			}
		}
		if cur.Next == "" {
			break
		}
		cur, err = e.st.ListConnections(ctx, e.co.ID, nil, cur.Next, store.MaxPageSize)
		must(t, err)
	}
	if esc != len(failing) || wrong != 0 {
		t.Errorf("escalated %d (want the %d always failing), %d wrong", esc, len(failing), wrong)
	}
	t.Logf("%d connections, breaker open %s to %s; %d checks while open, %d logins (probes); %d re-checked after it closed; longest gap %s",
		n, opened[0].Format(time.RFC3339), closed[0].Format(time.RFC3339), checksWhileOpen, loginsWhileOpen, len(checkedAfterDown), maxGap)
}

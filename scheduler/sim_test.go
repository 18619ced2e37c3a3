package scheduler

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/store"
)

// simConn is what the simulation knows of one connection.
type simConn struct {
	idx        int
	company    int
	created    time.Time
	lastUpdate time.Time // statusLastUpdateTime, as last written
	checks     int
	// deadline is the latest tick at which the next check may be enqueued:
	// creation or reactivation + one tick, or last update + interval + tick.
	deadline    time.Time
	blocked     bool // credential-blocked
	deactivated bool // isActive false
}

// simOutcome is the fake checker: the result of a connection's n-th check
// (0-based), a mix of healthy, provider-error and credential outcomes.
func simOutcome(idx, n int) checks.ConnectionStatus {
	switch idx % 10 {
	case 0: // wrong password from the start
		return checks.ConnPasswordIncorrect
	case 1: // password changed after the first check
		if n == 0 {
			return checks.ConnConnected
		}
		return checks.ConnPasswordIncorrect
	case 2, 3:
		return checks.ConnWebsiteDown
	case 4: // flaky
		if n%2 == 0 {
			return checks.ConnWebsiteDown
		}
		return checks.ConnConnected
	}
	return checks.ConnConnected
}

// simEvent is something that happens between two ticks.
type simEvent struct {
	at time.Time
	do func()
}

// TestSimulatedMonth drives a month of hourly ticks over thousands of
// connections of 5 companies with a fake clock, running every enqueued check
// at once with a fake result through the store (LoadCheck, RecordCheck),
// while connections are created, deactivated and reactivated and a company
// is deactivated and reactivated. It checks the scheduling rules: nothing
// credential-blocked, deactivated or company-inactive is ever enqueued; every
// other connection is checked again within interval + one tick of its last
// status update; PENDING and reactivated ones within one tick.
func TestSimulatedMonth(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation: skipped in -short mode")
	}
	t.Parallel()
	const interval = 168 * time.Hour
	tests := []struct {
		name           string
		env            func(t *testing.T) *env
		initial, later int // connections created before the first tick, and during the month
	}{
		// miniredis runs every Lua script in a fresh interpreter: fewer
		// connections keep it at a few seconds.
		{name: "miniredis", env: func(t *testing.T) *env { return newEnv(t, interval) }, initial: 400, later: 100},
		{name: "redis", env: func(t *testing.T) *env { return newEnvOn(t, redistest.Start(t).Client(t), interval) },
			initial: 1600, later: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			simulateMonth(t, tc.env(t), interval, tc.initial, tc.later)
		})
	}
}

// simulateMonth is TestSimulatedMonth on one backend.
func simulateMonth(t *testing.T, e *env, interval time.Duration, initial, later int) {
	const (
		tick      = time.Hour
		days      = 30
		finishLag = 30 * time.Second
		nCompany  = 5
		inactive  = 4 // the company deactivated mid-month
	)
	ctx := context.Background()
	rec := &recorder{}
	s := mustNew(t, e.st, rec, func(c *Config) { c.Clock = e.clk })
	day := func(d int) time.Time { return t0.Add(time.Duration(d)*24*time.Hour + 30*time.Minute) } // between ticks
	end := t0.Add(days * 24 * time.Hour)

	var companies []store.Company
	for i := range nCompany {
		companies = append(companies, e.company(t, fmt.Sprintf("Company %d", i)))
	}
	companyInactive := map[int]bool{}
	conns := map[string]*simConn{}
	add := func(cn store.Connection, company int) {
		conns[cn.ID] = &simConn{idx: len(conns), company: company, created: cn.CreatedAt,
			lastUpdate: cn.StatusLastUpdateTime, deadline: cn.CreatedAt.Add(tick)}
	}
	for i, co := range companies {
		for _, cn := range e.connections(t, co, initial/nCompany) {
			add(cn, i)
		}
	}
	eligible := func(c *simConn) bool { return !c.blocked && !c.deactivated && !companyInactive[c.company] }
	// refresh re-reads a connection's last update after an admin action and,
	// when it became checkable again, expects a check within one tick.
	refresh := func(id string, c *simConn, wasEligible bool) {
		cn, err := e.st.GetConnection(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		c.lastUpdate = cn.StatusLastUpdateTime
		if eligible(c) && !wasEligible {
			c.deadline = e.clk.Now().Add(tick)
		}
	}

	var events []simEvent
	laterEvery := (end.Sub(t0) - tick) / time.Duration(later)
	for i := range later {
		events = append(events, simEvent{at: t0.Add(laterEvery/2 + time.Duration(i)*laterEvery), do: func() {
			co := len(conns) % nCompany
			add(e.connection(t, companies[co], fmt.Sprintf("late_%d", i)), co)
		}})
	}
	setActive := func(pick func(c *simConn) bool, active bool) func() {
		return func() {
			for id, c := range conns {
				if !pick(c) || c.deactivated == !active {
					continue
				}
				was := eligible(c)
				if _, err := e.st.UpdateDetails(ctx, id, store.DetailsPatch{IsActive: &active}); err != nil {
					t.Fatal(err)
				}
				c.deactivated = !active
				refresh(id, c, was)
			}
		}
	}
	setCompany := func(co int, active bool) func() {
		return func() {
			was := map[string]bool{}
			for id, c := range conns {
				was[id] = eligible(c)
			}
			if _, err := e.st.SetCompanyActive(ctx, companies[co].ID, active); err != nil {
				t.Fatal(err)
			}
			companyInactive[co] = !active
			for id, c := range conns {
				if c.company == co {
					refresh(id, c, was[id])
				}
			}
		}
	}
	events = append(events,
		simEvent{at: day(3), do: setActive(func(c *simConn) bool { return c.idx%10 == 5 }, false)},
		simEvent{at: day(8), do: setCompany(inactive, false)},
		simEvent{at: day(12), do: setActive(func(c *simConn) bool { return c.idx%20 == 5 }, true)},
		simEvent{at: day(20), do: setCompany(inactive, true)},
	)
	sort.Slice(events, func(i, j int) bool { return events[i].at.Before(events[j].at) })

	var total, skips int
	for now := t0.Add(tick); !now.After(end); now = now.Add(tick) {
		for len(events) > 0 && events[0].at.Before(now) {
			e.clk.Set(events[0].at)
			events[0].do()
			events = events[1:]
		}
		e.clk.Set(now)
		st, err := s.Tick(ctx, now)
		if err != nil {
			t.Fatalf("tick at %s: %v", now, err)
		}
		got := rec.take()
		if st.Enqueued != len(got) || st.Claimed != len(got) || st.Failed != 0 || st.AlreadyQueued != 0 || st.Truncated {
			t.Fatalf("tick at %s: %+v for %d accepted tasks", now, st, len(got))
		}
		for _, p := range got {
			c := conns[p.ConnectionID]
			switch {
			case c == nil:
				t.Fatalf("tick at %s enqueued unknown connection %s", now, p.ConnectionID)
			case c.blocked:
				t.Fatalf("tick at %s enqueued credential-blocked connection %s", now, p.ConnectionID)
			case c.deactivated:
				t.Fatalf("tick at %s enqueued deactivated connection %s", now, p.ConnectionID)
			case companyInactive[c.company]:
				t.Fatalf("tick at %s enqueued connection %s of an inactive company", now, p.ConnectionID)
			case now.After(c.deadline):
				t.Errorf("connection %s (created %s, %d checks, last update %s) enqueued at %s, after its deadline %s",
					p.ConnectionID, c.created, c.checks, c.lastUpdate, now, c.deadline)
			}
			// The worker's part, synchronously.
			tg, err := e.st.LoadCheck(ctx, p.ConnectionID)
			if err != nil {
				t.Fatal(err)
			}
			if tg.Skip != checks.SkipNone {
				skips++
				continue
			}
			status := simOutcome(c.idx, c.checks)
			res := checks.Result{Status: status}
			if !status.IsError() {
				res.Accounts = []checks.AccountResult{{Number: "A-" + p.ConnectionID}}
			}
			finished := now.Add(finishLag)
			r, err := e.st.RecordCheck(ctx, tg, store.CheckResult{
				Attempt: tasks.CheckTaskID(p.ConnectionID, time.UnixMilli(p.Slot)), StartedAt: now, FinishedAt: finished, Result: res})
			if err != nil {
				t.Fatal(err)
			}
			if r.Outcome == store.Duplicate {
				// A reply lost to a client timeout on this loaded machine:
				// go-redis retried the write, which found it already done
				// (the compare-and-set refused the second copy). Fine if
				// the stored check is this one.
				cn, err := e.st.GetConnection(ctx, p.ConnectionID)
				if err != nil {
					t.Fatal(err)
				}
				if cn.LastCheckAt == nil || !cn.LastCheckAt.Equal(finished) {
					t.Fatalf("record check of %s: duplicate, but the stored last check is %v, not this one (%s)", p.ConnectionID, cn.LastCheckAt, finished)
				}
				r.Outcome = store.Applied
			}
			if r.Outcome != store.Applied {
				t.Fatalf("record check of %s: %+v, want applied", p.ConnectionID, r)
			}
			c.checks++
			c.lastUpdate = finished
			c.deadline = finished.Add(interval + tick)
			c.blocked = status.CredentialBlocked()
			total++
		}
		// Nobody eligible is left behind.
		for id, c := range conns {
			if eligible(c) && now.After(c.deadline) {
				t.Fatalf("after the tick at %s, connection %s (created %s, %d checks, last update %s) is overdue",
					now, id, c.created, c.checks, c.lastUpdate)
			}
		}
	}
	if skips > 0 {
		t.Errorf("%d enqueued checks were ineligible at run time", skips)
	}

	// Cross-check with the store: the ineligible left the due index, the
	// others are due within an interval of their last update.
	var nBlocked, nOff, nChecked int
	for id, c := range conns {
		cn, err := e.st.GetConnection(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !cn.StatusLastUpdateTime.Equal(c.lastUpdate) {
			t.Errorf("%s: store's statusLastUpdateTime %s, simulation's %s", id, cn.StatusLastUpdateTime, c.lastUpdate)
		}
		// Blocked are the wrong passwords and the changed ones checked twice.
		if want := c.idx%10 == 0 || c.idx%10 == 1 && c.checks >= 2; c.blocked != want {
			t.Errorf("%s (#%d, %d checks): blocked %v, want %v", id, c.idx, c.checks, c.blocked, want)
		}
		if c.created.Before(end.Add(-interval-tick)) && c.checks < 2 && !c.blocked && !c.deactivated {
			t.Errorf("%s created %s was checked %d times in the month, want at least 2", id, c.created, c.checks)
		}
		switch {
		case c.blocked || c.deactivated:
			if c.blocked {
				nBlocked++
			} else {
				nOff++
			}
			if cn.NextCheckAt != nil {
				t.Errorf("%s (status %s) has a next check %v, want none", id, cn.Status, cn.NextCheckAt)
			}
		default:
			nChecked++
			if cn.NextCheckAt == nil || cn.NextCheckAt.Sub(c.lastUpdate) > interval {
				t.Errorf("%s: next check %v, want within %s of %s", id, cn.NextCheckAt, interval, c.lastUpdate)
			}
		}
	}
	if len(conns) != initial+later || len(events) != 0 {
		t.Errorf("%d connections and %d events left, want %d and none", len(conns), len(events), initial+later)
	}
	t.Logf("%d connections, %d checks; at the end %d credential-blocked, %d deactivated, %d scheduled",
		len(conns), total, nBlocked, nOff, nChecked)
}

package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/store"
)

// TestInactiveCompanyMonth: a company with thousands of connections is
// deactivated; over a simulated month not one of its connections is
// enqueued while another company's are; on reactivation every one of them
// is enqueued on the next tick.
func TestInactiveCompanyMonth(t *testing.T) {
	t.Parallel()
	const (
		n        = 3000
		interval = 168 * time.Hour
		tick     = time.Hour
	)
	ctx := context.Background()
	e := newEnvOn(t, redistest.Start(t).Client(t), interval)
	off, on := e.company(t, "Going dormant"), e.company(t, "Still active")
	ins := make([]store.NewConnection, n)
	for i := range ins {
		ins[i] = store.NewConnection{Datasource: "sandbox", Credentials: checks.Credentials{Username: "user_good", Password: "pw"}}
	}
	offConns, err := e.st.CreateConnections(ctx, off.ID, ins)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateConnections(ctx, on.ID, ins[:100]); err != nil {
		t.Fatal(err)
	}
	dormant := map[string]bool{}
	for _, c := range offConns {
		dormant[c.ID] = true
	}

	res, err := e.st.SetCompanyActive(ctx, off.ID, false)
	if err != nil || res.Connections != n {
		t.Fatalf("deactivate: %+v %v", res, err)
	}
	rec := &recorder{}
	s := mustNew(t, e.st, rec, func(c *Config) { c.Clock, c.MaxPerTick = e.clk, 2*n })
	others := map[string]int{}
	for now := e.clk.Now().Add(tick); now.Before(t0.Add(30 * 24 * time.Hour)); now = now.Add(tick) {
		e.clk.Set(now)
		if _, err := s.Tick(ctx, now); err != nil {
			t.Fatal(err)
		}
		for _, p := range rec.take() {
			if dormant[p.ConnectionID] {
				t.Fatalf("connection %s of the inactive company enqueued at %s", p.ConnectionID, now)
			}
			others[p.ConnectionID]++
		}
	}
	if len(others) != 100 {
		t.Fatalf("the active company's 100 connections: %d enqueued", len(others))
	}
	for id, k := range others {
		if k < 4 { // prompt first check, then weekly over 30 days
			t.Fatalf("active connection %s checked %d times in a month", id, k)
		}
	}

	// Reactivation: every connection due at once, all enqueued on the next tick.
	if res, err := e.st.SetCompanyActive(ctx, off.ID, true); err != nil || res.Connections != n {
		t.Fatalf("reactivate: %+v %v", res, err)
	}
	now := e.clk.Advance(tick)
	st, err := s.Tick(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range rec.take() {
		got[p.ConnectionID] = true
	}
	for id := range dormant {
		if !got[id] {
			t.Fatalf("reactivated connection %s not enqueued on the next tick (%+v)", id, st)
		}
	}
}

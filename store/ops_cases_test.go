package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
)

// Interleavings FuzzOperations found wrong, each fixed (the tests failed
// before their fix).

// deactivateCompanyAround runs SetCompanyActive(f.co, false)'s own steps,
// the flag, then moveCompany per status in its order, with during run just
// before status split is converted: what a caller acting concurrently
// with the deactivation does.
func (f *fixture) deactivateCompanyAround(split checks.ConnectionStatus, during func()) {
	f.t.Helper()
	if err := f.s.setCompanyFlag(f.ctx, f.co.ID, "0"); err != nil {
		f.t.Fatal(err)
	}
	for _, st := range checks.ConnectionStatuses {
		if st == split {
			during()
		}
		if st == checks.ConnCompanyInactive {
			continue
		}
		if _, err := f.s.moveCompany(f.ctx, f.co.ID, string(st), "0"); err != nil {
			f.t.Fatal(err)
		}
	}
}

// TestCompanyDeactivationMissesCheckInFlight: SetCompanyActive(false)
// converts a company's connections one status index at a time, in the
// order of checks.ConnectionStatuses. A check loaded before the company's
// flag went down (so not skipped) and recorded while the conversion runs
// used to be applied, and when it moved the connection into an index the
// conversion had already emptied (WEBSITE_DOWN → CONNECTED), the
// conversion never saw it: a CONNECTED connection, still scheduled, under
// an inactive company. RecordCheck's write now guards the company's flag,
// and the check is dropped as ineligible.
//
// The test runs SetCompanyActive's own steps (setCompanyFlag, then
// moveCompany per status) with the check's RecordCheck between two of them,
// the interleaving a worker running concurrently produces.
func TestCompanyDeactivationMissesCheckInFlight(t *testing.T) {
	f := newFixture(t, miniBackend, nil)
	c := f.conn("user_good")
	f.record(c.ID, "a1", t0, fail(checks.ConnWebsiteDown, "503"))

	f.clk.Advance(time.Minute)
	tg, err := f.s.LoadCheck(f.ctx, c.ID) // a worker starts a check: the company is active
	if err != nil || tg.Skip != checks.SkipNone {
		t.Fatalf("load: %v %q", err, tg.Skip)
	}

	// PENDING .. CONNECTED converted, then the check's record, then the rest.
	f.deactivateCompanyAround(checks.ConnWebsiteDown, func() {
		rec, err := f.s.RecordCheck(f.ctx, tg, CheckResult{Attempt: "a2", StartedAt: f.clk.Now(), FinishedAt: f.clk.Now().Add(time.Second), Result: ok("A")})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Outcome != Ineligible {
			t.Errorf("check recorded while the company was being deactivated: %s %s → %s, want ineligible", rec.Outcome, rec.From, rec.To)
		}
	})

	co, _ := f.s.GetCompany(f.ctx, f.co.ID)
	got := f.get(c.ID)
	if !co.IsActive && got.Status != checks.ConnCompanyInactive {
		t.Errorf("company deactivated, but its connection is %s with next check %v (want COMPANY_INACTIVE, not scheduled)", got.Status, got.NextCheckAt)
	}
	f.invariants()
}

// TestDroppedCheckReportsStatusAsLoaded: RecordCheck decides its first
// attempt on the record LoadCheck decoded (CheckTarget.rec); when that
// outcome wrote nothing (here Duplicate) it used to return the status as
// loaded in Recorded.From/To, not "the connection's status before and
// after", when an admin action came in between. It now decides again on
// the current record.
func TestDroppedCheckReportsStatusAsLoaded(t *testing.T) {
	f := newFixture(t, miniBackend, nil)
	c := f.conn("user_good")
	f.record(c.ID, "a1", t0, ok("A"))
	tg, err := f.s.LoadCheck(f.ctx, c.ID) // the same attempt arrives again (a redelivery)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.SetCompanyActive(f.ctx, f.co.ID, false); err != nil {
		t.Fatal(err)
	}
	rec, err := f.s.RecordCheck(f.ctx, tg, CheckResult{Attempt: "a1", StartedAt: t0, FinishedAt: t0.Add(time.Second), Result: ok("A")})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.get(c.ID).Status; rec.From != got || rec.To != got {
		t.Errorf("RecordCheck %s reports %s → %s; the connection is %s", rec.Outcome, rec.From, rec.To, got)
	}
}

// TestAdminCheckSameMillisecondAsLastAttempt: an admin action's check is
// enqueued for its due time, so its task ID (check:<conn>:<ms>) equals the
// last applied check's when both fall in the same millisecond. The check
// after new credentials used to be dropped as a duplicate, leaving them
// unchecked until the weekly slot; void now forgets the last attempt.
func TestAdminCheckSameMillisecondAsLastAttempt(t *testing.T) {
	f := newFixture(t, miniBackend, nil)
	c := f.conn("user_good")
	attempt := fmt.Sprintf("check:%s:%d", c.ID, t0.UnixMilli())
	f.record(c.ID, attempt, t0, fail(checks.ConnPasswordIncorrect, ""))
	ch, err := f.s.UpdateCredentials(f.ctx, c.ID, checks.Credentials{Username: "user_good"})
	if err != nil || !ch.CheckNow || !ch.DueAt.Equal(t0) {
		t.Fatalf("credentials: %+v, %v; want a check due at %v", ch, err, t0)
	}
	tg, err := f.s.LoadCheck(f.ctx, c.ID)
	if err != nil || tg.Skip != checks.SkipNone || tg.Served(ch.DueAt) {
		t.Fatalf("load: skip %q served %v, %v", tg.Skip, tg.Served(ch.DueAt), err)
	}
	rec, err := f.s.RecordCheck(f.ctx, tg, CheckResult{Attempt: attempt, StartedAt: t0, FinishedAt: t0, Result: ok("A")})
	if err != nil || rec.Outcome != Applied || rec.To != checks.ConnConnected {
		t.Fatalf("the new credentials' check: %+v, %v; want applied, CONNECTED", rec, err)
	}
}

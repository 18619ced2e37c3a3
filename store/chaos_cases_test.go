package store

import (
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
)

// Interleavings TestConcurrentOperations found wrong, each as an explicit
// sequence of the steps concurrent callers take (each failed before its
// fix).

// TestReactivationDuringCompanyDeactivationEscapesConversion:
// SetCompanyActive(false) lowers the company's flag, then converts the
// company's status indexes one by one in the order of
// checks.ConnectionStatuses, DEACTIVATED last. A deactivated connection
// whose saved status is credential-blocked, reactivated (UpdateDetails
// isActive true) after the credential indexes were converted and before
// DEACTIVATED is, goes back to PASSWORD_INCORRECT without the company guard
// (UpdateDetails guards the flag only when the restored status is
// checkable) into an index the conversion already emptied: the
// deactivation then ends, without error, leaving the connection
// PASSWORD_INCORRECT under an inactive company.
func TestReactivationDuringCompanyDeactivationEscapesConversion(t *testing.T) {
	f := newFixture(t, miniBackend, nil)
	c := f.conn("user_good")
	f.record(c.ID, "a1", t0, fail(checks.ConnPasswordIncorrect, "rejected"))
	off, on := false, true
	if _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{IsActive: &off}); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)

	// The reactivation just before the conversion reaches DEACTIVATED.
	f.deactivateCompanyAround(checks.ConnDeactivated, func() {
		if _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{IsActive: &on}); err != nil {
			t.Fatalf("reactivation: %v", err)
		}
	})

	co, _ := f.s.GetCompany(f.ctx, f.co.ID)
	if got := f.get(c.ID); !co.IsActive && got.Status != checks.ConnCompanyInactive {
		t.Errorf("company deactivated, but its connection is %s (want COMPANY_INACTIVE)", got.Status)
	}
	f.invariants()
}

// TestFailedSweepEnqueueReschedulesIneligible: a sweep batch read while a
// connection was eligible, acknowledged with its enqueue failed after the
// connection was deactivated, puts the connection back in the on-demand due
// index (ackSweepScript adds failed items unconditionally): a DEACTIVATED
// connection with a next check time, which the scheduler claims and
// enqueues again.
func TestFailedSweepEnqueueReschedulesIneligible(t *testing.T) {
	f := newFixture(t, miniBackend, func(c *Config) { c.Interval = time.Hour })
	c := f.conn("user_good")
	f.record(c.ID, "a1", t0, ok("A"))                 // out of the due index: weekly only
	sw, err := f.s.BeginSweep(f.ctx, t0, time.Minute) // sets the cursor
	if err != nil || sw == nil {
		t.Fatalf("first sweep: %v %v", sw, err)
	}
	if err := sw.End(f.ctx); err != nil {
		t.Fatal(err)
	}
	now := f.clk.Advance(time.Hour) // every slot of the interval is due
	sw, err = f.s.BeginSweep(f.ctx, now, time.Minute)
	if err != nil || sw == nil {
		t.Fatalf("sweep: %v %v", sw, err)
	}
	items, err := sw.Next(f.ctx, 10)
	if err != nil || len(items) != 1 || items[0].ConnectionID != c.ID {
		t.Fatalf("sweep read %+v, %v; want %s", items, err, c.ID)
	}
	off := false // an admin deactivates it while the scheduler enqueues
	if _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{IsActive: &off}); err != nil {
		t.Fatal(err)
	}
	if err := sw.Ack(f.ctx, items, []bool{false}); err != nil { // its enqueue failed
		t.Fatal(err)
	}
	if err := sw.End(f.ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.get(c.ID); got.NextCheckAt != nil {
		t.Errorf("%s connection has a next check at %v", got.Status, got.NextCheckAt)
	}
	f.invariants()
}

// TestCheckTimesGoBackwards: RecordCheck stamps the status fields with the
// check's FinishedAt, however late the write lands, so times written since
// (by an admin action stamped with the store's clock, or by a check that
// started earlier but was recorded first) can be newer. A confirmation
// stamped after the check finished, then the check's write: the account
// keeps ONBOARDED and its statusLastUpdateTime goes back before its
// statusFirstSeenTime. Two overlapping checks, the later-started one
// finishing first but recorded second (it is not stale: staleness compares
// start times), with the same status: the connection's
// statusLastUpdateTime (and lastCheckAt) go back before its
// statusFirstSeenTime. (With an error status instead, lastCheckAt goes
// back before lastSuccessAt, as the chaos test saw.)
func TestCheckTimesGoBackwards(t *testing.T) {
	t.Run("confirmation between a check's end and its write", func(t *testing.T) {
		f := newFixture(t, miniBackend, nil)
		c := f.conn("user_good")
		f.record(c.ID, "a1", t0, ok("A"))
		start := f.clk.Advance(time.Hour)
		tg, err := f.s.LoadCheck(f.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(2 * time.Second) // the check ended at start+1s; an admin confirms at start+2s
		acct := f.get(c.ID).Accounts[0].ID
		if _, err := f.s.ConfirmAccounts(f.ctx, c.ID, []AccountDecision{{AccountID: acct, TrackingStatus: checks.TrackingEnabled}}); err != nil {
			t.Fatal(err)
		}
		rec, err := f.s.RecordCheck(f.ctx, tg, CheckResult{Attempt: "a2", StartedAt: start, FinishedAt: start.Add(time.Second), Result: ok("A")})
		if err != nil || rec.Outcome != Applied {
			t.Fatalf("check: %+v, %v", rec, err)
		}
		a := f.get(c.ID).Accounts[0]
		if a.StatusFirstSeenTime.After(a.StatusLastUpdateTime) {
			t.Errorf("account %s: statusFirstSeenTime %v after statusLastUpdateTime %v", a.Status, a.StatusFirstSeenTime, a.StatusLastUpdateTime)
		}
	})
	t.Run("later-started check recorded after an earlier-started one", func(t *testing.T) {
		f := newFixture(t, miniBackend, nil)
		c := f.conn("user_good")
		start := f.clk.Advance(time.Hour)
		slow, _ := f.s.LoadCheck(f.ctx, c.ID)
		fast, _ := f.s.LoadCheck(f.ctx, c.ID)
		if _, err := f.s.RecordCheck(f.ctx, slow, CheckResult{Attempt: "slow", StartedAt: start, FinishedAt: start.Add(10 * time.Second), Result: ok("A")}); err != nil {
			t.Fatal(err)
		}
		rec, err := f.s.RecordCheck(f.ctx, fast, CheckResult{Attempt: "fast", StartedAt: start.Add(time.Second), FinishedAt: start.Add(5 * time.Second),
			Result: ok("A")})
		if err != nil || rec.Outcome != Applied {
			t.Fatalf("later-started check: %+v, %v", rec, err)
		}
		got := f.get(c.ID)
		if got.StatusFirstSeenTime.After(got.StatusLastUpdateTime) {
			t.Errorf("%s: statusFirstSeenTime %v after statusLastUpdateTime %v", got.Status, got.StatusFirstSeenTime, got.StatusLastUpdateTime)
		}
	})
}

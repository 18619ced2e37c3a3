package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
)

// runOpsConformance is the conformance suite's part for the operations
// rules (issue 20): escalation to UNDER_INVESTIGATION, operators'
// investigation flags, account flags and site assignments. It runs on
// every backend runConformance does.
func runOpsConformance(t *testing.T, b backend) {
	day := 24 * time.Hour
	// checkEvery records res on id once per interval (one day here, so the
	// escalation's two weeks pass in the test's checks) n times.
	checkEvery := func(f *fixture, id string, n int, res checks.Result) Recorded {
		var r Recorded
		for i := 0; i < n; i++ {
			f.clk.Advance(day)
			r = f.record(id, fmt.Sprintf("check:%s:%d", id, f.clk.Now().UnixMilli()), f.clk.Now(), res)
		}
		return r
	}
	t.Run("escalation needs both the failures in a row and the time without success", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		checkEvery(f, c.ID, 1, ok("A1"))
		// Three failures in three days: failures enough, time not.
		checkEvery(f, c.ID, 3, fail(checks.ConnWebsiteDown, "503"))
		if got := f.get(c.ID); got.Status != checks.ConnWebsiteDown || got.Investigation != nil {
			t.Fatalf("3 failures in 3 days: %s %+v, want WEBSITE_DOWN (not two weeks yet)", got.Status, got.Investigation)
		}
		// Ten more days of failures: 13 days since the success, not 14.
		checkEvery(f, c.ID, 10, fail(checks.ConnOtherError, "boom"))
		if got := f.get(c.ID); got.Status != checks.ConnOtherError {
			t.Fatalf("13 days: %s, want OTHER_ERROR", got.Status)
		}
		rec := checkEvery(f, c.ID, 1, fail(checks.ConnURLInaccessible, "dns"))
		got := f.get(c.ID)
		if got.Status != checks.ConnUnderInvestigation || rec.To != checks.ConnUnderInvestigation {
			t.Fatalf("14 days and 14 failures: %s, want UNDER_INVESTIGATION", got.Status)
		}
		if got.Investigation == nil || got.Investigation.By != InvestigationAutomatic || !got.Investigation.Since.Equal(f.clk.Now().Add(time.Second)) {
			t.Fatalf("investigation = %+v, want automatic since the check's end", got.Investigation)
		}
		for _, want := range []string{"URL_INACCESSIBLE", "14 checks in a row", "336h0m", "dns"} {
			if !strings.Contains(got.StatusErrorDetail, want) {
				t.Errorf("detail %q does not name %q", got.StatusErrorDetail, want)
			}
		}
		if got.LastCheckStatus != checks.ConnURLInaccessible || got.LastCheckDetail != "dns" {
			t.Errorf("last check = %s %q, want URL_INACCESSIBLE dns", got.LastCheckStatus, got.LastCheckDetail)
		}
		if got.Accounts[0].Status != checks.AcctWorkflowNotAccessible {
			t.Errorf("account %s, want WORKFLOW_NOT_ACCESSIBLE (accounts follow the check)", got.Accounts[0].Status)
		}
		f.invariants()

		// Still checked weekly: another failure keeps the status and its
		// since, moves lastCheckAt and the detail.
		since := got.StatusFirstSeenTime
		checkEvery(f, c.ID, 1, fail(checks.ConnWebsiteDown, "down again"))
		got = f.get(c.ID)
		if got.Status != checks.ConnUnderInvestigation || !got.StatusFirstSeenTime.Equal(since) ||
			!got.LastCheckAt.Equal(f.clk.Now().Add(time.Second)) || got.LastCheckStatus != checks.ConnWebsiteDown ||
			!strings.Contains(got.StatusErrorDetail, "15 checks") {
			t.Fatalf("a failure under investigation: %+v", got)
		}
		if got.NextCheckAt == nil {
			t.Fatal("an escalated connection must stay in the weekly schedule")
		}
		// A success ends an automatic escalation.
		checkEvery(f, c.ID, 1, ok("A1"))
		got = f.get(c.ID)
		if got.Status != checks.ConnConnected || got.Investigation != nil || got.LastCheckStatus != checks.ConnConnected {
			t.Fatalf("success after escalation: %s %+v", got.Status, got.Investigation)
		}
		f.invariants()
	})
	t.Run("a credential failure never counts and ends an escalation", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		checkEvery(f, c.ID, 20, fail(checks.ConnWebsiteDown, ""))
		if got := f.get(c.ID); got.Status != checks.ConnUnderInvestigation {
			t.Fatalf("never succeeded for 20 days (since creation): %s, want UNDER_INVESTIGATION", got.Status)
		}
		checkEvery(f, c.ID, 1, fail(checks.ConnPasswordIncorrect, "rejected"))
		got := f.get(c.ID)
		if got.Status != checks.ConnPasswordIncorrect || got.Investigation != nil {
			t.Fatalf("credential error under investigation: %s, want PASSWORD_INCORRECT", got.Status)
		}
		f.invariants()
		// New credentials: failures count again from zero.
		if _, err := f.s.UpdateCredentials(f.ctx, c.ID, checks.Credentials{Username: "u2", Password: "p"}); err != nil {
			t.Fatal(err)
		}
		checkEvery(f, c.ID, 2, fail(checks.ConnWebsiteDown, ""))
		if got := f.get(c.ID); got.Status != checks.ConnWebsiteDown {
			t.Fatalf("2 failures after the credential error: %s, want WEBSITE_DOWN", got.Status)
		}
		checkEvery(f, c.ID, 1, fail(checks.ConnWebsiteDown, ""))
		if got := f.get(c.ID); got.Status != checks.ConnUnderInvestigation {
			t.Fatalf("3 provider failures in a row, weeks without success: %s, want UNDER_INVESTIGATION", got.Status)
		}
	})
	t.Run("escalation off escalates nothing", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, func(c *Config) { c.Escalation = Escalation{} })
		c := f.conn("user_good")
		checkEvery(f, c.ID, 20, fail(checks.ConnWebsiteDown, ""))
		if got := f.get(c.ID); got.Status != checks.ConnWebsiteDown {
			t.Fatalf("escalation off: %s, want WEBSITE_DOWN", got.Status)
		}
	})
	t.Run("an operator's flag stays through checks until cleared", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		checkEvery(f, c.ID, 1, ok("A1"))
		f.clk.Advance(time.Hour)
		ch, err := f.s.FlagInvestigation(f.ctx, c.ID, "  provider changed its login page  ")
		if err != nil {
			t.Fatal(err)
		}
		got := ch.Connection
		if got.Status != checks.ConnUnderInvestigation || got.StatusErrorDetail != "provider changed its login page" ||
			got.Investigation == nil || got.Investigation.By != InvestigationOperator || !got.StatusFirstSeenTime.Equal(f.clk.Now()) {
			t.Fatalf("flagged: %+v", got)
		}
		if got.LastCheckStatus != checks.ConnConnected {
			t.Errorf("last check = %s, want CONNECTED still visible", got.LastCheckStatus)
		}
		// A success does not end an operator's flag; the accounts move on.
		checkEvery(f, c.ID, 1, ok("A1", "A2"))
		got = f.get(c.ID)
		if got.Status != checks.ConnUnderInvestigation || got.StatusErrorDetail != "provider changed its login page" ||
			len(got.Accounts) != 2 || got.LastCheckStatus != checks.ConnConnected || got.ConsecutiveFailures != 0 {
			t.Fatalf("success under an operator's flag: %+v", got)
		}
		checkEvery(f, c.ID, 1, fail(checks.ConnWebsiteDown, "503"))
		if got = f.get(c.ID); got.Status != checks.ConnUnderInvestigation || got.LastCheckStatus != checks.ConnWebsiteDown {
			t.Fatalf("failure under an operator's flag: %+v", got)
		}
		// A new note on a flagged connection; the same note writes nothing.
		f.clk.Advance(time.Minute)
		if ch, err = f.s.FlagInvestigation(f.ctx, c.ID, "second note"); err != nil || ch.Connection.StatusErrorDetail != "second note" {
			t.Fatalf("new note: %v %+v", err, ch.Connection)
		}
		before := f.snapshot(c.ID)
		if _, err = f.s.FlagInvestigation(f.ctx, c.ID, "second note"); err != nil || f.snapshot(c.ID) != before {
			t.Fatalf("same note again: err %v, record changed %v", err, f.snapshot(c.ID) != before)
		}
		// Clear: back to the last check's outcome, due at once.
		f.clk.Advance(time.Minute)
		ch, err = f.s.ClearInvestigation(f.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got = ch.Connection; got.Status != checks.ConnWebsiteDown || got.StatusErrorDetail != "503" || got.Investigation != nil ||
			!ch.CheckNow || !ch.DueAt.Equal(f.clk.Now()) {
			t.Fatalf("cleared: %+v checkNow %v", got, ch.CheckNow)
		}
		if due, err := f.rdb.ZScore(f.ctx, f.s.kDue(), c.ID).Result(); err != nil || int64(due) != f.clk.Now().UnixMilli() {
			t.Fatalf("cleared: due %v (%v), want due now", due, err)
		}
		if _, err = f.s.ClearInvestigation(f.ctx, c.ID); !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("clear a connection not under investigation: %v, want ErrNotAllowed", err)
		}
		f.invariants()
		h, err := f.s.History(f.ctx, c.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		causes := []string{}
		for _, e := range h {
			if e.AccountID == "" {
				causes = append(causes, e.Cause)
			}
		}
		if !slices.Contains(causes, CauseInvestigate) || !slices.Contains(causes, CauseInvestigateClear) {
			t.Errorf("history causes %v, want the flag and the clear", causes)
		}
	})
	t.Run("an operator's flag ends with a credential error or new credentials", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c, d := f.conn("user_good"), f.conn("user_other")
		for _, id := range []string{c.ID, d.ID} {
			if _, err := f.s.FlagInvestigation(f.ctx, id, ""); err != nil {
				t.Fatal(err)
			}
		}
		if got := f.get(c.ID); got.StatusErrorDetail != "flagged by an operator" || got.LastCheckStatus != "" {
			t.Fatalf("flag without a note, before any check: %+v", got)
		}
		checkEvery(f, c.ID, 1, fail(checks.ConnMFATokenExpired, "code"))
		if got := f.get(c.ID); got.Status != checks.ConnMFATokenExpired || got.Investigation != nil {
			t.Fatalf("credential error under a flag: %s", got.Status)
		}
		ch, err := f.s.UpdateCredentials(f.ctx, d.ID, checks.Credentials{Username: "new", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if ch.Connection.Status != checks.ConnPending || ch.Connection.Investigation != nil || !ch.CheckNow {
			t.Fatalf("new credentials under a flag: %s checkNow %v", ch.Connection.Status, ch.CheckNow)
		}
		f.invariants()
	})
	t.Run("flagging is refused where no check runs", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c, d := f.conn("user_good"), f.conn("user_bad")
		checkEvery(f, c.ID, 1, fail(checks.ConnPasswordIncorrect, ""))
		if _, err := f.s.FlagInvestigation(f.ctx, c.ID, "x"); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("credential-blocked: %v, want ErrNotAllowed", err)
		}
		off := false
		if _, err := f.s.UpdateDetails(f.ctx, d.ID, DetailsPatch{IsActive: &off}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.FlagInvestigation(f.ctx, d.ID, "x"); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("deactivated: %v, want ErrNotAllowed", err)
		}
		for _, note := range []string{strings.Repeat("n", MaxNoteLen+1), "bell\a"} {
			if _, err := f.s.FlagInvestigation(f.ctx, d.ID, note); !errors.Is(err, ErrInvalid) {
				t.Errorf("note %.10q: %v, want ErrInvalid", note, err)
			}
		}
	})
	t.Run("deactivation keeps an investigation and reactivation restores it", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		checkEvery(f, c.ID, 15, fail(checks.ConnWebsiteDown, ""))
		since := f.get(c.ID).StatusFirstSeenTime
		off, on := false, true
		f.clk.Advance(time.Hour)
		if _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{IsActive: &off}); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Hour)
		ch, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{IsActive: &on})
		if err != nil {
			t.Fatal(err)
		}
		got := ch.Connection
		if got.Status != checks.ConnUnderInvestigation || got.Investigation == nil || got.Investigation.By != InvestigationAutomatic ||
			!got.StatusFirstSeenTime.Equal(since) || got.LastCheckStatus != checks.ConnWebsiteDown {
			t.Fatalf("reactivated: %+v", got)
		}
		checkEvery(f, c.ID, 1, ok())
		if got = f.get(c.ID); got.Status != checks.ConnNoAccountsFound && got.Status != checks.ConnUnderInvestigation {
			t.Fatalf("after reactivation: %s", got.Status)
		}
		f.invariants()
	})
	t.Run("account flags: OLD_ACCOUNT, DUPLICATE, undo", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, func(c *Config) { c.AutoTrack = true })
		c, d := f.conn("user_good"), f.conn("user_other")
		checkEvery(f, c.ID, 2, pulled(checks.AcctPullCompleted, "A1", "A2")) // discovered, then pulled
		checkEvery(f, d.ID, 1, ok("B1"))
		cc, dc := f.get(c.ID), f.get(d.ID)
		a1, a2, b1 := cc.Accounts[0], cc.Accounts[1], dc.Accounts[0]
		pulledAt := a1.StatusFirstSeenTime
		f.clk.Advance(time.Hour)
		ch, err := f.s.FlagAccount(f.ctx, c.ID, AccountFlag{AccountID: a1.ID, Status: checks.AcctOldAccount})
		if err != nil {
			t.Fatal(err)
		}
		if got := ch.Connection.Accounts[0]; got.Status != checks.AcctOldAccount || !got.StatusFirstSeenTime.Equal(f.clk.Now()) {
			t.Fatalf("flagged OLD_ACCOUNT: %+v", got)
		}
		// A check leaves it alone and does not pull it.
		tg, err := f.s.LoadCheck(f.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if tg.Request.Accounts[0].Pull || !tg.Request.Accounts[1].Pull {
			t.Fatalf("pull flags %+v: a flagged account is never pulled", tg.Request.Accounts)
		}
		checkEvery(f, c.ID, 1, fail(checks.ConnWebsiteDown, ""))
		if got := f.get(c.ID).Accounts[0]; got.Status != checks.AcctOldAccount {
			t.Fatalf("a check moved a flagged account to %s", got.Status)
		}
		// A DUPLICATE of an account of another connection of the company.
		if ch, err = f.s.FlagAccount(f.ctx, c.ID, AccountFlag{AccountID: a2.ID, Status: checks.AcctDuplicate, DuplicateOf: b1.ID}); err != nil {
			t.Fatal(err)
		}
		if got := ch.Connection.Accounts[1]; got.Status != checks.AcctDuplicate || got.DuplicateOf != b1.ID {
			t.Fatalf("flagged DUPLICATE: %+v", got)
		}
		refused := []struct {
			name string
			conn string
			flag AccountFlag
			want error
		}{
			{"a duplicate of a duplicate", d.ID, AccountFlag{AccountID: b1.ID, Status: checks.AcctDuplicate, DuplicateOf: a2.ID}, ErrInvalid},
			{"a duplicate of itself", d.ID, AccountFlag{AccountID: b1.ID, Status: checks.AcctDuplicate, DuplicateOf: b1.ID}, ErrInvalid},
			{"a duplicate of nothing", d.ID, AccountFlag{AccountID: b1.ID, Status: checks.AcctDuplicate}, ErrInvalid},
			{"a duplicate of an unknown account", d.ID, AccountFlag{AccountID: b1.ID, Status: checks.AcctDuplicate, DuplicateOf: "ac_00000000"}, ErrInvalid},
			{"another status", d.ID, AccountFlag{AccountID: b1.ID, Status: checks.AcctCustomerNotTracked}, ErrInvalid},
			{"duplicateOf without DUPLICATE", d.ID, AccountFlag{AccountID: b1.ID, Status: checks.AcctOldAccount, DuplicateOf: a1.ID}, ErrInvalid},
			{"an unknown account", d.ID, AccountFlag{AccountID: a1.ID, Status: checks.AcctOldAccount}, ErrInvalid},
			{"undo of an account not flagged", d.ID, AccountFlag{AccountID: b1.ID}, ErrInvalid},
		}
		for _, r := range refused {
			before := f.snapshot(r.conn)
			if _, err := f.s.FlagAccount(f.ctx, r.conn, r.flag); !errors.Is(err, r.want) {
				t.Errorf("%s: %v, want %v", r.name, err, r.want)
			}
			if f.snapshot(r.conn) != before {
				t.Errorf("%s: the refused flag wrote", r.name)
			}
		}
		// Another company's account is not a duplicate's original.
		other, err := f.s.CreateCompany(f.ctx, NewCompany{Name: "Other"})
		if err != nil {
			t.Fatal(err)
		}
		oc, err := f.s.CreateConnection(f.ctx, NewConnection{CompanyID: other.ID, Datasource: "sandbox", Credentials: checks.Credentials{Username: "o"}})
		if err != nil {
			t.Fatal(err)
		}
		checkEvery(f, oc.ID, 1, ok("C1"))
		if _, err := f.s.FlagAccount(f.ctx, oc.ID, AccountFlag{AccountID: f.get(oc.ID).Accounts[0].ID, Status: checks.AcctDuplicate, DuplicateOf: b1.ID}); !errors.Is(err, ErrInvalid) {
			t.Errorf("duplicate of another company's account: %v, want ErrInvalid", err)
		}
		// Undo: back to what the account was, since when it was.
		f.clk.Advance(time.Hour)
		if ch, err = f.s.FlagAccount(f.ctx, c.ID, AccountFlag{AccountID: a1.ID}); err != nil {
			t.Fatal(err)
		}
		if got := ch.Connection.Accounts[0]; got.Status != checks.AcctPullCompleted || !got.StatusFirstSeenTime.Equal(pulledAt) {
			t.Fatalf("undone: %s since %s, want PULL_COMPLETED since %s", got.Status, got.StatusFirstSeenTime, pulledAt)
		}
		// Company deactivation and reactivation keep a flag.
		if _, err := f.s.SetCompanyActive(f.ctx, f.co.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.FlagAccount(f.ctx, c.ID, AccountFlag{AccountID: a1.ID, Status: checks.AcctOldAccount}); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("flag while the company is inactive: %v, want ErrNotAllowed", err)
		}
		if _, err := f.s.SetCompanyActive(f.ctx, f.co.ID, true); err != nil {
			t.Fatal(err)
		}
		if got := f.get(c.ID).Accounts[1]; got.Status != checks.AcctDuplicate || got.DuplicateOf != b1.ID {
			t.Fatalf("after company reactivation: %+v", got)
		}
		if ch, err = f.s.FlagAccount(f.ctx, c.ID, AccountFlag{AccountID: a2.ID}); err != nil || ch.Connection.Accounts[1].DuplicateOf != "" {
			t.Fatalf("undo after reactivation: %v %+v", err, ch.Connection.Accounts[1])
		}
		f.invariants()
	})
	t.Run("site assignments", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		mk := func(user string, sites ...string) Connection {
			c, err := f.s.CreateConnection(f.ctx, NewConnection{CompanyID: f.co.ID, Datasource: "sandbox",
				Credentials: checks.Credentials{Username: user}, SiteIDs: sites})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		a, bb, c := mk("a", "site-1", "site-2"), mk("b"), mk("c", "site-2")
		if !slices.Equal(a.SiteIDs, []string{"site-1", "site-2"}) || bb.SiteIDs == nil || len(bb.SiteIDs) != 0 {
			t.Fatalf("created: %v / %v", a.SiteIDs, bb.SiteIDs)
		}
		if got := f.get(a.ID).SiteIDs; !slices.Equal(got, []string{"site-1", "site-2"}) {
			t.Fatalf("read back: %v", got)
		}
		long := strings.Repeat("s", MaxSiteIDLen+1)
		many := make([]string, MaxSiteIDs+1)
		for i := range many {
			many[i] = fmt.Sprint("s", i)
		}
		for _, bad := range [][]string{{""}, {long}, {"a\tb"}, {"x", "x"}, many} {
			if _, err := f.s.CreateConnection(f.ctx, NewConnection{CompanyID: f.co.ID, Datasource: "sandbox",
				Credentials: checks.Credentials{Username: "z"}, SiteIDs: bad}); !errors.Is(err, ErrInvalid) {
				t.Errorf("siteIds %.20q: %v, want ErrInvalid", bad, err)
			}
			if _, err := f.s.UpdateDetails(f.ctx, a.ID, DetailsPatch{SiteIDs: &bad}); !errors.Is(err, ErrInvalid) {
				t.Errorf("patch siteIds %.20q: %v, want ErrInvalid", bad, err)
			}
		}
		set := []string{"site-3"}
		ch, err := f.s.UpdateDetails(f.ctx, bb.ID, DetailsPatch{SiteIDs: &set})
		if err != nil || !slices.Equal(ch.Connection.SiteIDs, set) {
			t.Fatalf("patch: %v %v", err, ch.Connection.SiteIDs)
		}
		evs, err := f.s.Events(f.ctx, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		last := evs[len(evs)-1]
		if last.ConnectionID != bb.ID || !slices.Contains(last.ProtectedChanges, "siteIds") {
			t.Fatalf("the patch's event: %+v, want siteIds in protectedChanges", last)
		}
		before := f.snapshot(bb.ID)
		if _, err := f.s.UpdateDetails(f.ctx, bb.ID, DetailsPatch{SiteIDs: &set}); err != nil || f.snapshot(bb.ID) != before {
			t.Fatalf("same sites again: %v, wrote %v", err, f.snapshot(bb.ID) != before)
		}
		checkEvery(f, c.ID, 1, ok("X"))
		// The listing's filter, with statuses and across pages.
		list := func(site string, statuses []checks.ConnectionStatus, limit int) []string {
			var ids []string
			cur := ""
			for {
				p, err := f.s.ListConnectionsBy(f.ctx, f.co.ID, ListFilter{Statuses: statuses, SiteID: site}, cur, limit)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range p.Connections {
					ids = append(ids, c.ID)
				}
				if cur = p.Next; cur == "" {
					return ids
				}
			}
		}
		for _, tc := range []struct {
			site     string
			statuses []checks.ConnectionStatus
			want     []string
		}{
			{"site-2", nil, []string{a.ID, c.ID}},
			{"site-2", []checks.ConnectionStatus{checks.ConnPending}, []string{a.ID}},
			{"site-1", nil, []string{a.ID}},
			{"site-3", nil, []string{bb.ID}},
			{"nowhere", nil, nil},
		} {
			for _, limit := range []int{1, 2, 100} {
				got := list(tc.site, tc.statuses, limit)
				slices.Sort(got)
				want := slices.Clone(tc.want)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("site %s statuses %v limit %d: %v, want %v", tc.site, tc.statuses, limit, got, want)
				}
			}
		}
		if _, err := f.s.ListConnectionsBy(f.ctx, f.co.ID, ListFilter{SiteID: "a\nb"}, "", 10); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad site filter: %v, want ErrInvalid", err)
		}
	})
}

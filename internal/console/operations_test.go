package console_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// TestInvestigationActions: the console flags and clears an investigation
// through the store's calls, recording console:<action> by the user, and
// refuses what the API refuses without a change.
func TestInvestigationActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	cn := e.conn("user_good")
	e.record(cn.ID, connected("1001"))
	b := e.browser()
	page := "/console/connections/" + cn.ID

	// Not under investigation: nothing to clear (409, as DELETE answers).
	before := e.snapshot(cn.ID)
	got := b.post(page, page+"/investigation/clear")
	if got.code != http.StatusConflict {
		t.Errorf("clear without an investigation = %d, want 409", got.code)
	}
	got.has(t, "clear refused", "Not done.", "not under investigation")
	for _, tc := range []struct {
		note, says string
	}{
		{"escape \x1b[31m", "must not contain control characters"},
		{strings.Repeat("n", store.MaxNoteLen+1), fmt.Sprintf("note is at most %d bytes", store.MaxNoteLen)},
	} {
		got := b.post(page, page+"/investigation", "note", tc.note)
		if got.code != http.StatusBadRequest {
			t.Errorf("investigate with note %.20q = %d, want 400", tc.note, got.code)
		}
		got.has(t, "bad note", "Not done.", tc.says)
	}
	if after := e.snapshot(cn.ID); after != before {
		t.Errorf("refused investigation actions changed the store:\nbefore %s\nafter  %s", before, after)
	}

	p := b.redirected(t, b.post(page, page+"/investigation", "note", "  portal changed its login; OPS-12 "), page)
	p.has(t, "flagged", `Connection under investigation ("portal changed its login; OPS-12")`, "Clear investigation", "Update note")
	c := e.te.Get(t, cn.ID)
	if c.Status != checks.ConnUnderInvestigation || c.Investigation == nil || c.Investigation.By != store.InvestigationOperator ||
		c.Investigation.Note != "portal changed its login; OPS-12" {
		t.Errorf("after flag: %s %+v", c.Status, c.Investigation)
	}
	if h := e.lastEntry(cn.ID); h.Cause != "console:investigate" || h.Actor != user || h.To != string(checks.ConnUnderInvestigation) {
		t.Errorf("history: %+v, want console:investigate by %s", h, user)
	}

	p = b.redirected(t, b.post(page, page+"/investigation/clear"), page)
	p.has(t, "cleared", "Investigation cleared: the connection is Connected.", "A check is enqueued (task check:"+cn.ID, "Flag under investigation")
	if c := e.te.Get(t, cn.ID); c.Status != checks.ConnConnected || c.Investigation != nil {
		t.Errorf("after clear: %s %+v", c.Status, c.Investigation)
	}
	if h := e.lastEntry(cn.ID); h.Cause != "console:investigate-clear" || h.Actor != user || h.To != string(checks.ConnConnected) {
		t.Errorf("history: %+v, want console:investigate-clear by %s", h, user)
	}
	enq := e.enq.Enqueued()
	if len(enq) != 1 {
		t.Fatalf("%d tasks enqueued, want the clear's check", len(enq))
	}
	if pl, err := tasks.ParseCheckPayload(enq[0].Payload()); err != nil || pl.ConnectionID != cn.ID || pl.Reason != tasks.ReasonInvestigationCleared {
		t.Errorf("enqueued %+v %v", pl, err)
	}

	// A deactivated connection offers no investigation and the store
	// refuses one (409).
	b.redirected(t, b.post(page, page+"/deactivate"), page)
	if p := b.get(page); strings.Contains(p.body, `id="investigate"`) {
		t.Error("a deactivated connection offers an investigation")
	}
	got = b.post(page, page+"/investigation", "note", "x")
	if got.code != http.StatusConflict {
		t.Errorf("investigate a deactivated connection = %d, want 409", got.code)
	}
	got.has(t, "deactivated", "cannot be put under investigation (reactivate it first)")
	if got := b.post(page, "/console/connections/cn_0000000000000000/investigation", "note", "x"); got.code != http.StatusNotFound {
		t.Errorf("investigate a missing connection = %d, want 404", got.code)
	}
}

// TestAccountFlagActions: OLD_ACCOUNT, DUPLICATE and undo through
// FlagAccount, with the API's refusals.
func TestAccountFlagActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	cn := e.conn("user_good")
	e.record(cn.ID, connected("1001", "1002"))
	accts := e.te.Get(t, cn.ID).Accounts
	b := e.browser()
	page := "/console/connections/" + cn.ID
	flag := page + "/account-flag"

	before := e.snapshot(cn.ID)
	for _, tc := range []struct {
		fields []string
		says   string
	}{
		{[]string{"flag", "OLD_ACCOUNT"}, "Choose an account to flag."},
		{[]string{"account", accts[0].ID, "flag", "MAYBE"}, `not "MAYBE"`},
		{[]string{"account", accts[0].ID, "flag", "ONBOARDED"}, "An account flag is OLD_ACCOUNT or DUPLICATE"},
		{[]string{"account", accts[0].ID, "flag", "DUPLICATE"}, "status DUPLICATE needs duplicateOf"},
		{[]string{"account", accts[0].ID, "flag", "DUPLICATE", "duplicateOf", accts[0].ID}, "cannot duplicate itself"},
		{[]string{"account", accts[0].ID, "flag", "DUPLICATE", "duplicateOf", "ac_nope"}, "is not an account of company"},
		{[]string{"account", accts[0].ID, "flag", "OLD_ACCOUNT", "duplicateOf", accts[1].ID}, "duplicateOf goes only with status DUPLICATE"},
		{[]string{"account", accts[0].ID, "flag", "UNDO"}, "nothing to undo"},
		{[]string{"account", "ac_nope", "flag", "OLD_ACCOUNT"}, "is not an account of connection"},
	} {
		got := b.post(page, flag, tc.fields...)
		if got.code != http.StatusBadRequest {
			t.Errorf("flag %v = %d, want 400", tc.fields, got.code)
		}
		got.has(t, fmt.Sprint(tc.fields), "Not done.", tc.says, "Electricity user_good")
	}
	if after := e.snapshot(cn.ID); after != before {
		t.Errorf("refused flags changed the store:\nbefore %s\nafter  %s", before, after)
	}

	p := b.redirected(t, b.post(page, flag, "account", accts[0].ID, "flag", "old_account"), page)
	p.has(t, "old", "Account 1001 flagged Old Account: it is no longer pulled.", "Undo flag")
	p = b.redirected(t, b.post(page, flag, "account", accts[1].ID, "flag", "DUPLICATE", "duplicateOf", accts[0].ID), page)
	p.has(t, "duplicate", "Account 1002 flagged Duplicate of "+accts[0].ID)
	got := e.te.Get(t, cn.ID).Accounts
	if got[0].Status != checks.AcctOldAccount || got[1].Status != checks.AcctDuplicate || got[1].DuplicateOf != accts[0].ID {
		t.Errorf("accounts after the flags: %+v", got)
	}
	if h := e.lastEntry(cn.ID); h.Cause != "console:account-flag" || h.Actor != user || h.AccountID != accts[1].ID || h.To != "DUPLICATE" {
		t.Errorf("history: %+v, want console:account-flag by %s", h, user)
	}
	p = b.redirected(t, b.post(page, flag, "account", accts[0].ID, "flag", "UNDO"), page)
	p.has(t, "undo", "Account 1001's flag undone: it is "+mustInfo(accts[0].Status).DisplayName+" again.")
	if a := e.te.Get(t, cn.ID).Accounts[0]; a.Status != accts[0].Status {
		t.Errorf("after undo: %s, want %s back", a.Status, accts[0].Status)
	}
	if h := e.lastEntry(cn.ID); h.Cause != "console:account-flag" || h.Actor != user || h.From != "OLD_ACCOUNT" {
		t.Errorf("history of the undo: %+v", h)
	}
}

func mustInfo(s checks.AccountStatus) checks.Info { in, _ := s.Info(); return in }

// TestCompanySiteFilter: the company page lists a site's connections as
// GET /v1/connection/company/{id}?siteId= does, with the status filter.
func TestCompanySiteFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	mk := func(name string, sites ...string) store.Connection {
		return e.te.Connection(t, store.NewConnection{CompanyID: e.co.ID, Datasource: "sandbox", Name: name, SiteIDs: sites,
			Credentials: checks.Credentials{Username: "user_good", Password: "pw"}})
	}
	north, both, south := mk("North meter", "site-north"), mk("Shared meter", "site-north", "site-south"), mk("South meter", "site-south")
	e.record(both.ID, connected("1"))
	b := e.browser()
	base := "/console/companies/" + e.co.ID
	lists := func(p page, want ...store.Connection) {
		t.Helper()
		if n := strings.Count(p.body, `href="/console/connections/cn_`); n != len(want) {
			t.Errorf("the page lists %d connections, want %d", n, len(want))
		}
		for _, c := range want {
			if !strings.Contains(p.body, c.ID) {
				t.Errorf("the page does not list %s", c.Name)
			}
		}
	}
	p := b.get(base + "?siteId=site-north")
	lists(p, north, both)
	p.has(t, "site", "Showing the connections assigned site site-north", "All sites")
	lists(b.get(base+"?siteId=site-south&status=CONNECTED"), both)
	lists(b.get(base), north, both, south)
	none := b.get(base + "?siteId=site-west")
	lists(none)
	none.has(t, "no site", "No connection is assigned site site-west")
	bad := b.get(base + "?siteId=%1b%5B31m")
	if bad.code != http.StatusBadRequest {
		t.Errorf("a site ID with an escape = %d, want 400", bad.code)
	}
	bad.has(t, "bad site", "Not a site ID")
}

package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// snapshot is what an action may change: the connections' and company's
// state and history, and the tasks enqueued.
func (e *env) snapshot(ids ...string) string {
	e.t.Helper()
	var b strings.Builder
	co, err := e.te.Store.GetCompany(context.Background(), e.co.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	fmt.Fprintf(&b, "%+v tasks=%d\n", co, len(e.enq.Enqueued()))
	for _, id := range ids {
		fmt.Fprintf(&b, "%+v\n%+v\n", e.te.Get(e.t, id), e.history(id))
	}
	return b.String()
}

// TestActionsRefused: an action needs a writable console, the same origin
// and the session's token; a refused one changes nothing.
func TestActionsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	cn := e.conn("user_good")
	e.record(cn.ID, connected("1001"))
	acct := e.te.Get(t, cn.ID).Accounts[0].ID
	connPage, coPage := "/console/connections/"+cn.ID, "/console/companies/"+e.co.ID+"/deactivate"
	actions := []struct{ from, path string }{
		{connPage, connPage + "/deactivate"},
		{connPage, connPage + "/refresh"},
		{connPage, connPage + "/link"},
		{connPage, connPage + "/accounts"},
		{connPage, connPage + "/investigation"},
		{connPage, connPage + "/investigation/clear"},
		{connPage, connPage + "/account-flag"},
		{coPage, "/console/companies/" + e.co.ID + "/deactivate"},
	}
	ro := newEnv(t, options{readOnly: true})
	roConn := ro.conn("user_good")
	before, roBefore := e.snapshot(cn.ID), ro.snapshot(roConn.ID)
	for _, a := range actions {
		fields := url.Values{"account": {acct}, "decision": {"ENABLED"}, "note": {"n"}, "flag": {"OLD_ACCOUNT"}}
		b := e.browser()
		token := b.csrf(a.from)
		other := e.browser().csrf(a.from) // another session's token
		cases := []struct {
			name string
			form url.Values
			hdr  []string
			via  *browser
		}{
			{"no token", url.Values{}, nil, b},
			{"a wrong token", url.Values{"csrf": {"AAAA"}}, nil, b},
			{"another session's token", url.Values{"csrf": {other}}, nil, b},
			{"a token without its cookie", url.Values{"csrf": {token}}, nil, e.browser()},
			{"another origin", url.Values{"csrf": {token}}, []string{"Origin", "https://evil.example"}, b},
			{"a cross-site fetch", url.Values{"csrf": {token}}, []string{"Sec-Fetch-Site", "cross-site"}, b},
		}
		for _, tc := range cases {
			for k, v := range fields {
				tc.form[k] = v
			}
			got := tc.via.do("POST", a.path, tc.form, tc.hdr...)
			if got.code != http.StatusForbidden {
				t.Errorf("POST %s with %s = %d, want 403", a.path, tc.name, got.code)
			}
			got.has(t, a.path+" "+tc.name, "This form has expired", "The change was not made")
		}
		// A read-only console refuses first, whatever the token.
		rp := strings.ReplaceAll(strings.ReplaceAll(a.path, cn.ID, roConn.ID), e.co.ID, ro.co.ID)
		got := ro.browser().do("POST", rp, url.Values{"csrf": {"x"}, "account": {acct}, "decision": {"ENABLED"}})
		if got.code != http.StatusMethodNotAllowed || got.hdr.Get("Allow") != "GET, HEAD" {
			t.Errorf("read-only POST %s = %d Allow %q, want 405 GET, HEAD", rp, got.code, got.hdr.Get("Allow"))
		}
		got.has(t, "read-only "+rp, "The console is read-only", "dashboard.writable")
	}
	if after := e.snapshot(cn.ID); after != before {
		t.Errorf("refused actions changed the store:\nbefore %s\nafter  %s", before, after)
	}
	if after := ro.snapshot(roConn.ID); after != roBefore {
		t.Errorf("a read-only console changed the store:\nbefore %s\nafter  %s", roBefore, after)
	}
	// A read-only console shows no action form, and says why.
	p := ro.browser().get("/console/connections/" + roConn.ID)
	if strings.Contains(p.body, `method="post"`) {
		t.Error("a read-only connection page has forms")
	}
	p.has(t, "read-only page", "read-only", "dashboard.writable: true")
	if c := ro.browser().get("/console/companies/" + ro.co.ID); strings.Contains(c.body, "Deactivate company") {
		t.Error("a read-only company page offers deactivation")
	}
}

// lastEntry is the connection's newest history entry.
func (e *env) lastEntry(id string) store.HistoryEntry {
	e.t.Helper()
	h := e.history(id)
	if len(h) == 0 {
		e.t.Fatalf("%s has no history", id)
	}
	return h[0]
}

// redirected checks an action's 303 to path and returns the page it
// leads to.
func (b *browser) redirected(t *testing.T, got page, path string) page {
	t.Helper()
	if got.code != http.StatusSeeOther || got.hdr.Get("Location") != path {
		t.Fatalf("action = %d Location %q, want 303 to %s\n%.2000s", got.code, got.hdr.Get("Location"), path, got.text())
	}
	return b.get(path)
}

func TestConnectionActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	cn := e.conn("user_good")
	e.record(cn.ID, connected("1001", "1002"))
	b := e.browser()
	page := "/console/connections/" + cn.ID

	t.Run("deactivate", func(t *testing.T) {
		p := b.redirected(t, b.post(page, page+"/deactivate"), page)
		p.has(t, "after deactivate", "Connection deactivated: it is Deactivated and not checked until reactivated.", "Reactivate")
		if c := e.te.Get(t, cn.ID); c.Status != checks.ConnDeactivated || c.IsActive {
			t.Errorf("after deactivate: %s active=%v", c.Status, c.IsActive)
		}
		if h := e.lastEntry(cn.ID); h.Cause != "console:deactivate" || h.Actor != user || h.To != "DEACTIVATED" {
			t.Errorf("history: %+v, want console:deactivate by %s", h, user)
		}
		if again := b.get(page); strings.Contains(again.text(), "Connection deactivated:") {
			t.Error("the notice shows twice")
		}
		p = b.redirected(t, b.post(page, page+"/deactivate"), page)
		p.has(t, "deactivate twice", "was deactivated already: nothing changed")
	})

	t.Run("reactivate enqueues the check", func(t *testing.T) {
		p := b.redirected(t, b.post(page, page+"/reactivate"), page)
		p.has(t, "after reactivate", "Connection reactivated: it is Connected.", "A check is enqueued (task check:"+cn.ID)
		if c := e.te.Get(t, cn.ID); c.Status != checks.ConnConnected || !c.IsActive {
			t.Errorf("after reactivate: %s active=%v", c.Status, c.IsActive)
		}
		if h := e.lastEntry(cn.ID); h.Cause != "console:reactivate" || h.Actor != user {
			t.Errorf("history: %+v", h)
		}
		if n := len(e.enq.Enqueued()); n != 1 {
			t.Fatalf("%d tasks enqueued, want the reactivation's check", n)
		}
		task := e.enq.Enqueued()[0]
		if p, err := tasks.ParseCheckPayload(task.Payload()); err != nil || p.ConnectionID != cn.ID || p.Reason != tasks.ReasonReactivated {
			t.Errorf("enqueued %s %+v %v", task.Type(), p, err)
		}
	})

	t.Run("refresh", func(t *testing.T) {
		if err := e.te.Store.ClearQueued(context.Background(), cn.ID); err != nil { // the reactivation's check ran
			t.Fatal(err)
		}
		p := b.redirected(t, b.post(page, page+"/refresh"), page)
		p.has(t, "after refresh", "Check enqueued on the critical queue (task check:"+cn.ID)
		p = b.redirected(t, b.post(page, page+"/refresh"), page)
		p.has(t, "second refresh", "Nothing enqueued: a check is already queued or running.")
		if n := len(e.enq.Enqueued()); n != 2 {
			t.Errorf("%d tasks, want 2", n)
		}
	})

	t.Run("link", func(t *testing.T) {
		got := b.post(page, page+"/link")
		if got.code != http.StatusOK || got.hdr.Get("Cache-Control") != "no-store" {
			t.Fatalf("link: %d %q", got.code, got.hdr.Get("Cache-Control"))
		}
		m := regexp.MustCompile(`value="https://checkd\.example\.com/link#token=([^"]+)"`).FindStringSubmatch(got.body)
		if m == nil {
			t.Fatalf("no link on the page:\n%.2000s", got.text())
		}
		claims, err := e.links.Verify(m[1])
		if err != nil || claims.Subject != cn.ID {
			t.Errorf("the link's token: %+v %v; want one for %s", claims, err, cn.ID)
		}
		got.has(t, "link", "Credential-update link", "Copy link", "shown only now")
		if again := b.get(page); strings.Contains(again.body, m[1]) {
			t.Error("the link shows again on the next visit")
		}
	})

	t.Run("accounts", func(t *testing.T) {
		accts := e.te.Get(t, cn.ID).Accounts
		p := b.redirected(t, b.post(page, page+"/accounts", "account", accts[0].ID, "decision", "ENABLED"), page)
		p.has(t, "confirm", "Account 1001 confirmed: it is tracked (Onboarded).")
		p = b.redirected(t, b.post(page, page+"/accounts", "account", accts[1].ID, "decision", "disabled"), page)
		p.has(t, "reject", "Account 1002 rejected: it is not tracked (Customer Not Tracked).")
		got := e.te.Get(t, cn.ID).Accounts
		if got[0].Status != checks.AcctOnboarded || got[0].TrackingStatus != checks.TrackingEnabled ||
			got[1].Status != checks.AcctCustomerNotTracked || got[1].TrackingStatus != checks.TrackingDisabled {
			t.Errorf("accounts after the decisions: %+v", got)
		}
		if h := e.lastEntry(cn.ID); h.Cause != "console:confirm-accounts" || h.Actor != user || h.AccountID != accts[1].ID {
			t.Errorf("history: %+v", h)
		}
		before := e.snapshot(cn.ID)
		for _, tc := range []struct {
			fields []string
			code   int
			says   string
		}{
			{[]string{"decision", "ENABLED"}, http.StatusBadRequest, "Choose an account to confirm or reject."},
			{[]string{"account", accts[0].ID, "decision", "MAYBE"}, http.StatusBadRequest, `not "MAYBE"`},
			{[]string{"account", accts[0].ID, "decision", "UNSET"}, http.StatusBadRequest, "must be ENABLED (confirm) or DISABLED (reject)"},
			{[]string{"account", accts[0].ID}, http.StatusBadRequest, "must be ENABLED"},
			{[]string{"account", "ac_nope", "decision", "ENABLED"}, http.StatusBadRequest, "no such account on this connection"},
		} {
			got := b.post(page, page+"/accounts", tc.fields...)
			if got.code != tc.code {
				t.Errorf("accounts %v = %d, want %d", tc.fields, got.code, tc.code)
			}
			got.has(t, fmt.Sprint(tc.fields), "Not done.", tc.says, "Electricity user_good")
		}
		if after := e.snapshot(cn.ID); after != before {
			t.Errorf("refused decisions changed the store")
		}
	})

	t.Run("as the API key's user", func(t *testing.T) {
		k := e.browser()
		k.auth = func(r *http.Request) { r.Header.Set("X-API-Key", apiKey) }
		k.redirected(t, k.post(page, page+"/deactivate"), page)
		// The key's actor as the REST API records it (docs/api.md: a
		// configured key is bootstrap:<8 hex digits of its SHA-256>).
		sum := sha256.Sum256([]byte(apiKey))
		want := api.BootstrapActor + hex.EncodeToString(sum[:4])
		if h := e.lastEntry(cn.ID); h.Cause != "console:deactivate" || h.Actor != want {
			t.Errorf("history: %+v, want the actor %q", h, want)
		}
	})

	t.Run("gone", func(t *testing.T) {
		missing := "/console/connections/cn_0000000000000000"
		for _, a := range []string{"/deactivate", "/reactivate", "/refresh", "/link"} {
			got := b.post(page, missing+a)
			if got.code != http.StatusNotFound {
				t.Errorf("POST %s on a missing connection = %d, want 404", a, got.code)
			}
		}
		if got := b.post(page, missing+"/accounts", "account", "ac_x", "decision", "ENABLED"); got.code != http.StatusNotFound {
			t.Errorf("accounts of a missing connection = %d", got.code)
		}
		if got := b.post(page, page+"/explode"); got.code != http.StatusNotFound && got.code != http.StatusMethodNotAllowed {
			t.Errorf("an unknown action = %d", got.code)
		}
	})
}

func TestRefreshRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	blocked := e.conn("user_bad_password")
	e.record(blocked.ID, checks.Result{Status: checks.ConnPasswordIncorrect, Detail: "rejected"})
	b := e.browser()
	page := "/console/connections/" + blocked.ID
	got := b.post(page, page+"/refresh")
	if got.code != http.StatusConflict {
		t.Fatalf("refresh of a blocked connection = %d, want 409 (as the API)", got.code)
	}
	got.has(t, "409", "Not done.", "cannot be refreshed: credentials must be updated before the next check", "Password Incorrect")
	if len(e.enq.Enqueued()) != 0 {
		t.Error("a refused refresh enqueued a task")
	}

	ok := e.conn("user_good")
	e.enq.Reset(errors.New("redis: connection refused"))
	page = "/console/connections/" + ok.ID
	got = b.post(page, page+"/refresh")
	if got.code != http.StatusServiceUnavailable {
		t.Errorf("refresh with the queue down = %d, want 503", got.code)
	}
	got.has(t, "queue down", "the task queue is unavailable")
	if q, err := e.te.Store.MarkQueued(context.Background(), ok.ID); err != nil || !q {
		t.Errorf("a failed enqueue left its queued mark (MarkQueued = %v %v)", q, err)
	}

	nq := newEnv(t, options{noQueue: true})
	c := nq.conn("user_good")
	page = "/console/connections/" + c.ID
	nb := nq.browser()
	if p := nb.get(page); strings.Contains(p.body, `id="refresh"`) {
		t.Error("a console without a queue offers Check now")
	}
	got = nb.post(page, page+"/refresh")
	if got.code != http.StatusServiceUnavailable {
		t.Errorf("refresh without a queue = %d, want 503", got.code)
	}
	got.has(t, "no queue", "On-demand checks are not available")
	// Reactivation without a queue: due at once, for the scheduler.
	p := nb.redirected(t, nb.post(page, page+"/deactivate"), page)
	p = nb.redirected(t, nb.post(page, page+"/reactivate"), page)
	p.has(t, "reactivate without a queue", "the scheduler checks it on its next tick")
}

func TestCompanyActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	cs := e.te.Connections(t, e.co.ID, 3)
	e.record(cs[0].ID, connected("1"))
	b := e.browser()
	co := "/console/companies/" + e.co.ID

	confirm := b.get(co + "/deactivate")
	confirm.has(t, "confirm", "Deactivate Acme Manufacturing?", "This changes 3 of the company's 3 connections to Company Inactive", "Deactivate 3 connections", "Cancel")
	p := b.redirected(t, b.post(co+"/deactivate", co+"/deactivate"), co)
	p.has(t, "after", "Acme Manufacturing deactivated: 3 connections are now Company Inactive", "Inactive", "Reactivate company")
	for _, c := range cs {
		if got := e.te.Get(t, c.ID); got.Status != checks.ConnCompanyInactive {
			t.Errorf("%s: %s after the company's deactivation", c.ID, got.Status)
		}
	}
	if h := e.lastEntry(cs[0].ID); h.Cause != "console:company-deactivate" || h.Actor != user {
		t.Errorf("history: %+v", h)
	}
	if co, _ := e.te.Store.GetCompany(context.Background(), e.co.ID); co.IsActive {
		t.Error("the company is still active")
	}

	confirm = b.get(co + "/reactivate")
	confirm.has(t, "confirm reactivate", "Reactivate Acme Manufacturing?", "This gives 3 of the company's 3 connections back")
	p = b.redirected(t, b.post(co+"/reactivate", co+"/reactivate"), co)
	p.has(t, "after reactivate", "Acme Manufacturing reactivated: 3 connections got their statuses back")
	if got := e.te.Get(t, cs[0].ID); got.Status != checks.ConnConnected {
		t.Errorf("after reactivation: %s, want CONNECTED back", got.Status)
	}
	if h := e.lastEntry(cs[0].ID); h.Cause != "console:company-reactivate" || h.Actor != user {
		t.Errorf("history: %+v", h)
	}
	again := b.get(co + "/reactivate")
	again.has(t, "reactivate an active company", "The company is active already")

	for _, path := range []string{co + "/explode", "/console/companies/co_0000000000000000/deactivate"} {
		if got := b.get(path); got.code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, got.code)
		}
		if got := b.post(co+"/deactivate", path); got.code != http.StatusNotFound {
			t.Errorf("POST %s = %d, want 404", path, got.code)
		}
	}
}

// TestCompanyConversionOutlastsRequest: a company's conversion still
// running at the request's deadline goes on in the background (the API
// server's jobs), and the page says so at once, as PATCH /v1/company's 202.
func TestCompanyConversionOutlastsRequest(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	finished := make(chan struct{})
	e := newEnv(t, options{background: func(endRequest context.CancelFunc, fn func(context.Context)) {
		endRequest() // the request's deadline passes while the conversion runs
		go func() {
			defer close(finished)
			<-release
			fn(context.Background())
		}()
	}})
	cs := e.te.Connections(t, e.co.ID, 3)
	b := e.browser()
	co := "/console/companies/" + e.co.ID
	p := b.redirected(t, b.post(co+"/deactivate", co+"/deactivate"), co)
	p.has(t, "answered before the conversion", "Acme Manufacturing is being deactivated: its connections are converted in the background")
	if got := e.te.Get(t, cs[0].ID); got.Status == checks.ConnCompanyInactive {
		t.Fatal("converted before the job ran")
	}
	close(release)
	<-finished
	for _, c := range cs {
		if got := e.te.Get(t, c.ID); got.Status != checks.ConnCompanyInactive {
			t.Errorf("%s: %s after the background conversion", c.ID, got.Status)
		}
	}
	if h := e.lastEntry(cs[0].ID); h.Cause != "console:company-deactivate" || h.Actor != user {
		t.Errorf("history of the background conversion: %+v, want console:company-deactivate by %s", h, user)
	}
}

package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// The operations routes (issue 20) on miniredis: investigation flags,
// account flags, site assignments.

func TestInvestigationRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnWebsiteDown, Detail: "503"})
	path := "/v1/connection/" + c.ID + "/investigation"

	var got api.Connection
	e.send(call{method: http.MethodPost, path: path, body: `{"note":"login page changed"}`}, http.StatusOK, &got)
	if got.Status != checks.ConnUnderInvestigation || got.StatusErrorDetail != "login page changed" ||
		got.StatusReason != "MANUAL_REVIEW" || got.Investigation == nil || got.Investigation.By != store.InvestigationOperator ||
		got.LastCheckStatus != checks.ConnWebsiteDown {
		t.Fatalf("flagged: %+v", got)
	}
	e.send(call{method: http.MethodPost, path: path, body: `{"note":"bad\u0007"}`}, http.StatusBadRequest, nil)
	e.send(call{method: http.MethodPost, path: path, body: `{"nope":1}`}, http.StatusBadRequest, nil)
	e.send(call{method: http.MethodPost, path: "/v1/connection/cn_0000000000000000/investigation", body: `{}`}, http.StatusNotFound, nil)

	var ch api.ConnectionChange
	e.send(call{method: http.MethodDelete, path: path}, http.StatusOK, &ch)
	if ch.Status != checks.ConnWebsiteDown || ch.Investigation != nil || !ch.CheckEnqueued {
		t.Fatalf("cleared: %+v", ch)
	}
	if enq := e.enq.Enqueued(); len(enq) != 1 || enq[0].Type() != tasks.TypeCheckConnection {
		t.Fatalf("a clear enqueues one check, got %d", len(enq))
	}
	e.send(call{method: http.MethodDelete, path: path}, http.StatusConflict, nil)
	w := e.do(call{method: http.MethodPut, path: path})
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "DELETE, POST" {
		t.Fatalf("PUT: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}

	// An automatic escalation says CONTINUED_FAILURES.
	d := e.connection(co.ID, "user_other")
	for range 20 {
		e.clk.Advance(24 * 60 * 60 * 1e9)
		recordCheck(t, e.st, e.clk, d.ID, checks.Result{Status: checks.ConnOtherError})
	}
	e.send(call{method: http.MethodGet, path: "/v1/connection/" + d.ID + "/details"}, http.StatusOK, &got)
	if got.Status != checks.ConnUnderInvestigation || got.StatusReason != checks.ReasonContinuedFailures {
		t.Fatalf("escalated: %s reason %s", got.Status, got.StatusReason)
	}
}

func TestAccountFlagRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnConnected,
		Accounts: []checks.AccountResult{{Number: "1"}, {Number: "2"}}})
	cur, err := e.st.GetConnection(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	a1, a2 := cur.Accounts[0].ID, cur.Accounts[1].ID
	path := "/v1/connection/" + c.ID + "/status"
	var got api.Connection
	e.send(call{method: http.MethodPatch, path: path, body: fmt.Sprintf(`{"accountId":%q,"status":"old_account"}`, a1)}, http.StatusOK, &got)
	if got.Accounts[0].Status != checks.AcctOldAccount || got.Accounts[0].StatusCategory != checks.CategoryTerminal {
		t.Fatalf("OLD_ACCOUNT: %+v", got.Accounts[0])
	}
	e.send(call{method: http.MethodPatch, path: path, body: fmt.Sprintf(`{"accountId":%q,"status":"DUPLICATE","duplicateOf":%q}`, a2, a1)}, http.StatusOK, &got)
	if got.Accounts[1].Status != checks.AcctDuplicate || got.Accounts[1].DuplicateOf != a1 {
		t.Fatalf("DUPLICATE: %+v", got.Accounts[1])
	}
	e.send(call{method: http.MethodPatch, path: path, body: fmt.Sprintf(`{"accountId":%q,"status":null}`, a1)}, http.StatusOK, &got)
	if got.Accounts[0].Status != checks.AcctDetected {
		t.Fatalf("undo: %+v", got.Accounts[0])
	}
	for _, body := range []string{
		fmt.Sprintf(`{"accountId":%q}`, a1),                           // no status
		`{"status":"OLD_ACCOUNT"}`,                                    // no account
		fmt.Sprintf(`{"accountId":%q,"status":"NOPE"}`, a1),           // unknown status
		fmt.Sprintf(`{"accountId":%q,"status":"DUPLICATE"}`, a1),      // no original
		fmt.Sprintf(`{"accountId":%q,"status":null}`, a1),             // nothing to undo
		fmt.Sprintf(`{"accountId":%q,"status":"PULL_COMPLETED"}`, a1), // not a flag
		fmt.Sprintf(`{"accountId":%q,"status":"OLD_ACCOUNT","accounts":[{"accountId":%q,"trackingStatus":"ENABLED"}]}`, a1, a1),
	} {
		e.send(call{method: http.MethodPatch, path: path, body: body}, http.StatusBadRequest, nil)
	}
	// The tracking decisions still work on the same route.
	e.send(call{method: http.MethodPatch, path: path, body: fmt.Sprintf(`{"accounts":[{"accountId":%q,"trackingStatus":"ENABLED"}]}`, a1)}, http.StatusOK, &got)
	if got.Accounts[0].Status != checks.AcctOnboarded {
		t.Fatalf("confirm after undo: %+v", got.Accounts[0])
	}
}

func TestSiteIDsRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	create := func(body string, want int) api.Connection {
		var c api.Connection
		e.send(call{method: http.MethodPost, path: "/v1/connection/company/" + co.ID, body: body}, want, &c)
		return c
	}
	a := create(`{"datasource":"sandbox","credentials":{"username":"a","password":"p"},"siteIds":["hq","plant-2"]}`, http.StatusCreated)
	b := create(`{"datasource":"sandbox","credentials":{"username":"b","password":"p"}}`, http.StatusCreated)
	if !slices.Equal(a.SiteIDs, []string{"hq", "plant-2"}) || b.SiteIDs == nil {
		t.Fatalf("created: %v %v", a.SiteIDs, b.SiteIDs)
	}
	e.send(call{method: http.MethodPost, path: "/v1/connection/company/" + co.ID,
		body: `{"datasource":"sandbox","credentials":{"username":"c","password":"p"},"siteIds":["a\nb"]}`}, http.StatusBadRequest, nil)
	var ch api.ConnectionChange
	e.send(call{method: http.MethodPatch, path: "/v1/connection/" + b.ID + "/details", body: `{"siteIds":["plant-2"]}`}, http.StatusOK, &ch)
	if !slices.Equal(ch.SiteIDs, []string{"plant-2"}) {
		t.Fatalf("patched: %v", ch.SiteIDs)
	}
	var page api.ConnectionPage
	e.send(call{method: http.MethodGet, path: "/v1/connection/company/" + co.ID + "?siteId=plant-2&limit=1"}, http.StatusOK, &page)
	ids := []string{}
	for {
		for _, c := range page.Connections {
			ids = append(ids, c.ID)
		}
		if page.NextCursor == "" {
			break
		}
		e.send(call{method: http.MethodGet, path: "/v1/connection/company/" + co.ID + "?siteId=plant-2&limit=1&cursor=" + page.NextCursor}, http.StatusOK, &page)
	}
	if len(ids) != 2 {
		t.Fatalf("siteId=plant-2: %v, want both", ids)
	}
	e.send(call{method: http.MethodGet, path: "/v1/connection/company/" + co.ID + "?siteId=hq"}, http.StatusOK, &page)
	if len(page.Connections) != 1 || page.Connections[0].ID != a.ID {
		t.Fatalf("siteId=hq: %+v", page.Connections)
	}
	e.send(call{method: http.MethodPatch, path: "/v1/connection/" + a.ID + "/details", body: `{"siteIds":[]}`}, http.StatusOK, &ch)
	if ch.SiteIDs == nil || len(ch.SiteIDs) != 0 {
		t.Fatalf("cleared: %v", ch.SiteIDs)
	}
}

func TestDatasourcesRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rules := store.HealthRules{Window: 15 * time.Minute, MinChecks: 20, DownRatio: 0.8, DegradedRatio: 0.3, ProbesPerMinute: 3}
	for i := range 30 {
		st := checks.ConnWebsiteDown
		if i < 4 {
			st = checks.ConnConnected
		}
		if _, _, err := e.st.RecordOutcome(t.Context(), "sandbox", "cn_test", rules, st, time.Duration(i)*time.Second, false, e.clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	var got api.DatasourceList
	e.send(call{method: http.MethodGet, path: "/v1/datasources"}, http.StatusOK, &got)
	if len(got.Datasources) != 2 || got.Datasources[1].Health != store.HealthHealthy || got.Datasources[1].Checks != 0 {
		t.Fatalf("datasources (each registered one, checked or not): %+v", got.Datasources)
	}
	d := got.Datasources[0]
	// The window goes on counting while the breaker is open (it opened at the 24th).
	if d.Name != "sandbox" || d.Health != store.HealthDown || d.Breaker != "open" || d.Checks != 30 || d.SiteFailures != 26 ||
		d.Successes != 4 || d.SuccessRate == nil || d.BreakerSince == nil || d.DurationP50Ms != 14000 || d.DurationP95Ms != 28000 {
		t.Fatalf("sandbox: %+v", d)
	}
	e.send(call{method: http.MethodGet, path: "/v1/datasources", key: "-"}, http.StatusUnauthorized, nil)
}

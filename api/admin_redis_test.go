package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/openapitest"
	"github.com/checkd/checkd/store"
)

// The admin and operator routes end to end on a real redis-server, with the
// real asynq client and inspector: every route's happy path and error paths.

// send serves c, fails unless it answers want, and decodes the answer into
// out (when not nil).
func (e *env) send(c call, want int, out any) *httptest.ResponseRecorder {
	e.t.Helper()
	w := e.do(c)
	if w.Code != want {
		e.t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, w.Code, w.Body, want)
	}
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", c.method, c.path, w.Body, err)
		}
	}
	e.assertNoSecret(w.Body.String())
	return w
}

// queued lists a queue's tasks in every state but completed, by the real
// inspector; a queue asynq has not created yet holds none.
func (e *env) queued(queue string) []*asynq.TaskInfo {
	e.t.Helper()
	var out []*asynq.TaskInfo
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
		e.insp.ListPendingTasks, e.insp.ListActiveTasks, e.insp.ListScheduledTasks, e.insp.ListRetryTasks, e.insp.ListArchivedTasks,
	} {
		ts, err := list(queue)
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			e.t.Fatalf("list %s tasks: %v", queue, err)
		}
		out = append(out, ts...)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// payload decodes a check task's payload.
func payload(tb testing.TB, ti *asynq.TaskInfo) tasks.CheckPayload {
	tb.Helper()
	p, err := tasks.ParseCheckPayload(ti.Payload)
	if err != nil || ti.Type != tasks.TypeCheckConnection {
		tb.Fatalf("task %s: type %s, %v", ti.ID, ti.Type, err)
	}
	return p
}

// handleQueued runs a queued check task's handling path as the worker does
// (store.LoadCheck, and on a skip nothing but store.ClearQueued, as the
// store's contract asks), then removes the task as asynq does once it is
// handled. It returns why the check was skipped ("" if it would run).
func (e *env) handleQueued(queue string, ti *asynq.TaskInfo) checks.Skip {
	e.t.Helper()
	ctx := context.Background()
	p := payload(e.t, ti)
	tg, err := e.st.LoadCheck(ctx, p.ConnectionID)
	if err != nil {
		e.t.Fatal(err)
	}
	if tg.Skip != checks.SkipNone {
		if err := e.st.ClearQueued(ctx, p.ConnectionID); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := e.insp.DeleteTask(queue, ti.ID); err != nil {
		e.t.Fatal(err)
	}
	return tg.Skip
}

// mustConnection reads a connection from the store.
func (e *env) mustConnection(id string) store.Connection {
	e.t.Helper()
	c, err := e.st.GetConnection(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func TestRealRedisDetails(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t)
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	path := "/v1/connection/" + c.ID + "/details"

	var got api.ConnectionChange
	e.send(call{method: "PATCH", path: path, body: `{"name":"  Electric  ","startDate":"2024-01-31","occupancyMultiplier":1.5}`}, 200, &got)
	if got.Name != "Electric" || got.StartDate != "2024-01-31" || got.OccupancyMultiplier != 1.5 || !got.IsActive ||
		got.Status != checks.ConnPending || got.StatusDisplayName != "Pending" || got.CheckEnqueued || got.CheckNote != "" {
		t.Fatalf("patched: %+v", got)
	}
	var d api.Connection
	e.send(call{method: "GET", path: path}, 200, &d)
	if d.Name != "Electric" || d.StartDate != "2024-01-31" || d.OccupancyMultiplier != 1.5 {
		t.Fatalf("details after the patch: %+v", d.Connection)
	}
	// The answer has the shape of GET details, plus checkEnqueued.
	raw := decodeAs[map[string]any](t, e.do(call{method: "PATCH", path: path, body: `{"startDate":""}`}))
	for _, k := range []string{"id", "status", "statusFirstSeenTime", "statusDisplayName", "canRefresh", "accounts", "checkEnqueued"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("answer lacks %q: %v", k, raw)
		}
	}
	if _, ok := raw["startDate"]; ok {
		t.Errorf(`startDate "" must clear it: %v`, raw)
	}

	e.runErrorCases(t, []errorCase{
		{"bad date", call{method: "PATCH", path: path, body: `{"startDate":"2024-13-01"}`}, 400, api.CodeInvalidRequest, []string{"startDate", "2024-13-01"}},
		{"zero multiplier", call{method: "PATCH", path: path, body: `{"occupancyMultiplier":0}`}, 400, api.CodeInvalidRequest, []string{"occupancyMultiplier"}},
		{"huge multiplier", call{method: "PATCH", path: path, body: `{"occupancyMultiplier":1e9}`}, 400, api.CodeInvalidRequest, []string{"occupancyMultiplier"}},
		{"long name", call{method: "PATCH", path: path, body: `{"name":"` + strings.Repeat("n", store.MaxNameLen+1) + `"}`}, 400, api.CodeInvalidRequest, []string{"name", "200"}},
		{"escape sequence in the name", call{method: "PATCH", path: path, body: `{"name":"x\u001b[2J"}`}, 400, api.CodeInvalidRequest, []string{"control characters"}},
		{"valid part of an invalid patch", call{method: "PATCH", path: path, body: `{"isActive":false,"startDate":"yesterday"}`}, 400, api.CodeInvalidRequest, []string{"startDate"}},
		{"nothing to update", call{method: "PATCH", path: path, body: `{}`}, 400, api.CodeInvalidRequest, []string{"nothing to update", "isActive"}},
		{"only nulls", call{method: "PATCH", path: path, body: `{"isActive":null,"name":null}`}, 400, api.CodeInvalidRequest, []string{"nothing to update"}},
		{"wrong type", call{method: "PATCH", path: path, body: `{"isActive":"no"}`}, 400, api.CodeInvalidRequest, []string{`"isActive"`, "boolean"}},
		{"unknown field", call{method: "PATCH", path: path, body: `{"active":false}`}, 400, api.CodeInvalidRequest, []string{`"active"`, "isActive", "occupancyMultiplier"}},
		{"status is not a setting", call{method: "PATCH", path: path, body: `{"status":"CONNECTED"}`}, 400, api.CodeInvalidRequest, []string{`unknown field "status"`}},
		{"empty body", call{method: "PATCH", path: path}, 400, api.CodeInvalidRequest, []string{"empty"}},
		{"unknown connection", call{method: "PATCH", path: "/v1/connection/" + unknownConnection + "/details", body: `{"name":"x"}`}, 404, api.CodeNotFound, []string{unknownConnection}},
		{"malformed connection id", call{method: "PATCH", path: "/v1/connection/nope/details", body: `{"name":"x"}`}, 404, api.CodeNotFound, []string{`"nope"`}},
		{"no key", call{method: "PATCH", path: path, body: `{"name":"x"}`, key: "-"}, 401, api.CodeUnauthorized, []string{"X-API-Key"}},
	})
}

// A check queued before a deactivation is voided: its handling writes no
// status, and the reactivation enqueues exactly one critical check.
func TestRealRedisDeactivateReactivate(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t)
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "A-1"}}})
	path := "/v1/connection/" + c.ID + "/details"

	var ref api.RefreshResult
	e.send(call{method: "POST", path: "/v1/connection/" + c.ID + "/refresh"}, 202, &ref)
	queued := e.queued(tasks.QueueCritical)
	if !ref.Enqueued || len(queued) != 1 || queued[0].ID != ref.TaskID {
		t.Fatalf("refresh %+v, critical queue %v", ref, queued)
	}

	var off api.ConnectionChange
	e.send(call{method: "PATCH", path: path, body: `{"isActive":false}`}, 200, &off)
	if off.Status != checks.ConnDeactivated || off.IsActive || off.NextCheckAt != nil || off.CheckEnqueued || off.StatusDisplayName != "Deactivated" {
		t.Fatalf("deactivated: %+v", off)
	}
	before, _ := json.Marshal(e.mustConnection(c.ID))
	hist, _ := e.st.History(context.Background(), c.ID, 0)
	if skip := e.handleQueued(tasks.QueueCritical, queued[0]); skip != checks.SkipDeactivated {
		t.Fatalf("the queued check of a deactivated connection ran (skip %q)", skip)
	}
	after, _ := json.Marshal(e.mustConnection(c.ID))
	hist2, _ := e.st.History(context.Background(), c.ID, 0)
	if string(before) != string(after) || len(hist2) != len(hist) {
		t.Fatalf("the voided check wrote:\n%s\n%s", before, after)
	}

	now := e.clk.Advance(time.Minute)
	var on api.ConnectionChange
	e.send(call{method: "PATCH", path: path, body: `{"isActive":true}`}, 200, &on)
	wantID := tasks.CheckTaskID(c.ID, now)
	if on.Status != checks.ConnConnected || !on.IsActive || !on.CheckEnqueued || on.CheckTaskID != wantID || on.NextCheckAt == nil {
		t.Fatalf("reactivated: %+v (want task %s)", on, wantID)
	}
	crit := e.queued(tasks.QueueCritical)
	if len(crit) != 1 || crit[0].ID != wantID || crit[0].Queue != tasks.QueueCritical {
		t.Fatalf("critical queue after reactivation: %v", crit)
	}
	if p := payload(t, crit[0]); p.ConnectionID != c.ID || p.Reason != tasks.ReasonReactivated || p.Slot != now.UnixMilli() {
		t.Fatalf("payload %+v", p)
	}
	if strings.Contains(string(crit[0].Payload), secret) || strings.Contains(string(crit[0].Payload), "user_good") {
		t.Fatalf("the payload carries credentials: %s", crit[0].Payload)
	}
	if d := e.queued(tasks.QueueDefault); len(d) != 0 {
		t.Fatalf("default queue: %v", d)
	}
	// The due slot is served: a scheduler sweep finds nothing to enqueue,
	// and the next check is the weekly one.
	next := checks.NextSlot(c.ID, now, e.st.Interval())
	if n, err := e.st.DueBacklog(context.Background(), now); err != nil || n != 0 {
		t.Fatalf("due backlog after the enqueue: %d %v", n, err)
	}
	if d := e.mustConnection(c.ID); d.NextCheckAt == nil || !d.NextCheckAt.Equal(next) || !on.NextCheckAt.Equal(next) {
		t.Fatalf("nextCheckAt %v (answered %v), want %v", d.NextCheckAt, on.NextCheckAt, next)
	}

	// Activating an active connection changes nothing and enqueues nothing.
	var again api.ConnectionChange
	e.send(call{method: "PATCH", path: path, body: `{"isActive":true}`}, 200, &again)
	if again.CheckEnqueued || len(e.queued(tasks.QueueCritical)) != 1 {
		t.Fatalf("a second activation: %+v", again)
	}

	// A deactivation and reactivation while the first check is still queued
	// enqueue no second one: the queued check runs after the reactivation.
	e.send(call{method: "PATCH", path: path, body: `{"isActive":false}`}, 200, nil)
	e.clk.Advance(time.Minute)
	e.send(call{method: "PATCH", path: path, body: `{"isActive":true}`}, 200, &again)
	if again.CheckEnqueued || again.CheckNote != api.ReasonAlreadyQueued || len(e.queued(tasks.QueueCritical)) != 1 {
		t.Fatalf("reactivation with a check still queued: %+v, critical %v", again, e.queued(tasks.QueueCritical))
	}
	if skip := e.handleQueued(tasks.QueueCritical, e.queued(tasks.QueueCritical)[0]); skip != checks.SkipNone {
		t.Fatalf("the queued check is skipped after the reactivation: %q", skip)
	}
}

func TestRealRedisCompany(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t)
	co := e.company("Acme")
	good := e.connection(co.ID, "user_good")
	recordCheck(t, e.st, e.clk, good.ID, checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "A-1"}}})
	bad := e.connection(co.ID, "bad")
	recordCheck(t, e.st, e.clk, bad.ID, checks.Result{Status: checks.ConnPasswordIncorrect})
	other := e.connection(e.company("Other").ID, "user_good")
	path := "/v1/company/" + co.ID

	var ch store.CompanyChange
	e.send(call{method: "PATCH", path: path, body: `{"isActive":false}`}, 200, &ch)
	if ch.Company.ID != co.ID || ch.Company.IsActive || ch.Connections != 2 {
		t.Fatalf("deactivate: %+v", ch)
	}
	for _, id := range []string{good.ID, bad.ID} {
		c := e.mustConnection(id)
		if c.Status != checks.ConnCompanyInactive || c.NextCheckAt != nil {
			t.Fatalf("%s after the company's deactivation: %s next %v", id, c.Status, c.NextCheckAt)
		}
	}
	if c := e.mustConnection(good.ID); c.Accounts[0].Status != checks.AcctCompanyInactive {
		t.Fatalf("account: %+v", c.Accounts[0])
	}
	if c := e.mustConnection(other.ID); c.Status != checks.ConnPending {
		t.Fatalf("another company's connection moved: %s", c.Status)
	}
	raw := decodeAs[map[string]any](t, e.do(call{method: "GET", path: path}))
	if raw["isActive"] != false {
		t.Fatalf("company after deactivation: %v", raw)
	}

	now := e.clk.Advance(time.Hour)
	e.send(call{method: "PATCH", path: path, body: `{"isActive":true}`}, 200, &ch)
	if !ch.Company.IsActive || ch.Connections != 2 {
		t.Fatalf("reactivate: %+v", ch)
	}
	g, b := e.mustConnection(good.ID), e.mustConnection(bad.ID)
	// Due now; or at its weekly slot when that fell in the hour since
	// creation (no sweep ran: that slot is still to enqueue).
	due := now
	if w := checks.NextSlot(good.ID, testNow, e.st.Interval()); w.Before(due) {
		due = w
	}
	if g.Status != checks.ConnConnected || g.NextCheckAt == nil || !g.NextCheckAt.Equal(due) || g.Accounts[0].Status == checks.AcctCompanyInactive {
		t.Fatalf("checkable connection after reactivation: %s next %v, want %v", g.Status, g.NextCheckAt, due)
	}
	if b.Status != checks.ConnPasswordIncorrect || b.NextCheckAt != nil {
		t.Fatalf("blocked connection after reactivation: %s next %v", b.Status, b.NextCheckAt)
	}
	// No mass enqueue: the scheduler picks the due connections up.
	for _, q := range tasks.Queues {
		if ts := e.queued(q); len(ts) != 0 {
			t.Fatalf("queue %s holds %v", q, ts)
		}
	}

	e.runErrorCases(t, []errorCase{
		{"missing isActive", call{method: "PATCH", path: path, body: `{}`}, 400, api.CodeInvalidRequest, []string{"isActive is required"}},
		{"null isActive", call{method: "PATCH", path: path, body: `{"isActive":null}`}, 400, api.CodeInvalidRequest, []string{"isActive is required"}},
		{"wrong type", call{method: "PATCH", path: path, body: `{"isActive":1}`}, 400, api.CodeInvalidRequest, []string{`"isActive"`, "boolean"}},
		{"name is not patchable here", call{method: "PATCH", path: path, body: `{"isActive":true,"name":"x"}`}, 400, api.CodeInvalidRequest, []string{`unknown field "name"`}},
		{"unknown company", call{method: "PATCH", path: "/v1/company/" + unknownCompany, body: `{"isActive":false}`}, 404, api.CodeNotFound, []string{unknownCompany}},
		{"malformed company", call{method: "PATCH", path: "/v1/company/acme", body: `{"isActive":false}`}, 404, api.CodeNotFound, []string{`"acme"`}},
		{"no key", call{method: "PATCH", path: path, body: `{"isActive":false}`, key: "-"}, 401, api.CodeUnauthorized, nil},
	})
}

func TestRealRedisConfirmAccounts(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t)
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnConnected,
		Accounts: []checks.AccountResult{{Number: "A-1"}, {Number: "A-2"}, {Number: "A-3"}}})
	accts := e.mustConnection(c.ID).Accounts
	a1, a2, a3 := accts[0].ID, accts[1].ID, accts[2].ID
	path := "/v1/connection/" + c.ID + "/status"
	body := func(ds ...string) string { return `{"accounts":[` + strings.Join(ds, ",") + `]}` }
	dec := func(id, ts string) string { return `{"accountId":"` + id + `","trackingStatus":"` + ts + `"}` }

	// Refused requests first: each names every offending account and
	// changes nothing.
	for _, tc := range []struct {
		name string
		body string
		want map[string]string // account → a word of its problem
	}{
		{"unknown account", body(dec(a1, "ENABLED"), dec("ac_0000000000000000", "ENABLED")), map[string]string{"ac_0000000000000000": "no such account"}},
		{"two problems", body(dec("ac_zzzzzzzzzzzzzzzz", "ENABLED"), dec(a2, "UNSET")), map[string]string{"ac_zzzzzzzzzzzzzzzz": "no such account", a2: "ENABLED or DISABLED"}},
		{"decided twice", body(dec(a1, "ENABLED"), dec(a1, "DISABLED")), map[string]string{a1: "twice"}},
		{"unknown tracking status", body(dec(a3, "MAYBE")), map[string]string{a3: "MAYBE"}},
	} {
		before := e.dump()
		w := e.do(call{method: "PATCH", path: path, body: tc.body})
		got := decodeAs[api.ErrorResponse](t, w)
		if w.Code != 400 || got.Error.Code != api.CodeInvalidRequest || len(got.Error.Accounts) != len(tc.want) {
			t.Errorf("%s: %d %s", tc.name, w.Code, w.Body)
			continue
		}
		for id, word := range tc.want {
			if !strings.Contains(got.Error.Accounts[id], word) || !strings.Contains(got.Error.Message, id) {
				t.Errorf("%s: account %s: %q (message %q), want %q", tc.name, id, got.Error.Accounts[id], got.Error.Message, word)
			}
		}
		if e.dump() != before {
			t.Errorf("%s: a refused confirmation wrote", tc.name)
		}
	}

	var got api.Connection
	e.send(call{method: "PATCH", path: path, body: body(dec(a1, "ENABLED"), dec(a2, "disabled"))}, 200, &got)
	byID := map[string]api.Account{}
	for _, a := range got.Accounts {
		byID[a.ID] = a
	}
	if a := byID[a1]; a.TrackingStatus != checks.TrackingEnabled || a.Status != checks.AcctOnboarded || a.StatusDisplayName != "Onboarded" {
		t.Errorf("confirmed account: %+v", a)
	}
	if a := byID[a2]; a.TrackingStatus != checks.TrackingDisabled || a.Status != checks.AcctCustomerNotTracked {
		t.Errorf("rejected account: %+v", a)
	}
	if a := byID[a3]; a.TrackingStatus != checks.TrackingUnset || a.Status != checks.AcctDetected {
		t.Errorf("untouched account: %+v", a)
	}
	if h, _ := e.st.History(context.Background(), c.ID, 1); len(h) != 1 || h[0].Cause != store.CauseConfirm {
		t.Errorf("history: %+v", h)
	}

	e.runErrorCases(t, []errorCase{
		{"no accounts", call{method: "PATCH", path: path, body: `{"accounts":[]}`}, 400, api.CodeInvalidRequest, []string{"accounts is required", "ENABLED"}},
		{"missing accounts", call{method: "PATCH", path: path, body: `{}`}, 400, api.CodeInvalidRequest, []string{"accounts is required"}},
		{"missing account id", call{method: "PATCH", path: path, body: body(dec(a1, "ENABLED"), `{"trackingStatus":"ENABLED"}`)}, 400, api.CodeInvalidRequest, []string{"accounts[1].accountId is required"}},
		{"accounts not an array", call{method: "PATCH", path: path, body: `{"accounts":{"id":"x"}}`}, 400, api.CodeInvalidRequest, []string{`"accounts"`, "array"}},
		{"unknown field", call{method: "PATCH", path: path, body: `{"accounts":[{"accountId":"` + a1 + `","status":"ONBOARDED"}]}`}, 400, api.CodeInvalidRequest, []string{`unknown field "status"`}},
		{"unknown connection", call{method: "PATCH", path: "/v1/connection/" + unknownConnection + "/status", body: body(dec(a1, "ENABLED"))}, 404, api.CodeNotFound, []string{unknownConnection}},
	})

	// Under an inactive company the confirmation is not allowed (409).
	if _, err := e.st.SetCompanyActive(context.Background(), co.ID, false); err != nil {
		t.Fatal(err)
	}
	e.runErrorCases(t, []errorCase{
		{"company inactive", call{method: "PATCH", path: path, body: body(dec(a3, "ENABLED"))}, 409, api.CodeNotAllowed, []string{"inactive", "reactivate"}},
	})
}

func TestRealRedisCredentials(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t)
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnPasswordIncorrect, Detail: "login rejected"})
	path := "/v1/connection/" + c.ID + "/credentials"
	const newPass = "n3w-Pa55word!"

	e.runErrorCases(t, []errorCase{
		{"missing credentials", call{method: "PATCH", path: path, body: `{}`}, 400, api.CodeInvalidRequest, []string{"credentials is required"}},
		{"blank username", call{method: "PATCH", path: path, body: `{"credentials":{"username":" ","password":"` + secret + `"}}`}, 400, api.CodeInvalidRequest, []string{"credentials.username is required"}},
		{"long password", call{method: "PATCH", path: path, body: `{"credentials":{"username":"u","password":"` + strings.Repeat("p", store.MaxCredentialLen+1) + `"}}`}, 400, api.CodeInvalidRequest, []string{"at most 1024"}},
		{"unknown nested field", call{method: "PATCH", path: path, body: `{"credentials":{"username":"u","pin":"1"}}`}, 400, api.CodeInvalidRequest, []string{`unknown field "pin"`, "credentials.extra"}},
		{"unknown connection", call{method: "PATCH", path: "/v1/connection/" + unknownConnection + "/credentials", body: `{"credentials":{"username":"u"}}`}, 404, api.CodeNotFound, []string{unknownConnection}},
		{"no key", call{method: "PATCH", path: path, body: `{"credentials":{"username":"u"}}`, key: "-"}, 401, api.CodeUnauthorized, nil},
	})

	var got api.ConnectionChange
	w := e.send(call{method: "PATCH", path: path, body: `{"credentials":{"username":"user_good","password":"` + newPass + `","extra":{"pin":"1234"}}}`}, 200, &got)
	if strings.Contains(w.Body.String(), newPass) || strings.Contains(w.Body.String(), "1234") {
		t.Fatalf("the answer carries the credentials: %s", w.Body)
	}
	wantTask := tasks.CheckTaskID(c.ID, e.clk.Now())
	if got.Status != checks.ConnPending || got.CredentialsUpdatedAt == nil || !got.CheckEnqueued || got.CheckTaskID != wantTask {
		t.Fatalf("after the update: %+v", got)
	}
	crit := e.queued(tasks.QueueCritical)
	if len(crit) != 1 || crit[0].ID != wantTask || payload(t, crit[0]).Reason != tasks.ReasonCredentials {
		t.Fatalf("critical queue: %v", crit)
	}
	tg, err := e.st.LoadCheck(context.Background(), c.ID)
	if err != nil || tg.Skip != checks.SkipNone || tg.Request.Credentials.Password != newPass || tg.Request.Credentials.Extra["pin"] != "1234" {
		t.Fatalf("stored credentials: %v %v", tg, err)
	}
	if strings.Contains(e.dump(), newPass) {
		t.Fatal("the password is stored in clear")
	}
	for _, en := range e.logs.AllEntries() {
		if line, _ := en.String(); strings.Contains(line, newPass) {
			t.Fatalf("the password was logged: %s", line)
		}
	}

	// A second update while that check is queued enqueues nothing more.
	e.clk.Advance(time.Second)
	e.send(call{method: "PATCH", path: path, body: `{"credentials":{"username":"user_good","password":"p2"}}`}, 200, &got)
	if got.CheckEnqueued || got.CheckNote != api.ReasonAlreadyQueued || len(e.queued(tasks.QueueCritical)) != 1 {
		t.Fatalf("second update: %+v", got)
	}
}

func TestRealRedisRefresh(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t)
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnConnected})
	path := "/v1/connection/" + c.ID + "/refresh"

	var first, second api.RefreshResult
	e.send(call{method: "POST", path: path}, 202, &first)
	if !first.Enqueued || first.TaskID != tasks.CheckTaskID(c.ID, e.clk.Now()) || first.Reason != "" {
		t.Fatalf("first refresh: %+v", first)
	}
	e.clk.Advance(time.Second)
	e.send(call{method: "POST", path: path}, 202, &second)
	if second.Enqueued || second.TaskID != "" || second.Reason != api.ReasonAlreadyQueued {
		t.Fatalf("second refresh: %+v", second)
	}
	crit := e.queued(tasks.QueueCritical)
	if len(crit) != 1 || crit[0].ID != first.TaskID || payload(t, crit[0]).Reason != tasks.ReasonRefresh || crit[0].MaxRetry != 2 {
		t.Fatalf("critical queue: %v", crit)
	}
	// Once the check is recorded, a refresh enqueues again.
	e.handleQueued(tasks.QueueCritical, crit[0])
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnConnected})
	e.send(call{method: "POST", path: path}, 202, &first)
	if !first.Enqueued || len(e.queued(tasks.QueueCritical)) != 1 {
		t.Fatalf("refresh after the check: %+v", first)
	}

	blocked := e.connection(co.ID, "bad")
	recordCheck(t, e.st, e.clk, blocked.ID, checks.Result{Status: checks.ConnPasswordIncorrect})
	off := e.connection(co.ID, "off")
	if _, err := e.st.UpdateDetails(context.Background(), off.ID, store.DetailsPatch{IsActive: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	co2 := e.company("Gone")
	inactive := e.connection(co2.ID, "user_good")
	if _, err := e.st.SetCompanyActive(context.Background(), co2.ID, false); err != nil {
		t.Fatal(err)
	}
	e.runErrorCases(t, []errorCase{
		{"credential-blocked", call{method: "POST", path: "/v1/connection/" + blocked.ID + "/refresh"}, 409, api.CodeNotAllowed, []string{"credentials must be updated", "password"}},
		{"deactivated", call{method: "POST", path: "/v1/connection/" + off.ID + "/refresh"}, 409, api.CodeNotAllowed, []string{"deactivated", "isActive"}},
		{"company inactive", call{method: "POST", path: "/v1/connection/" + inactive.ID + "/refresh"}, 409, api.CodeNotAllowed, []string{"company is inactive"}},
		{"unknown connection", call{method: "POST", path: "/v1/connection/" + unknownConnection + "/refresh"}, 404, api.CodeNotFound, []string{unknownConnection}},
		{"no key", call{method: "POST", path: path, key: "-"}, 401, api.CodeUnauthorized, nil},
		{"GET is not a refresh", call{method: "GET", path: path}, 405, api.CodeMethodNotAllowed, []string{"POST"}},
	})
	if n := len(e.queued(tasks.QueueCritical)); n != 1 {
		t.Fatalf("refused refreshes enqueued: %d tasks", n)
	}
}

// tokenFor swaps the connection ID inside a genuine token's payload, keeping
// its signature: a forgery for another connection.
func tokenFor(tb testing.TB, tok, from, to string) string {
	tb.Helper()
	enc, mac, _ := strings.Cut(tok, ".")
	p, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || !strings.HasSuffix(string(p), from) {
		tb.Fatalf("token payload %q: %v", p, err)
	}
	p = append(p[:len(p)-len(from)], to...)
	return base64.RawURLEncoding.EncodeToString(p) + "." + mac
}

// TestRealRedisReactivationBehindTheSweep: a connection reactivated while
// one of its weekly slots lies between the sweep cursor and now gets one
// check, for the on-demand due time the reactivation set; the sweep's task
// of the weekly slot then finds it served.
func TestRealRedisReactivationBehindTheSweep(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t)
	ctx := context.Background()
	c := e.connection(e.company("Acme").ID, "user_good")
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "1"}}})
	path := "/v1/connection/" + c.ID + "/details"
	e.send(call{method: "PATCH", path: path, body: `{"isActive":false}`}, 200, nil)
	slot := checks.NextSlot(c.ID, e.clk.Now(), e.st.Interval())
	// The sweep has not reached the slot yet (a tick is due, or its
	// scheduler is down), and the slot has passed.
	if err := e.rdb.Set(ctx, "cd:sw", slot.Add(-time.Second).UnixMilli(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	e.clk.Set(slot.Add(30 * time.Second))
	now := e.clk.Now()
	var on api.ConnectionChange
	e.send(call{method: "PATCH", path: path, body: `{"isActive":true}`}, 200, &on)
	if want := tasks.CheckTaskID(c.ID, now); !on.CheckEnqueued || on.CheckTaskID != want {
		t.Fatalf("reactivated: %+v, want task %s (the due time, not the weekly slot %v)", on, want, slot)
	}
	if _, err := e.rdb.ZScore(ctx, "cd:due", c.ID).Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("the due time the check was enqueued for is still in the due index (%v)", err)
	}
	// The reactivation's check runs; then the sweep's task of the weekly slot.
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "1"}}})
	tg, err := e.st.LoadCheck(ctx, c.ID)
	if err != nil || !tg.Served(slot) || tg.Served(e.clk.Now().Add(time.Millisecond)) {
		t.Fatalf("after the reactivation's check: served(slot)=%v, served(later)=%v, %v", tg.Served(slot), tg.Served(e.clk.Now().Add(time.Millisecond)), err)
	}
}

func TestRealRedisNewConnectionLinks(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t)
	co := e.company("Acme")
	cn := e.connection(co.ID, "user_a")
	path := "/v1/connection/company/" + co.ID + "/link"
	var viaPost, viaGet api.LinkResponse
	e.send(call{method: "POST", path: path}, 201, &viaPost)
	e.send(call{method: "GET", path: path}, 200, &viaGet)
	for _, l := range []api.LinkResponse{viaPost, viaGet} {
		if l.CompanyID != co.ID || l.ConnectionID != "" || l.URL != publicURL+"/link#token="+l.Token || !l.ExpiresAt.Equal(e.clk.Now().Add(linkTTL)) {
			t.Fatalf("company link: %+v", l)
		}
	}
	add := func(tok, body string) call {
		return call{method: "POST", path: "/v1/link/connection", key: "-", body: `{"token":"` + tok + `",` + body + `}`}
	}
	const good = `"datasource":"sandbox","name":"Gas","credentials":{"username":"user_good","password":"n3w-Pa55"}`
	var connLink api.LinkResponse
	e.send(call{method: "POST", path: "/v1/connection/" + cn.ID + "/link"}, 201, &connLink)
	e.runErrorCases(t, []errorCase{
		{"unknown company", call{method: "GET", path: "/v1/connection/company/co_0000000000000000/link"}, 404, api.CodeNotFound, []string{"co_0000000000000000"}},
		{"without key", call{method: "POST", path: path, key: "-"}, 401, api.CodeUnauthorized, nil},
		// Refused before the token is spent: nothing is written.
		{"no datasource", add(viaPost.Token, `"credentials":{"username":"u"}`), 400, api.CodeInvalidRequest, []string{"datasource is required"}},
		{"unknown datasource", add(viaPost.Token, `"datasource":"nope","credentials":{"username":"u"}`), 400, api.CodeInvalidRequest, []string{"nope"}},
		{"no credentials", add(viaPost.Token, `"datasource":"sandbox"`), 400, api.CodeInvalidRequest, []string{"credentials is required"}},
		{"escape in the name", add(viaPost.Token, `"datasource":"sandbox","name":"a\u001bb","credentials":{"username":"u"}`), 400, api.CodeInvalidRequest, []string{"control characters"}},
		{"unknown field", add(viaPost.Token, good+`,"companyId":"`+co.ID+`"`), 400, api.CodeInvalidRequest, []string{`unknown field "companyId"`}},
		{"no token", call{method: "POST", path: "/v1/link/connection", key: "-", body: `{` + good + `}`}, 401, api.CodeUnauthorized, []string{"token is required"}},
		{"tampered", add(viaPost.Token[:len(viaPost.Token)-2]+"AA", good), 401, api.CodeUnauthorized, []string{"not valid"}},
		// A genuine token for the other action is no key to this one, either way.
		{"a connection's link", add(connLink.Token, good), 401, api.CodeUnauthorized, []string{"not valid"}},
		{"a company's link on credentials", call{method: "PATCH", path: "/v1/link/credentials", key: "-",
			body: `{"token":"` + viaGet.Token + `","credentials":{"username":"user_good"}}`}, 401, api.CodeUnauthorized, []string{"not valid"}},
	})

	var res api.LinkResult
	e.send(add(viaPost.Token, good), 201, &res)
	got, err := e.st.GetConnection(context.Background(), res.ConnectionID)
	if err != nil || got.CompanyID != co.ID || got.Datasource.Name != "sandbox" || got.Name != "Gas" || got.Status != checks.ConnPending ||
		res.Status != checks.ConnPending || res.StatusDisplayName != "Pending" {
		t.Fatalf("link use: %+v; connection %+v, %v", res, got, err)
	}
	if tg, _ := e.st.LoadCheck(context.Background(), res.ConnectionID); tg.Request.Credentials.Password != "n3w-Pa55" {
		t.Fatalf("credentials not stored: %+v", tg.Request.Credentials)
	}
	e.runErrorCases(t, []errorCase{
		{"replay", add(viaPost.Token, good), 410, api.CodeGone, []string{"already used"}},
	})
	e.clk.Advance(linkTTL)
	e.runErrorCases(t, []errorCase{
		{"expired", add(viaGet.Token, good), 410, api.CodeGone, []string{"expired"}},
	})
	// The page a link opens offers the datasources for a new connection.
	if w := e.do(call{method: "GET", path: "/link", key: "-"}); w.Code != 200 || !strings.Contains(w.Body.String(), `<option value="sandbox">sandbox</option>`) {
		t.Fatalf("link page: %d %.300s", w.Code, w.Body)
	}
}

func TestRealRedisLinks(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t)
	co := e.company("Acme")
	a := e.connection(co.ID, "user_a")
	recordCheck(t, e.st, e.clk, a.ID, checks.Result{Status: checks.ConnPasswordIncorrect})
	b := e.connection(co.ID, "user_b")
	recordCheck(t, e.st, e.clk, b.ID, checks.Result{Status: checks.ConnPasswordIncorrect})
	newLink := func(id string) api.LinkResponse {
		t.Helper()
		var l api.LinkResponse
		e.send(call{method: "POST", path: "/v1/connection/" + id + "/link"}, 201, &l)
		return l
	}
	use := func(tok, creds string) call {
		return call{method: "PATCH", path: "/v1/link/credentials", key: "-", body: `{"token":"` + tok + `","credentials":` + creds + `}`}
	}
	const good = `{"username":"user_good","password":"fresh-Pa55"}`

	l := newLink(a.ID)
	if l.ConnectionID != a.ID || l.URL != publicURL+"/link#token="+l.Token || !l.ExpiresAt.Equal(e.clk.Now().Add(linkTTL)) {
		t.Fatalf("link: %+v", l)
	}
	if strings.Contains(l.URL, "?") || strings.Contains(strings.SplitN(l.URL, "#", 2)[0], l.Token) {
		t.Fatalf("the token must ride in the fragment only: %s", l.URL)
	}

	// Refused before the token is spent: nothing is written.
	forged := tokenFor(t, l.Token, a.ID, b.ID)
	e.runErrorCases(t, []errorCase{
		{"missing credentials", call{method: "PATCH", path: "/v1/link/credentials", key: "-", body: `{"token":"` + l.Token + `"}`}, 400, api.CodeInvalidRequest, []string{"credentials is required"}},
		{"blank username", use(l.Token, `{"username":"","password":"x"}`), 400, api.CodeInvalidRequest, []string{"credentials.username"}},
		{"too many extras", use(l.Token, `{"username":"u","extra":{"a":"","b":"","c":"","d":"","e":"","f":"","g":"","h":"","i":"","j":"","k":"","l":"","m":"","n":"","o":"","p":"","q":""}}`), 400, api.CodeInvalidRequest, []string{"at most 16"}},
		{"malformed body", call{method: "PATCH", path: "/v1/link/credentials", key: "-", body: `{"token":"` + l.Token + `",`}, 400, api.CodeInvalidRequest, []string{"truncated"}},
		{"naming a connection", call{method: "PATCH", path: "/v1/link/credentials", key: "-", body: `{"token":"` + l.Token + `","connectionId":"` + b.ID + `","credentials":` + good + `}`}, 400, api.CodeInvalidRequest, []string{`unknown field "connectionId"`}},
		{"no token", call{method: "PATCH", path: "/v1/link/credentials", key: "-", body: `{"credentials":` + good + `}`}, 401, api.CodeUnauthorized, []string{"token is required"}},
		{"tampered", use(l.Token[:len(l.Token)-2]+"AA", good), 401, api.CodeUnauthorized, []string{"not valid", "ask for a new one"}},
		{"forged for B", use(forged, good), 401, api.CodeUnauthorized, []string{"not valid"}},
		{"garbage", use("hello.world", good), 401, api.CodeUnauthorized, []string{"not valid"}},
	})

	// The token updates its own connection, once, with no API key.
	var res api.LinkResult
	e.send(use(l.Token, good), 200, &res)
	if res.ConnectionID != a.ID || res.Status != checks.ConnPending || res.StatusDisplayName != "Pending" || !res.CheckEnqueued {
		t.Fatalf("link use: %+v", res)
	}
	raw := decodeAs[map[string]any](t, e.do(use(newLink(b.ID).Token, good)))
	if _, ok := raw["accounts"]; ok {
		t.Errorf("the link answer exposes the connection's details: %v", raw)
	}
	// The reference's GET /connection/{connectionId} gives the same link.
	c := e.connection(co.ID, "user_c")
	var viaGet api.LinkResponse
	e.send(call{method: "GET", path: "/v1/connection/" + c.ID}, 200, &viaGet)
	if viaGet.ConnectionID != c.ID || viaGet.URL != publicURL+"/link#token="+viaGet.Token {
		t.Fatalf("GET link: %+v", viaGet)
	}
	e.send(use(viaGet.Token, good), 200, &res)
	if res.ConnectionID != c.ID {
		t.Fatalf("GET link use: %+v", res)
	}
	tg, _ := e.st.LoadCheck(context.Background(), a.ID)
	if tg.Request.Credentials.Password != "fresh-Pa55" {
		t.Fatalf("credentials of A not updated: %+v", tg.Request.Credentials)
	}
	crit := e.queued(tasks.QueueCritical)
	if len(crit) != 3 { // A's, then B's from its own link, then C's
		t.Fatalf("critical queue: %v", crit)
	}
	e.runErrorCases(t, []errorCase{
		{"replay", use(l.Token, `{"username":"user_good","password":"attacker"}`), 410, api.CodeGone, []string{"already used", "ask for a new one"}},
	})
	tg, _ = e.st.LoadCheck(context.Background(), a.ID)
	if tg.Request.Credentials.Password != "fresh-Pa55" {
		t.Fatal("the replay changed the credentials")
	}

	// A's token updates A only, B's credentials stay.
	b2 := e.connection(co.ID, "user_c")
	la := newLink(a.ID)
	e.send(use(la.Token, `{"username":"only_a"}`), 200, &res)
	if tg, _ := e.st.LoadCheck(context.Background(), b2.ID); res.ConnectionID != a.ID || tg.Request.Credentials.Username != "user_c" {
		t.Fatalf("A's token: %+v; other connection's username %q", res, tg.Request.Credentials.Username)
	}

	// Expired (fake clock): 410, nothing written, and it stays refused.
	old := newLink(a.ID)
	e.clk.Advance(linkTTL)
	e.runErrorCases(t, []errorCase{
		{"expired", use(old.Token, good), 410, api.CodeGone, []string{"expired", "ask for a new one"}},
	})

	// Concurrent replays of one token: exactly one wins.
	fresh := newLink(a.ID)
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Go(func() { codes[i] = e.do(use(fresh.Token, good)).Code })
	}
	wg.Wait()
	slices.Sort(codes)
	if codes[len(codes)-1] != 410 || slices.Index(codes, 200) != 0 || slices.Contains(codes[1:], 200) {
		t.Fatalf("concurrent uses of one token answered %v, want one 200 and 410s", codes)
	}

	e.runErrorCases(t, []errorCase{
		{"link for unknown connection", call{method: "POST", path: "/v1/connection/" + unknownConnection + "/link"}, 404, api.CodeNotFound, []string{unknownConnection}},
		{"link without key", call{method: "POST", path: "/v1/connection/" + a.ID + "/link", key: "-"}, 401, api.CodeUnauthorized, nil},
		{"GET a link", call{method: "GET", path: "/v1/connection/" + a.ID + "/link"}, 405, api.CodeMethodNotAllowed, []string{"POST"}},
		{"GET link for unknown connection", call{method: "GET", path: "/v1/connection/" + unknownConnection}, 404, api.CodeNotFound, []string{unknownConnection}},
		{"GET link without key", call{method: "GET", path: "/v1/connection/" + a.ID, key: "-"}, 401, api.CodeUnauthorized, nil},
	})

	// No token ever reaches the log.
	for _, en := range e.logs.AllEntries() {
		line, _ := en.String()
		for _, tok := range []string{l.Token, la.Token, old.Token, fresh.Token} {
			if strings.Contains(line, tok) || strings.Contains(line, strings.Split(tok, ".")[1]) {
				t.Fatalf("a token was logged: %s", line)
			}
		}
	}
}

// TestRealRedisStaleLinks: a credential link is refused once the
// credentials were replaced after it was issued (by an operator or through
// a newer link), and a company link while the company is inactive; both
// write nothing.
func TestRealRedisStaleLinks(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t)
	ctx := context.Background()
	co := e.company("Acme")
	a := e.connection(co.ID, "user_a")
	newLink := func(path string) string {
		t.Helper()
		var l api.LinkResponse
		e.send(call{method: "POST", path: path}, 201, &l)
		e.clk.Advance(time.Second)
		return l.Token
	}
	use := func(tok, password string) call {
		return call{method: "PATCH", path: "/v1/link/credentials", key: "-",
			body: `{"token":"` + tok + `","credentials":{"username":"user_good","password":"` + password + `"}}`}
	}
	password := func() string {
		t.Helper()
		tg, err := e.st.LoadCheck(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		return tg.Request.Credentials.Password
	}
	connLink := "/v1/connection/" + a.ID + "/link"

	stale := newLink(connLink)
	e.send(call{method: "PATCH", path: "/v1/connection/" + a.ID + "/credentials",
		body: `{"credentials":{"username":"user_good","password":"operator"}}`}, 200, nil)
	e.clk.Advance(time.Second)
	older, newer := newLink(connLink), newLink(connLink)
	e.runErrorCases(t, []errorCase{
		{"issued before the operator's update", use(stale, "attacker"), 410, api.CodeGone, []string{"replaced", "ask for a new one"}},
	})
	if p := password(); p != "operator" {
		t.Fatalf("password %q after a stale link, want the operator's", p)
	}
	e.send(use(newer, "customer"), 200, nil)
	e.runErrorCases(t, []errorCase{
		{"older than the link used", use(older, "attacker"), 410, api.CodeGone, []string{"replaced"}},
	})
	if p := password(); p != "customer" {
		t.Fatalf("password %q, want the newest link's", p)
	}
	e.send(use(newLink(connLink), "again"), 200, nil) // issued after every update
	if p := password(); p != "again" {
		t.Fatalf("password %q, want the fresh link's", p)
	}
	// The store checks the same in its atomic write, for an update between
	// the API's look and its write.
	if _, err := e.st.UpdateCredentialsSince(ctx, a.ID, checks.Credentials{Username: "x"}, e.clk.Now().Add(-2*time.Second)); !errors.Is(err, store.ErrSuperseded) {
		t.Fatalf("UpdateCredentialsSince before the last update: %v, want ErrSuperseded", err)
	}

	companyLink := "/v1/connection/company/" + co.ID + "/link"
	add := func(tok string) call {
		return call{method: "POST", path: "/v1/link/connection", key: "-",
			body: `{"token":"` + tok + `","datasource":"sandbox","name":"Gas","credentials":{"username":"user_good"}}`}
	}
	tok := newLink(companyLink)
	e.send(call{method: "PATCH", path: "/v1/company/" + co.ID, body: `{"isActive":false}`}, 200, nil)
	e.runErrorCases(t, []errorCase{
		{"company link of an inactive company", add(tok), 409, api.CodeNotAllowed, []string{"inactive", "reactivated"}},
		{"minting for an inactive company", call{method: "POST", path: companyLink}, 409, api.CodeNotAllowed, []string{"inactive", "reactivate"}},
	})
	list, err := e.st.ListConnections(ctx, co.ID, nil, "", 0)
	if err != nil || len(list.Connections) != 1 {
		t.Fatalf("connections after the refused link: %d, %v; want only A", len(list.Connections), err)
	}
	e.send(call{method: "PATCH", path: "/v1/company/" + co.ID, body: `{"isActive":true}`}, 200, nil)
	var res api.LinkResult
	e.send(add(tok), 201, &res) // the refusal did not spend the link
	if res.Status != checks.ConnPending {
		t.Fatalf("link use after reactivation: %+v", res)
	}
}

func TestRealRedisQueues(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t)
	var list api.QueueList
	e.send(call{method: "GET", path: "/v1/queues"}, 200, &list)
	if len(list.Queues) != len(tasks.Queues) {
		t.Fatalf("queues: %+v", list)
	}
	for i, q := range list.Queues {
		if q != (api.QueueStats{Queue: tasks.Queues[i]}) {
			t.Errorf("a queue with no task yet reports zeros: %+v", q)
		}
	}

	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	e.send(call{method: "POST", path: "/v1/connection/" + c.ID + "/refresh"}, 202, nil)
	e.send(call{method: "GET", path: "/v1/queues"}, 200, &list)
	if q := list.Queues[0]; q.Queue != tasks.QueueCritical || q.Size != 1 || q.Pending != 1 || q.Paused {
		t.Fatalf("critical after a refresh: %+v", q)
	}

	info := func(q string) *asynq.QueueInfo {
		t.Helper()
		in, err := e.insp.GetQueueInfo(q)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	var st api.QueueStats
	for range 2 { // pausing twice is fine
		e.send(call{method: "POST", path: "/v1/queues/critical/pause"}, 200, &st)
		if st.Queue != tasks.QueueCritical || !st.Paused || st.Pending != 1 || !info(tasks.QueueCritical).Paused {
			t.Fatalf("paused: %+v", st)
		}
	}
	e.send(call{method: "GET", path: "/v1/queues"}, 200, &list)
	if !list.Queues[0].Paused || list.Queues[1].Paused {
		t.Fatalf("list after the pause: %+v", list)
	}
	for range 2 {
		e.send(call{method: "POST", path: "/v1/queues/critical/resume"}, 200, &st)
		if st.Paused || info(tasks.QueueCritical).Paused {
			t.Fatalf("resumed: %+v", st)
		}
	}
	// A queue asynq has not created yet can be paused before its first task.
	e.send(call{method: "POST", path: "/v1/queues/low/pause"}, 200, &st)
	if st != (api.QueueStats{Queue: tasks.QueueLow, Paused: true}) {
		t.Fatalf("pause low: %+v", st)
	}
	e.send(call{method: "POST", path: "/v1/queues/low/resume"}, 200, &st)

	e.runErrorCases(t, []errorCase{
		{"unknown queue", call{method: "POST", path: "/v1/queues/urgent/pause"}, 404, api.CodeNotFound, []string{`"urgent"`, "critical, default, low"}},
		{"unknown action", call{method: "POST", path: "/v1/queues/critical/drain"}, 404, api.CodeNotFound, []string{"no route"}},
		{"GET pause", call{method: "GET", path: "/v1/queues/critical/pause"}, 405, api.CodeMethodNotAllowed, []string{"POST"}},
		{"no key", call{method: "GET", path: "/v1/queues", key: "-"}, 401, api.CodeUnauthorized, nil},
		{"pause without key", call{method: "POST", path: "/v1/queues/critical/pause", key: "-"}, 401, api.CodeUnauthorized, nil},
	})
}

// TestRealRedisLinkOverHTTP serves a real listener without PublicURL: the
// link points at the bound address, and its page and the update work over
// HTTP without an API key.
func TestRealRedisLinkOverHTTP(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t)
	srv, err := api.New(e.st, testConfig(func(c *api.Config) { c.Links, c.Clock = e.links, e.clk }))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	base := "http://" + srv.Addr()
	c := e.connection(e.company("Acme").ID, "user_good")
	client := openapitest.Client(t)
	do := func(method, path, key, body string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set(api.HeaderAPIKey, key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, readAll(t, resp.Body), resp.Header
	}
	code, body, _ := do("POST", "/v1/connection/"+c.ID+"/link", testKey, "")
	var l api.LinkResponse
	if err := json.Unmarshal([]byte(body), &l); code != 201 || err != nil || !strings.HasPrefix(l.URL, base+"/link#token=") {
		t.Fatalf("link: %d %s", code, body)
	}
	code, body, hdr := do("GET", "/link", "", "")
	if code != 200 || !strings.Contains(body, "<form") || !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") ||
		hdr.Get("Referrer-Policy") != "no-referrer" || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("link page: %d %v %s", code, hdr, body)
	}
	code, body, _ = do("PATCH", "/v1/link/credentials", "", `{"token":"`+l.Token+`","credentials":{"username":"u2"}}`)
	if code != 200 || !strings.Contains(body, `"checkEnqueued":false`) {
		t.Fatalf("link use: %d %s", code, body)
	}
	if tg, _ := e.st.LoadCheck(context.Background(), c.ID); tg.Request.Credentials.Username != "u2" {
		t.Fatalf("username %q", tg.Request.Credentials.Username)
	}
}

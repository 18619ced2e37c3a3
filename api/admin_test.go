package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
)

// Unit tests of the admin routes on miniredis with a recording enqueuer:
// missing dependencies, enqueue failures, routing and auth. The real-Redis
// suite (admin_redis_test.go) covers every route end to end.

// queuedMark reports whether the store marks a check of id queued, through
// the store's own API: a mark refuses a new one (the probe's mark is undone).
func (e *env) queuedMark(id string) bool {
	e.t.Helper()
	ctx := context.Background()
	free, err := e.st.MarkQueued(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	if free {
		e.clearMark(id)
	}
	return !free
}

func (e *env) clearMark(id string) {
	e.t.Helper()
	if err := e.st.ClearQueued(context.Background(), id); err != nil {
		e.t.Fatal(err)
	}
}

func TestAdminRoutesWithoutDependencies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.Enqueuer, c.Links, c.Inspector = nil, nil, nil })
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	e.runErrorCases(t, []errorCase{
		{"refresh", call{method: "POST", path: "/v1/connection/" + c.ID + "/refresh"}, 503, api.CodeUnavailable, []string{"no task queue", "scheduler"}},
		{"create link", call{method: "POST", path: "/v1/connection/" + c.ID + "/link"}, 503, api.CodeUnavailable, []string{"links are not available"}},
		{"use link", call{method: "PATCH", path: "/v1/link/credentials", key: "-", body: `{"token":"x.y","credentials":{"username":"u"}}`}, 503, api.CodeUnavailable, []string{"links are not available"}},
		{"list queues", call{method: "GET", path: "/v1/queues"}, 503, api.CodeUnavailable, []string{"queue inspector"}},
		{"pause", call{method: "POST", path: "/v1/queues/critical/pause"}, 503, api.CodeUnavailable, []string{"queue inspector"}},
		{"resume", call{method: "POST", path: "/v1/queues/critical/resume"}, 503, api.CodeUnavailable, []string{"queue inspector"}},
	})
	// Writes that ask for a check still succeed: the connection is due at
	// once and the scheduler checks it.
	e.do(call{method: "PATCH", path: "/v1/connection/" + c.ID + "/details", body: `{"isActive":false}`})
	w := e.do(call{method: "PATCH", path: "/v1/connection/" + c.ID + "/details", body: `{"isActive":true}`})
	got := decodeAs[api.ConnectionChange](t, w)
	if w.Code != 200 || got.CheckEnqueued || !strings.Contains(got.CheckNote, "scheduler") || got.NextCheckAt == nil || e.queuedMark(c.ID) {
		t.Fatalf("reactivation without a queue: %d %+v", w.Code, got)
	}
}

func TestEnqueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.TaskOptions = []asynq.Option{asynq.MaxRetry(1), asynq.Queue(tasks.QueueLow)} })
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	refresh := call{method: "POST", path: "/v1/connection/" + c.ID + "/refresh"}

	for _, tc := range []struct {
		name     string
		err      error
		code     int
		enqueued bool
		mark     bool // the queued mark after the call
		want     string
	}{
		{"enqueued", nil, 202, true, true, `"enqueued":true`},
		{"queue down", errors.New("dial tcp: connection refused"), 503, false, false, "task queue is unavailable"},
		{"same slot already enqueued", fmt.Errorf("enqueue: %w", asynq.ErrTaskIDConflict), 202, false, true, api.ReasonAlreadyQueued},
	} {
		e.clearMark(c.ID)
		e.enq.Reset(tc.err)
		e.logs.Reset()
		w := e.do(refresh)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s: %d %s", tc.name, w.Code, w.Body)
		}
		if got := e.queuedMark(c.ID); got != tc.mark {
			t.Errorf("%s: queued mark %v, want %v", tc.name, got, tc.mark)
		}
		if n := len(e.enq.Enqueued()); (n == 1) != tc.enqueued {
			t.Errorf("%s: %d tasks enqueued", tc.name, n)
		}
		if tc.code == 503 {
			if w.Header().Get("Retry-After") == "" || strings.Contains(w.Body.String(), "refused") {
				t.Errorf("%s: headers %v body %s", tc.name, w.Header(), w.Body)
			}
			if !logged(e, logrus.ErrorLevel, "connection refused") {
				t.Errorf("%s: the failure was not logged", tc.name)
			}
		}
	}
	e.enq.Reset(nil)
	e.clearMark(c.ID)
	e.do(refresh)
	ts := e.enq.Enqueued()
	if len(ts) != 1 || ts[0].Type() != tasks.TypeCheckConnection {
		t.Fatalf("tasks %v", ts)
	}
	if p, err := tasks.ParseCheckPayload(ts[0].Payload()); err != nil || p.ConnectionID != c.ID || p.Reason != tasks.ReasonRefresh || p.Slot != testNow.UnixMilli() {
		t.Fatalf("payload %+v %v", p, err)
	}

	// After a write, a failed enqueue is no error answer: the change is
	// made, the mark undone, and the scheduler checks the connection.
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnPasswordIncorrect})
	e.enq.Reset(errors.New("queue down"))
	w := e.do(call{method: "PATCH", path: "/v1/connection/" + c.ID + "/credentials", body: `{"credentials":{"username":"u","password":"` + secret + `"}}`})
	got := decodeAs[api.ConnectionChange](t, w)
	if w.Code != 200 || got.Status != checks.ConnPending || got.CheckEnqueued || !strings.Contains(got.CheckNote, "scheduler") || e.queuedMark(c.ID) {
		t.Fatalf("credential update with the queue down: %d %+v", w.Code, got)
	}
	// The link route likewise answers 200: its token is spent, so the
	// update must not look failed.
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnPasswordIncorrect})
	tok, _, _ := e.links.Sign(c.ID)
	w = e.do(call{method: "PATCH", path: "/v1/link/credentials", key: "-", body: `{"token":"` + tok + `","credentials":{"username":"u2"}}`})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"checkEnqueued":false`) {
		t.Fatalf("link use with the queue down: %d %s", w.Code, w.Body)
	}
	e.assertNoSecret()
}

func logged(e *env, level logrus.Level, text string) bool {
	for _, en := range e.logs.AllEntries() {
		if err, ok := en.Data[logrus.ErrorKey].(error); ok && en.Level == level && strings.Contains(err.Error(), text) {
			return true
		}
	}
	return false
}

func TestAdminRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cn := "/v1/connection/" + unknownConnection
	for _, tc := range []struct {
		method, path string
		allow        string
	}{
		{"GET", cn + "/status", "PATCH"},
		{"POST", cn + "/credentials", "PATCH"},
		{"PATCH", cn + "/history", "GET, HEAD"},
		{"POST", cn + "/details", "GET, HEAD, PATCH"},
		{"PUT", "/v1/connection/company/" + unknownCompany, "GET, HEAD, POST"},
		{"PATCH", cn + "/refresh", "POST"},
		{"GET", "/v1/link/credentials", "PATCH"},
		{"DELETE", "/v1/company/" + unknownCompany, "GET, HEAD, PATCH"},
	} {
		before := e.dump()
		w := e.do(call{method: tc.method, path: tc.path, body: `{}`, key: "-"})
		got := decodeAs[api.ErrorResponse](t, w)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != tc.allow || got.Error.Code != api.CodeMethodNotAllowed ||
			!strings.Contains(got.Error.Message, tc.allow) || e.dump() != before {
			t.Errorf("%s %s: %d Allow %q %s, want 405 Allow %q", tc.method, tc.path, w.Code, w.Header().Get("Allow"), w.Body, tc.allow)
		}
	}
	e.runErrorCases(t, []errorCase{
		{"unknown view", call{method: "PATCH", path: cn + "/settings", body: `{}`, key: "-"}, 404, api.CodeNotFound, []string{"no route"}},
		{"too deep", call{method: "PATCH", path: cn + "/details/x", body: `{}`}, 404, api.CodeNotFound, []string{"no route"}},
	})
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	if w := e.do(call{method: "HEAD", path: "/v1/connection/" + c.ID + "/details"}); w.Code != 200 {
		t.Errorf("HEAD details: %d", w.Code)
	}
}

func TestAdminAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "A-1"}}})
	acct := e.mustConnection(c.ID).Accounts[0].ID
	cn := "/v1/connection/" + c.ID
	routes := []call{
		{method: "PATCH", path: "/v1/company/" + co.ID, body: `{"isActive":true}`},
		{method: "PATCH", path: cn + "/details", body: `{"name":"x"}`},
		{method: "PATCH", path: cn + "/status", body: `{"accounts":[{"accountId":"` + acct + `","trackingStatus":"ENABLED"}]}`},
		{method: "PATCH", path: cn + "/credentials", body: `{"credentials":{"username":"u"}}`},
		{method: "POST", path: cn + "/refresh"},
		{method: "POST", path: cn + "/link"},
	}
	var cases []errorCase
	for _, r := range routes {
		missing, wrong := r, r
		missing.key, wrong.key = "-", "wrong-key"
		cases = append(cases,
			errorCase{name: "no key " + r.method + " " + r.path, call: missing, status: 401, code: api.CodeUnauthorized, msg: []string{"missing"}},
			errorCase{name: "wrong key " + r.method + " " + r.path, call: wrong, status: 401, code: api.CodeUnauthorized, msg: []string{"does not match"}})
	}
	e.runErrorCases(t, cases)
	for _, r := range routes {
		r.key = otherKey
		if w := e.do(r); w.Code/100 != 2 {
			t.Errorf("%s %s with the second key: %d %s", r.method, r.path, w.Code, w.Body)
		}
	}
	// The link routes need no key, and ignore one.
	if w := e.do(call{method: "GET", path: "/link", key: "-"}); w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Errorf("link page: %d %v", w.Code, w.Header())
	}
	tok, _, _ := e.links.Sign(c.ID)
	if w := e.do(call{method: "PATCH", path: "/v1/link/credentials", key: "wrong-key", body: `{"token":"` + tok + `","credentials":{"username":"u"}}`}); w.Code != 200 {
		t.Errorf("link use: %d %s", w.Code, w.Body)
	}
}

package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/webhook"
)

const goodEndpoint = `{"url":"https://hooks.example.com/checkd","description":"billing","filterTypes":["connection.updated.v2"]}`

func (e *env) createEndpoint(body string) api.WebhookEndpointCreated {
	e.t.Helper()
	w := e.do(call{method: "POST", path: "/v1/webhooks/endpoints", body: body})
	if w.Code != http.StatusCreated {
		e.t.Fatalf("create endpoint: %d %s", w.Code, w.Body)
	}
	return decodeAs[api.WebhookEndpointCreated](e.t, w)
}

func TestWebhookEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	created := e.createEndpoint(`{"url":"https://hooks.example.com/checkd","description":"billing",` +
		`"filterTypes":["connection.updated.v2","connection.updated.v2"],"companyIds":["` + co.ID + `"]}`)
	if !strings.HasPrefix(created.ID, "ep_") || !strings.HasPrefix(created.Secret, "whsec_") || created.Disabled ||
		!slices.Equal(created.FilterTypes, []string{store.EventConnectionUpdated}) || !slices.Equal(created.CompanyIDs, []string{co.ID}) {
		t.Fatalf("created %+v", created)
	}
	// Refusals: each says what to fix, and writes nothing.
	before := e.dump()
	for _, tc := range []struct{ body, want string }{
		{`{"url":"http://hooks.example.com/x"}`, "must be https"},
		{`{"url":"https://internal.example.com/x"}`, webhook.EnvAllowPrivate},
		{`{"url":"https://127.0.0.1/x"}`, "loopback"},
		{`{"url":"https://nowhere.example.com/x"}`, "does not resolve"},
		{`{"url":"ftp://hooks.example.com/x"}`, "absolute http(s) URL"},
		{`{"url":"https://user:pw@hooks.example.com/x"}`, "user or password"},
		{`{"url":"https://hooks.example.com/x","filterTypes":["connection.deleted.v2"]}`, "unknown event type"},
		{`{"url":"https://hooks.example.com/x","companyIds":["co_0000000000000000"]}`, "does not exist"},
		{`{"description":"no url"}`, "url is required"},
		{`{"url":"https://hooks.example.com/x","secret":"mine"}`, "unknown field"},
	} {
		w := e.do(call{method: "POST", path: "/v1/webhooks/endpoints", body: tc.body})
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tc.want) {
			t.Fatalf("%s: %d %s, want 400 saying %q", tc.body, w.Code, w.Body, tc.want)
		}
	}
	if e.dump() != before {
		t.Fatal("a refused endpoint wrote something")
	}
	// Read, list, change.
	got := decodeAs[store.WebhookEndpoint](t, e.do(call{method: "GET", path: "/v1/webhooks/endpoints/" + created.ID}))
	if got.ID != created.ID || got.URL != created.URL {
		t.Fatalf("get %+v", got)
	}
	if w := e.do(call{method: "GET", path: "/v1/webhooks/endpoints/" + created.ID}); strings.Contains(w.Body.String(), "whsec_") {
		t.Fatal("GET endpoint shows the secret")
	}
	e.clk.Advance(time.Second) // listed by creation
	second := e.createEndpoint(`{"url":"https://hooks.example.com/two","disabled":true}`)
	if !second.Disabled || second.DisabledReason == "" {
		t.Fatalf("created disabled %+v", second)
	}
	page := decodeAs[store.WebhookEndpointPage](t, e.do(call{method: "GET", path: "/v1/webhooks/endpoints?limit=1"}))
	if len(page.Endpoints) != 1 || page.Endpoints[0].ID != created.ID || page.Next == "" {
		t.Fatalf("page 1 %+v", page)
	}
	page = decodeAs[store.WebhookEndpointPage](t, e.do(call{method: "GET", path: "/v1/webhooks/endpoints?limit=1&cursor=" + page.Next}))
	if len(page.Endpoints) != 1 || page.Endpoints[0].ID != second.ID || page.Next != "" {
		t.Fatalf("page 2 %+v", page)
	}
	e.clk.Advance(time.Minute)
	patched := decodeAs[store.WebhookEndpoint](t, e.do(call{method: "PATCH", path: "/v1/webhooks/endpoints/" + second.ID,
		body: `{"disabled":false,"filterTypes":[],"description":"re-enabled"}`}))
	if patched.Disabled || patched.DisabledReason != "" || len(patched.FilterTypes) != 0 || patched.Description != "re-enabled" || !patched.UpdatedAt.Equal(e.clk.Now()) {
		t.Fatalf("patched %+v", patched)
	}
	for _, tc := range []struct {
		body string
		code int
	}{{`{}`, 400}, {`{"url":"https://internal.example.com/"}`, 400}, {`{"disabled":"no"}`, 400}} {
		if w := e.do(call{method: "PATCH", path: "/v1/webhooks/endpoints/" + second.ID, body: tc.body}); w.Code != tc.code {
			t.Fatalf("PATCH %s: %d %s", tc.body, w.Code, w.Body)
		}
	}
	// Secrets: read, rotate (the old one keeps signing for the grace).
	sec := decodeAs[api.WebhookSecret](t, e.do(call{method: "GET", path: "/v1/webhooks/endpoints/" + created.ID + "/secret"}))
	if sec.Secret != created.Secret || sec.PreviousValidUntil != nil {
		t.Fatalf("secret %+v", sec)
	}
	rot := decodeAs[api.WebhookSecret](t, e.do(call{method: "POST", path: "/v1/webhooks/endpoints/" + created.ID + "/secret/rotate"}))
	if rot.Secret == created.Secret || !strings.HasPrefix(rot.Secret, "whsec_") || rot.PreviousValidUntil == nil || !rot.PreviousValidUntil.Equal(e.clk.Now().Add(time.Hour)) {
		t.Fatalf("rotate %+v", rot)
	}
	secrets, _ := e.st.WebhookSecrets(context.Background(), created.ID)
	if secrets.Current != rot.Secret || secrets.Previous != created.Secret {
		t.Fatalf("stored secrets %+v", secrets)
	}
	// Test: an example now, enqueued on the webhooks queue.
	w := e.do(call{method: "POST", path: "/v1/webhooks/endpoints/" + created.ID + "/test", body: `{"eventType":"connection.created.v2"}`})
	acc := decodeAs[api.WebhookAccepted](t, w)
	if w.Code != http.StatusAccepted || !strings.HasPrefix(acc.MessageID, "msg_test_") {
		t.Fatalf("test %d %s", w.Code, w.Body)
	}
	ts := e.enq.Enqueued()
	if len(ts) != 1 || ts[0].Type() != tasks.TypeWebhookDeliver {
		t.Fatalf("test enqueued %v", ts)
	}
	if w := e.do(call{method: "POST", path: "/v1/webhooks/endpoints/" + created.ID + "/test", body: `{"eventType":"nope"}`}); w.Code != 400 {
		t.Fatalf("test of an unknown type: %d", w.Code)
	}
	// Recover: a window; refused while disabled.
	w = e.do(call{method: "POST", path: "/v1/webhooks/endpoints/" + created.ID + "/recover", body: `{"since":"2026-03-01T00:00:00Z"}`})
	if w.Code != http.StatusAccepted || len(e.enq.Enqueued()) != 2 || e.enq.Enqueued()[1].Type() != tasks.TypeWebhookRecover {
		t.Fatalf("recover %d %s", w.Code, w.Body)
	}
	for _, body := range []string{`{}`, `{"since":"yesterday"}`, `{"since":"2026-03-02T00:00:00Z","until":"2026-03-01T00:00:00Z"}`} {
		if w := e.do(call{method: "POST", path: "/v1/webhooks/endpoints/" + created.ID + "/recover", body: body}); w.Code != 400 {
			t.Fatalf("recover %s: %d", body, w.Code)
		}
	}
	e.do(call{method: "PATCH", path: "/v1/webhooks/endpoints/" + created.ID, body: `{"disabled":true}`})
	if w := e.do(call{method: "POST", path: "/v1/webhooks/endpoints/" + created.ID + "/recover", body: `{"since":"2026-03-01T00:00:00Z"}`}); w.Code != http.StatusConflict {
		t.Fatalf("recover of a disabled endpoint: %d %s", w.Code, w.Body)
	}
	// Delete; then 404 everywhere.
	if w := e.do(call{method: "DELETE", path: "/v1/webhooks/endpoints/" + created.ID}); w.Code != 200 {
		t.Fatalf("delete %d %s", w.Code, w.Body)
	}
	for _, c := range []call{
		{method: "GET", path: "/v1/webhooks/endpoints/" + created.ID},
		{method: "DELETE", path: "/v1/webhooks/endpoints/" + created.ID},
		{method: "PATCH", path: "/v1/webhooks/endpoints/" + created.ID, body: `{"description":"x"}`},
		{method: "GET", path: "/v1/webhooks/endpoints/" + created.ID + "/secret"},
		{method: "POST", path: "/v1/webhooks/endpoints/" + created.ID + "/secret/rotate"},
		{method: "GET", path: "/v1/webhooks/endpoints/" + created.ID + "/attempts"},
		{method: "GET", path: "/v1/webhooks/endpoints/nonsense"},
		{method: "GET", path: "/v1/webhooks/messages/msg_nope"},
		{method: "GET", path: "/v1/webhooks/messages/msg_nope/attempts"},
		{method: "POST", path: "/v1/webhooks/messages/msg_nope/endpoints/" + second.ID + "/resend"},
	} {
		if w := e.do(c); w.Code != http.StatusNotFound {
			t.Fatalf("%s %s: %d %s", c.method, c.path, w.Code, w.Body)
		}
	}
	// Every route needs the key.
	if w := e.do(call{method: "GET", path: "/v1/webhooks/endpoints", key: "-"}); w.Code != http.StatusUnauthorized {
		t.Fatalf("without a key: %d", w.Code)
	}
}

func TestWebhookEventTypesAndMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	types := decodeAs[api.WebhookEventTypes](t, e.do(call{method: "GET", path: "/v1/webhooks/event-types"}))
	if len(types.EventTypes) != 3 || types.EventTypes[2].Name != store.EventConnectionValidated || len(types.EventTypes[1].Example) == 0 {
		t.Fatalf("event types %+v", types)
	}
	co := e.company("Acme")
	ep := e.createEndpoint(`{"url":"https://hooks.example.com/checkd"}`)
	c := e.connection(co.ID, "user_good")
	e.clk.Advance(time.Minute)
	if _, err := e.st.UpdateDetails(context.Background(), c.ID, store.DetailsPatch{Name: ptr("renamed")}); err != nil {
		t.Fatal(err)
	}
	// Dispatch what the store wrote, as the daemon's dispatcher does.
	d, err := webhook.NewDispatcher(e.st, e.enq, webhook.DispatcherConfig{Consumer: "t", BatchSize: 10, Block: time.Millisecond,
		ClaimIdle: time.Minute, EnqueueConcurrency: 2, Retention: 24 * time.Hour, Timeout: time.Second, Clock: e.clk, Logger: logrus.New()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.EnsureEventGroup(context.Background(), webhook.Group); err != nil {
		t.Fatal(err)
	}
	if n, err := d.RunOnce(context.Background()); err != nil || n != 2 {
		t.Fatalf("dispatch: %d, %v", n, err)
	}
	all := decodeAs[store.WebhookMessagePage](t, e.do(call{method: "GET", path: "/v1/webhooks/messages"}))
	if len(all.Messages) != 2 || all.Messages[0].EventType != store.EventConnectionUpdated || all.Messages[1].EventType != store.EventConnectionCreated {
		t.Fatalf("messages newest first %+v", all)
	}
	one := decodeAs[store.WebhookMessagePage](t, e.do(call{method: "GET", path: "/v1/webhooks/messages?limit=1"}))
	rest := decodeAs[store.WebhookMessagePage](t, e.do(call{method: "GET", path: "/v1/webhooks/messages?limit=1&cursor=" + one.Next}))
	if len(one.Messages) != 1 || len(rest.Messages) != 1 || rest.Messages[0].ID != all.Messages[1].ID {
		t.Fatalf("paging %+v / %+v", one, rest)
	}
	created := decodeAs[store.WebhookMessagePage](t, e.do(call{method: "GET", path: "/v1/webhooks/messages?eventType=connection.created.v2&connectionId=" + c.ID}))
	if len(created.Messages) != 1 || created.Messages[0].ID != webhook.MessageID(c.ID, 1, store.EventConnectionCreated) {
		t.Fatalf("filtered %+v", created)
	}
	for _, q := range []string{"eventType=nope", "connectionId=xyz", "limit=0", "cursor=garbage"} {
		if w := e.do(call{method: "GET", path: "/v1/webhooks/messages?" + q}); w.Code != 400 {
			t.Fatalf("?%s: %d %s", q, w.Code, w.Body)
		}
	}
	m := decodeAs[store.WebhookMessage](t, e.do(call{method: "GET", path: "/v1/webhooks/messages/" + all.Messages[0].ID}))
	if m.DeliveryTo(ep.ID).Status != store.DeliveryPending || string(m.Payload) != string(all.Messages[0].Payload) {
		t.Fatalf("message %+v", m)
	}
	as := decodeAs[api.WebhookAttempts](t, e.do(call{method: "GET", path: "/v1/webhooks/messages/" + m.ID + "/attempts"}))
	if len(as.Attempts) != 0 {
		t.Fatalf("attempts before any %+v", as)
	}
	n := len(e.enq.Enqueued())
	if w := e.do(call{method: "POST", path: "/v1/webhooks/messages/" + m.ID + "/endpoints/" + ep.ID + "/resend"}); w.Code != http.StatusAccepted || len(e.enq.Enqueued()) != n+1 {
		t.Fatalf("resend %d %s", w.Code, w.Body)
	}
}

// FuzzWebhookEndpointCreate fuzzes the body of POST /v1/webhooks/endpoints.
func FuzzWebhookEndpointCreate(f *testing.F) {
	for _, s := range []string{
		goodEndpoint, `{"url":"https://hooks.example.com/"}`, `{"url":"https://hooks.example.com/","companyIds":["$CO"]}`,
		`{"url":"https://hooks.example.com/","disabled":true,"filterTypes":[]}`, `{"url":"http://hooks.example.com/"}`,
		`{"url":"https://internal.example.com/"}`, `{"url":"https://[::1]/"}`, `{"url":"https://169.254.169.254/latest"}`,
		`{"url":""}`, `{"url":null}`, `{"url":1}`, `{"url":"https://hooks.example.com/#frag"}`, `{"url":"https://hooks.example.com/\u0000"}`,
		`{"url":"https://hooks.example.com/","filterTypes":["x"]}`, `{"url":"https://hooks.example.com/","filterTypes":null}`,
		`{"url":"https://hooks.example.com/","companyIds":["co_x"]}`, `{"url":"https://hooks.example.com/","description":"` + strings.Repeat("d", 501) + `"}`,
		`{"url":"https://hooks.example.com/","description":"a\u001b[2Jb"}`, `{"url":"https://hooks.example.com/","id":"ep_x"}`,
		`{}`, `[]`, `{`, ``, `null`,
		// strict input: a field in another case, a field twice, text not UTF-8
		`{"URL":"https://hooks.example.com/"}`, `{"url":"https://a.example.com/","url":"https://b.example.com/"}`,
		"{\"url\":\"https://hooks.example.com/\",\"description\":\"a\xffb\"}", `{"url":"https://hooks.example.com/","description":"\ud800"}`,
	} {
		f.Add(s, "application/json")
	}
	f.Add(goodEndpoint, "text/plain")
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body, ct string) {
		fuzzSend(t, e, "POST", withCompany(t, e, "/v1/webhooks/endpoints"), body, ct, true)
	})
}

// fuzzEndpointRoute fuzzes a body sent to a route of a fresh endpoint
// ("$EP" in path).
func fuzzEndpointRoute(f *testing.F, method, path string, seeds []string) {
	for _, s := range seeds {
		f.Add(s, "application/json")
	}
	for _, s := range []string{`{}`, `[]`, `{`, ``, `null`, `"x"`, `{"a":1}`} {
		f.Add(s, "application/json")
	}
	f.Add(seeds[0], "text/plain")
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body, ct string) {
		fuzzSend(t, e, method, func() (string, *strings.Replacer) {
			ep, _, err := e.wh.CreateEndpoint(context.Background(), store.NewWebhookEndpoint{URL: "https://hooks.example.com/x"})
			if err != nil {
				t.Fatal(err)
			}
			return strings.ReplaceAll(path, "$EP", ep.ID), strings.NewReplacer("$EP", ep.ID)
		}, body, ct, false)
	})
}

func FuzzWebhookEndpointPatch(f *testing.F) {
	fuzzEndpointRoute(f, "PATCH", "/v1/webhooks/endpoints/$EP", []string{
		`{"disabled":true}`, `{"disabled":false}`, `{"url":"https://hooks.example.com/new"}`, `{"url":"http://hooks.example.com/"}`,
		`{"url":"https://internal.example.com/"}`, `{"filterTypes":["connection.validated.v2"]}`, `{"filterTypes":["x"]}`,
		`{"companyIds":[]}`, `{"companyIds":["co_0000000000000000"]}`, `{"description":""}`, `{"description":null}`,
		`{"secret":"whsec_x"}`, `{"disabled":true} {}`,
	})
}

func FuzzWebhookEndpointTest(f *testing.F) {
	fuzzEndpointRoute(f, "POST", "/v1/webhooks/endpoints/$EP/test", []string{
		`{"eventType":"connection.updated.v2"}`, `{"eventType":"connection.created.v2"}`, `{"eventType":""}`,
		`{"eventType":"connection.deleted.v2"}`, `{"eventType":1}`, `{"eventType":"connection.updated.v2","x":1}`,
	})
}

func FuzzWebhookEndpointRecover(f *testing.F) {
	fuzzEndpointRoute(f, "POST", "/v1/webhooks/endpoints/$EP/recover", []string{
		`{"since":"2026-03-01T00:00:00Z"}`, `{"since":"2026-03-01T00:00:00Z","until":"2026-03-02T00:00:00Z"}`,
		`{"since":"2026-03-01T00:00:00+02:00"}`, `{"since":"2026-03-02T00:00:00Z","until":"2026-03-01T00:00:00Z"}`,
		`{"since":"yesterday"}`, `{"until":"2026-03-01T00:00:00Z"}`, `{"since":20260301}`, `{"since":""}`,
	})
}

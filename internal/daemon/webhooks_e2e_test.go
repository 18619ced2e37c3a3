package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/daemon"
	"github.com/checkd/checkd/internal/testing/openapitest"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/webhook"
)

// received is one verified message of the receiver.
type received struct {
	id   string
	body []byte
	p    webhook.Payload
	raw  map[string]json.RawMessage // data's fields
}

// oldValue is the previous value of field in an update (nil: none).
func oldValue(m received, field string) json.RawMessage {
	if m.p.Data.Old == nil {
		return nil
	}
	return (*m.p.Data.Old)[field]
}

// TestWebhooksEndToEnd runs the daemon with every role on a real Redis:
// an endpoint created through the API receives, signed (verified with the
// reference library, timestamps included), connection.created.v2 for each
// connection created through the API, then, after their first check,
// connection.updated.v2 and connection.validated.v2 with the right
// payloads; a settings change makes one more update naming what changed.
// Each message's data is what GET details answers.
func TestWebhooksEndToEnd(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	o := rdb.Options()
	var mu sync.Mutex
	var got []received
	var secret string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(secret)
		if err == nil {
			err = wh.Verify(b, r.Header)
		}
		if err != nil {
			t.Errorf("a message does not verify: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var p webhook.Payload
		var top struct{ Data map[string]json.RawMessage }
		if err := json.Unmarshal(b, &p); err != nil || json.Unmarshal(b, &top) != nil {
			t.Errorf("body %s: %v", b, err)
		}
		openapitest.Webhook(t, p.Type, r.Header, b) // as api/openapi.json describes it
		got = append(got, received{id: r.Header.Get(webhook.HeaderID), body: b, p: p, raw: top.Data})
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)
	messages := func() []received { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) }

	cfg := baseConfig()
	cfg.RedisURL = fmt.Sprintf("redis://%s/%d", o.Addr, o.DB)
	cfg.EncryptionKey = testEncKey
	cfg.APIKeys = []string{testAPIKey}
	cfg.Tick = "@every 1h" // ticks are driven by hand
	cfg.Webhooks.AllowPrivate = true
	cfg.Webhooks.Dispatch.Block = 50 * time.Millisecond
	d, base := startDaemon(t, cfg, nil, daemon.Options{})
	ctx := context.Background()

	var ep api.WebhookEndpointCreated
	if code := doJSON(t, http.MethodPost, base+"/v1/webhooks/endpoints", testAPIKey,
		api.WebhookEndpointRequest{URL: &rcv.URL}, &ep); code != http.StatusCreated {
		t.Fatalf("create endpoint: %d", code)
	}
	mu.Lock()
	secret = ep.Secret
	mu.Unlock()
	var co store.Company
	if code := doJSON(t, http.MethodPost, base+"/v1/company", testAPIKey, api.CreateCompanyRequest{Name: "Acme"}, &co); code != http.StatusCreated {
		t.Fatalf("create company: %d", code)
	}
	ids := map[string]string{}
	for _, u := range []string{"user_good", "error_PASSWORD_INCORRECT"} {
		var c api.Connection
		if code := doJSON(t, http.MethodPost, base+"/v1/connection/company/"+co.ID, testAPIKey,
			api.CreateConnectionRequest{Datasource: "sandbox", Name: u, Credentials: &checks.Credentials{Username: u, Password: "pw"}}, &c); code != http.StatusCreated {
			t.Fatalf("create connection %s: %d", u, code)
		}
		ids[u] = c.ID
	}
	wait := func(n int, what string) []received {
		t.Helper()
		deadline := time.NewTimer(30 * time.Second)
		defer deadline.Stop()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for len(messages()) < n {
			select {
			case <-deadline.C:
				t.Fatalf("%s: %d messages after 30s, want %d: %v", what, len(messages()), n, messages())
			case <-tick.C:
			}
		}
		return messages()
	}
	created := wait(2, "creations")
	for _, m := range created {
		if m.p.Type != store.EventConnectionCreated || m.p.Data.Status != checks.ConnPending || m.p.Data.Sequence != 1 || m.p.Data.ProtectedChanges != nil {
			t.Fatalf("creation message %s", m.body)
		}
	}
	if _, err := d.Scheduler().Tick(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	all := wait(6, "first checks")
	byConn := map[string][]received{}
	for _, m := range all {
		byConn[m.p.Data.ID] = append(byConn[m.p.Data.ID], m)
	}
	for u, want := range map[string]checks.ConnectionStatus{"user_good": checks.ConnConnected, "error_PASSWORD_INCORRECT": checks.ConnPasswordIncorrect} {
		ms := byConn[ids[u]]
		slices.SortFunc(ms, func(a, b received) int { return strings.Compare(a.p.Type, b.p.Type) })
		if len(ms) != 3 || ms[1].p.Type != store.EventConnectionUpdated || ms[2].p.Type != store.EventConnectionValidated {
			t.Fatalf("%s: messages %v", u, ms)
		}
		up, val := ms[1], ms[2]
		if up.p.Data.Status != want || val.p.Data.Status != want || up.p.Data.Sequence != 2 || val.p.Data.Sequence != 2 ||
			val.p.Data.ProtectedChanges != nil || val.raw["old"] != nil {
			t.Fatalf("%s: update %s\nvalidation %s", u, up.body, val.body)
		}
		if string(oldValue(up, "status")) != `"PENDING"` || !slices.Contains(up.p.Data.ProtectedChanges, "status") ||
			!slices.Contains(up.p.Data.ProtectedChanges, "lastCheckAt") || up.id == val.id {
			t.Fatalf("%s: update %s", u, up.body)
		}
		if u == "user_good" && (!slices.Contains(up.p.Data.ProtectedChanges, "accounts") || len(up.p.Data.Accounts) != 2 || string(oldValue(up, "accounts")) != "[]") {
			t.Fatalf("user_good's update does not carry its accounts: %s", up.body)
		}
		// The data is GET details, field by field.
		var details map[string]json.RawMessage
		if code := getJSON(t, base+"/v1/connection/"+ids[u]+"/details", testAPIKey, &details); code != http.StatusOK {
			t.Fatal(code)
		}
		for k, v := range details {
			if !bytes.Equal(up.raw[k], v) || !bytes.Equal(val.raw[k], v) {
				t.Fatalf("%s: data.%s = %s / %s, GET details %s", u, k, up.raw[k], val.raw[k], v)
			}
		}
	}
	// A rename: one update naming it.
	if code := doJSON(t, http.MethodPatch, base+"/v1/connection/"+ids["user_good"]+"/details", testAPIKey,
		api.DetailsRequest{Name: new("Head office")}, nil); code != http.StatusOK {
		t.Fatalf("rename: %d", code)
	}
	last := wait(7, "the rename")[6]
	if last.p.Type != store.EventConnectionUpdated || !slices.Equal(last.p.Data.ProtectedChanges, []string{"name"}) ||
		string(oldValue(last, "name")) != `"user_good"` || last.p.Data.Name != "Head office" || last.p.Data.Sequence != 3 {
		t.Fatalf("rename message %s", last.body)
	}
	// The log of the endpoint and of a message.
	var page store.WebhookMessagePage
	if code := getJSON(t, base+"/v1/webhooks/messages?connectionId="+ids["user_good"], testAPIKey, &page); code != http.StatusOK || len(page.Messages) != 4 {
		t.Fatalf("messages of user_good: %d %+v", code, page)
	}
	var as api.WebhookAttempts
	if code := getJSON(t, base+"/v1/webhooks/messages/"+last.id+"/attempts", testAPIKey, &as); code != http.StatusOK ||
		len(as.Attempts) != 1 || as.Attempts[0].Status != store.DeliverySuccess || as.Attempts[0].ResponseStatusCode != 204 {
		t.Fatalf("attempts of %s: %d %+v", last.id, code, as)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set(api.HeaderAPIKey, testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`checkd_webhook_deliveries_total{endpoint="` + ep.ID + `",outcome="success"} 7`,
		`checkd_webhook_endpoints{state="enabled"} 1`, "checkd_webhook_messages_total 7", "checkd_webhook_dispatch_backlog 0",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

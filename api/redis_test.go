package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/testing/openapitest"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/internal/testing/testenv"
	"github.com/checkd/checkd/store"
)

// TestRealRedisFlow drives the whole API over HTTP against a real
// redis-server: create a company and connections, let checks land (as the
// worker records them), then list by status, read details and history.
func TestRealRedisFlow(t *testing.T) {
	t.Parallel()
	te := testenv.New(t, testenv.Options{Redis: redistest.Start(t).Client(t), Start: testNow})
	clk, st := te.Clock, te.Store
	srv, err := api.New(st, testConfig(func(c *api.Config) { c.Clock = clk }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	base := "http://" + srv.Addr()
	client := openapitest.Client(t)
	send := func(method, path, body string, wantCode int, out any) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(api.HeaderAPIKey, testKey)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := readAll(t, resp.Body)
		if resp.StatusCode != wantCode {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, wantCode)
		}
		if strings.Contains(b, secret) {
			t.Fatalf("%s %s answered the password: %s", method, path, b)
		}
		if err := json.Unmarshal([]byte(b), out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}

	var co store.Company
	send("POST", "/v1/company", `{"name":"Acme Utilities"}`, 201, &co)
	conns := map[string]api.Connection{}
	for _, user := range []string{"user_good", "error_PASSWORD_INCORRECT", "user_later"} {
		var c api.Connection
		send("POST", "/v1/connection/company/"+co.ID,
			`{"datasource":"sandbox","name":"`+user+`","credentials":{"username":"`+user+`","password":"`+secret+`"}}`, 201, &c)
		if c.Status != checks.ConnPending || c.NextCheckAt == nil || !c.NextCheckAt.Equal(testNow) {
			t.Fatalf("new connection %+v", c.Connection)
		}
		conns[user] = c
	}
	recordCheck(t, st, clk, conns["user_good"].ID, checks.Result{Status: checks.ConnConnected,
		Accounts: []checks.AccountResult{{Number: "100-200", Name: "Main St"}}})
	recordCheck(t, st, clk, conns["error_PASSWORD_INCORRECT"].ID, checks.Result{Status: checks.ConnPasswordIncorrect, Detail: "login rejected"})

	var page api.ConnectionPage
	send("GET", "/v1/connection/company/"+co.ID+"?status=PASSWORD_INCORRECT", "", 200, &page)
	if len(page.Connections) != 1 || page.Connections[0].ID != conns["error_PASSWORD_INCORRECT"].ID ||
		page.Connections[0].StatusErrorDetail != "login rejected" || !page.Connections[0].CanReconnect || page.Connections[0].CanRefresh {
		t.Fatalf("PASSWORD_INCORRECT page: %+v", page)
	}
	send("GET", "/v1/connection/company/"+co.ID+"?status=CONNECTED,PENDING&limit=1", "", 200, &page)
	if len(page.Connections) != 1 || page.Connections[0].Status != checks.ConnPending || page.NextCursor == "" {
		t.Fatalf("first page of CONNECTED,PENDING: %+v", page)
	}
	send("GET", "/v1/connection/company/"+co.ID+"?status=CONNECTED,PENDING&limit=1&cursor="+page.NextCursor, "", 200, &page)
	if len(page.Connections) != 1 || page.Connections[0].Status != checks.ConnConnected {
		t.Fatalf("second page of CONNECTED,PENDING: %+v", page)
	}

	var d api.Connection
	send("GET", "/v1/connection/"+conns["user_good"].ID+"/details", "", 200, &d)
	if d.Status != checks.ConnConnected || d.StatusDisplayName != "Connected" || d.LastSuccessAt == nil ||
		len(d.Accounts) != 1 || d.Accounts[0].AccountNumber != "100-200" || d.Accounts[0].Status != checks.AcctDetected ||
		d.Accounts[0].StatusDisplayName != "Detected" {
		t.Fatalf("details: %+v", d)
	}

	var h api.History
	send("GET", "/v1/connection/"+conns["error_PASSWORD_INCORRECT"].ID+"/history", "", 200, &h)
	if len(h.History) != 2 || h.History[0].To != string(checks.ConnPasswordIncorrect) || h.History[0].From != string(checks.ConnPending) ||
		h.History[1].Cause != store.CauseCreated {
		t.Fatalf("history: %+v", h.History)
	}
}

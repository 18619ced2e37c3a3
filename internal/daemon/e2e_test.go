package daemon_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/daemon"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/store"
)

// TestEndToEnd runs the daemon with every role on a real Redis and a fake
// clock shared by the store, worker, scheduler and API: connections created
// through the HTTP API are swept by a scheduler tick, checked by the worker
// through asynq, and their statuses read back through the API. A second
// tick one interval later re-checks the healthy and provider-error
// connections (statusFirstSeenTime kept, statusLastUpdateTime moved) and
// leaves the credential-blocked one alone.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	o := rdb.Options()

	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	cfg := baseConfig()
	cfg.RedisURL = fmt.Sprintf("redis://%s/%d", o.Addr, o.DB)
	cfg.EncryptionKey = testEncKey
	cfg.APIKeys = []string{testAPIKey}
	cfg.Tick = "@every 1h" // ticks are driven by hand below
	cfg.Store.AutoTrack = true
	d, err := daemon.New(cfg, quietLogger(t), daemon.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(stopCtx(t)); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	base := "http://" + d.API().Addr()

	var co store.Company
	if code := doJSON(t, http.MethodPost, base+"/v1/company", testAPIKey, api.CreateCompanyRequest{Name: "Acme"}, &co); code != http.StatusCreated {
		t.Fatalf("create company: %d", code)
	}
	users := []string{"user_good", "error_PASSWORD_INCORRECT", "error_WEBSITE_DOWN"}
	ids := map[string]string{} // username → connection ID
	for _, u := range users {
		var c api.Connection
		code := doJSON(t, http.MethodPost, base+"/v1/connection/company/"+co.ID, testAPIKey,
			api.CreateConnectionRequest{Datasource: "sandbox", Name: u, Credentials: &checks.Credentials{Username: u, Password: "pw"}}, &c)
		if code != http.StatusCreated || c.Status != checks.ConnPending {
			t.Fatalf("create connection %s: %d %+v", u, code, c)
		}
		ids[u] = c.ID
	}

	// First sweep: all three are due at once (PENDING gets a prompt check).
	stats, err := d.Scheduler().Tick(ctx, clk.Now())
	if err != nil || stats.Enqueued != 3 {
		t.Fatalf("first tick: %+v, %v; want 3 enqueued", stats, err)
	}
	first := waitFor(t, base, ids, func(c api.Connection) bool { return c.Status != checks.ConnPending })

	good, bad, down := first[ids["user_good"]], first[ids["error_PASSWORD_INCORRECT"]], first[ids["error_WEBSITE_DOWN"]]
	for _, tc := range []struct {
		c    api.Connection
		want checks.ConnectionStatus
	}{{good, checks.ConnConnected}, {bad, checks.ConnPasswordIncorrect}, {down, checks.ConnWebsiteDown}} {
		if tc.c.Status != tc.want || !tc.c.StatusFirstSeenTime.Equal(t0) || !tc.c.StatusLastUpdateTime.Equal(t0) {
			t.Errorf("after the first check %s: status %s first %s last %s, want %s at %s",
				tc.c.Name, tc.c.Status, tc.c.StatusFirstSeenTime, tc.c.StatusLastUpdateTime, tc.want, t0)
		}
	}
	if good.StatusErrorDetail != "" || bad.StatusErrorDetail == "" || down.StatusErrorDetail == "" {
		t.Errorf("details: good %q, password %q, website %q", good.StatusErrorDetail, bad.StatusErrorDetail, down.StatusErrorDetail)
	}
	if len(good.Accounts) != 2 {
		t.Fatalf("user_good accounts: %+v, want 2", good.Accounts)
	}
	for _, a := range good.Accounts {
		if a.Status != checks.AcctOnboarded || a.TrackingStatus != checks.TrackingEnabled || a.AccountNumber == "" {
			t.Errorf("discovered account %+v: want ONBOARDED and ENABLED (autoTrack)", a)
		}
	}
	if len(bad.Accounts) != 0 || len(down.Accounts) != 0 {
		t.Errorf("failed logins discovered accounts: %+v %+v", bad.Accounts, down.Accounts)
	}
	if bad.NextCheckAt != nil {
		t.Errorf("PASSWORD_INCORRECT connection still scheduled at %s", bad.NextCheckAt)
	}
	if good.NextCheckAt == nil || !good.NextCheckAt.After(t0) || good.NextCheckAt.After(t0.Add(cfg.CheckInterval)) {
		t.Errorf("next check of user_good at %v, want within one interval of %s", good.NextCheckAt, t0)
	}

	// One interval later every eligible connection is due again.
	t1 := clk.Advance(cfg.CheckInterval + time.Minute)
	stats, err = d.Scheduler().Tick(ctx, t1)
	if err != nil || stats.Claimed != 2 || stats.Enqueued != 2 {
		t.Fatalf("second tick: %+v, %v; want 2 claimed and enqueued (the credential-blocked one skipped)", stats, err)
	}
	recheck := map[string]string{"user_good": ids["user_good"], "error_WEBSITE_DOWN": ids["error_WEBSITE_DOWN"]}
	second := waitFor(t, base, recheck, func(c api.Connection) bool { return c.StatusLastUpdateTime.Equal(t1) })
	for _, c := range second {
		prev := first[c.ID]
		if c.Status != prev.Status || !c.StatusFirstSeenTime.Equal(t0) || !c.StatusLastUpdateTime.Equal(t1) {
			t.Errorf("repeated status of %s: %s first %s last %s; want %s, first seen kept at %s, last update %s",
				c.Name, c.Status, c.StatusFirstSeenTime, c.StatusLastUpdateTime, prev.Status, t0, t1)
		}
	}
	for _, a := range second[ids["user_good"]].Accounts {
		if a.Status != checks.AcctPullCompleted || !a.StatusFirstSeenTime.Equal(t1) {
			t.Errorf("tracked account %+v after the second check: want PULL_COMPLETED since %s", a, t1)
		}
	}

	// The credential-blocked connection was neither enqueued nor checked.
	var after api.Connection
	if code := getJSON(t, base+"/v1/connection/"+ids["error_PASSWORD_INCORRECT"]+"/details", testAPIKey, &after); code != http.StatusOK {
		t.Fatalf("get blocked connection: %d", code)
	}
	if after.Status != checks.ConnPasswordIncorrect || !after.StatusLastUpdateTime.Equal(t0) ||
		after.LastCheckAt == nil || !after.LastCheckAt.Equal(t0) {
		t.Errorf("credential-blocked connection changed: %s last update %s last check %v",
			after.Status, after.StatusLastUpdateTime, after.LastCheckAt)
	}
	var hist api.History
	if code := getJSON(t, base+"/v1/connection/"+ids["error_PASSWORD_INCORRECT"]+"/history", testAPIKey, &hist); code != http.StatusOK || len(hist.History) != 2 {
		t.Errorf("blocked connection history: %d %+v; want created and one check", code, hist.History)
	}
	if stats, err := d.Scheduler().Tick(ctx, clk.Advance(cfg.CheckInterval)); err != nil || stats.Claimed != 2 {
		t.Errorf("third tick: %+v, %v; want only the 2 eligible connections claimed", stats, err)
	}
}

// waitFor polls the API until done holds for every connection of ids, and
// returns them by ID. It fails the test after a deadline.
func waitFor(t *testing.T, base string, ids map[string]string, done func(api.Connection) bool) map[string]api.Connection {
	t.Helper()
	var got map[string]api.Connection
	poll.WaitFor(t, 30*time.Second, fmt.Sprintf("%d connections to be checked", len(ids)), func() bool {
		got = map[string]api.Connection{}
		for _, id := range ids {
			var c api.Connection
			if code := getJSON(t, base+"/v1/connection/"+id+"/details", testAPIKey, &c); code != http.StatusOK {
				t.Fatalf("get connection %s: %d", id, code)
			}
			if done(c) {
				got[id] = c
			}
		}
		return len(got) == len(ids)
	})
	return got
}

// apiCompany creates a company through the API.
func apiCompany(t *testing.T, base, name string) store.Company {
	t.Helper()
	var co store.Company
	if code := doJSON(t, http.MethodPost, base+"/v1/company", testAPIKey, api.CreateCompanyRequest{Name: name}, &co); code != http.StatusCreated {
		t.Fatalf("create company %q: %d", name, code)
	}
	return co
}

// apiConnections creates n user_good sandbox connections of a company
// through the API and returns their IDs, keyed "0", "1", ...
func apiConnections(t *testing.T, base, companyID string, n int) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for i := range n {
		var c api.Connection
		if code := doJSON(t, http.MethodPost, base+"/v1/connection/company/"+companyID, testAPIKey, api.CreateConnectionRequest{
			Datasource: "sandbox", Credentials: &checks.Credentials{Username: "user_good", Password: "pw"}}, &c); code != http.StatusCreated {
			t.Fatalf("create connection: %d", code)
		}
		ids[fmt.Sprint(i)] = c.ID
	}
	return ids
}

package ctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/ctl"
	"github.com/checkd/checkd/internal/link"
	"github.com/checkd/checkd/internal/testing/openapitest"
	"github.com/checkd/checkd/store"
)

const realSecret = "Real-Secret-pw-42"

// realAPI is checkd's own api.Server over miniredis, with a task queue, a
// queue inspector and a link signer, so checkctl is tested against the
// routes it calls rather than against its own idea of them, and every
// exchange is checked against the OpenAPI document.
func realAPI(t *testing.T) string {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	clk := clock.NewFake(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	key, err := store.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cipher, err := store.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	stCfg := configs.Default().StoreConfig()
	stCfg.Cipher, stCfg.Clock = cipher, clk
	st, err := store.New(rdb, stCfg)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := link.NewSigner(link.DeriveKey(key), time.Hour, clk)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(&bytes.Buffer{})
	srv, err := api.New(st, api.Config{
		Addr:           "127.0.0.1:0",
		MaxBodyBytes:   configs.Default().MaxBodyBytes,
		RequestTimeout: configs.Default().RequestTimeout,
		APIKeys:        []string{testKey},
		Datasources:    func() []string { return []string{"sandbox"} },
		Logger:         log,
		Clock:          clk,
		Enqueuer:       asynq.NewClientFromRedisClient(rdb),
		Inspector:      asynq.NewInspectorFromRedisClient(rdb),
		Links:          signer,
		PublicURL:      "https://checkd.example.com",
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(openapitest.Handler(t, srv.Handler()))
	t.Cleanup(hs.Close)
	return hs.URL
}

// cli runs checkctl against url and returns stdout, stderr and the code.
func cli(t *testing.T, url, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := ctl.Run(context.Background(), append([]string{"--url", url, "--api-key", testKey}, args...), ctl.Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	if strings.Contains(out.String()+errb.String(), realSecret) {
		t.Fatalf("checkctl %v printed the connection's password", args)
	}
	return out.String(), errb.String(), code
}

// mustCLI runs a command that must succeed.
func mustCLI(t *testing.T, url, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := cli(t, url, stdin, args...)
	if code != ctl.ExitOK {
		t.Fatalf("checkctl %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	return out
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("--output json printed something that is not JSON: %v\n%s", err, s)
	}
}

func contains(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("%s: output lacks %q:\n%s", what, s, out)
		}
	}
}

func TestAgainstRealAPICreateListShow(t *testing.T) {
	url := realAPI(t)

	var co struct{ ID, Name string }
	decodeJSON(t, mustCLI(t, url, "", "company", "create", "Acme Corp", "--output", "json"), &co)
	if !store.ValidID(store.CompanyIDPrefix, co.ID) || co.Name != "Acme Corp" {
		t.Fatalf("company create returned %+v", co)
	}
	contains(t, "companies list", mustCLI(t, url, "", "companies", "list"), "ID", co.ID, "Acme Corp", "yes")
	contains(t, "company show", mustCLI(t, url+"/v1", "", "company", "show", co.ID), "ID:", co.ID, "Name:", "Acme Corp", "Active:", "yes")
	if _, errOut, code := cli(t, url, "", "company", "show", "co_0000000000000000", "-o", "json"); code != ctl.ExitNotFound ||
		!strings.Contains(errOut, `"code": "not_found"`) || !strings.Contains(errOut, "checkctl companies list") {
		t.Errorf("company show of an unknown company -o json: exit %d, stderr %s", code, errOut)
	}

	var cn struct {
		ID, Status, Name string
		CompanyID        string `json:"companyId"`
		Datasource       struct{ Name string }
	}
	decodeJSON(t, mustCLI(t, url, realSecret+"\n", "connection", "create", co.ID, "--datasource", "sandbox",
		"--username", "user_good", "--password-stdin", "--name", "Main office", "--output", "json"), &cn)
	if !store.ValidID(store.ConnectionIDPrefix, cn.ID) || cn.Status != "PENDING" || cn.CompanyID != co.ID ||
		cn.Datasource.Name != "sandbox" || cn.Name != "Main office" {
		t.Fatalf("connection create returned %+v", cn)
	}

	contains(t, "connections list", mustCLI(t, url, "", "connections", "list", co.ID), cn.ID, "Main office", "sandbox", "PENDING", "yes")
	if out := mustCLI(t, url, "", "connections", "list", co.ID, "--status", "CONNECTED,WEBSITE_DOWN"); strings.Contains(out, cn.ID) {
		t.Errorf("a status filter without PENDING listed the PENDING connection:\n%s", out)
	}
	var page struct {
		Connections []struct{ ID string }
		NextCursor  string `json:"nextCursor"`
	}
	decodeJSON(t, mustCLI(t, url, "", "connections", "list", co.ID, "--all", "--limit", "1", "--output", "json"), &page)
	if len(page.Connections) != 1 || page.Connections[0].ID != cn.ID || page.NextCursor != "" {
		t.Errorf("connections list --all = %+v", page)
	}

	contains(t, "connection show", mustCLI(t, url, "", "connection", "show", cn.ID),
		"ID:", cn.ID, "Company:", co.ID, "PENDING (Pending)", "Next check:", "2026-03-02T10:00:00Z", "No accounts yet.")
	contains(t, "connection history", mustCLI(t, url, "", "connection", "history", cn.ID), "PENDING", "created")
	contains(t, "statuses", mustCLI(t, url, "", "statuses"), "PASSWORD_INCORRECT", "Password Incorrect", "Datasources: sandbox")

	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"connection", "show", "cn_0000000000000000"}, ctl.ExitNotFound, "not found"},
		{[]string{"connections", "list", "co_0000000000000000"}, ctl.ExitNotFound, "not found"},
		{[]string{"connections", "list", co.ID, "--status", "NOPE"}, ctl.ExitError, "NOPE"},
	} {
		if _, errOut, code := cli(t, url, "", tc.args...); code != tc.code || !strings.Contains(errOut, tc.err) {
			t.Errorf("checkctl %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.err)
		}
	}
	if _, errOut, code := cli(t, url, "", "connection", "create", co.ID, "--datasource", "nope", "--username", "u", "--password", "p"); code != ctl.ExitError || !strings.Contains(errOut, "sandbox") {
		t.Errorf("unknown datasource: exit %d, stderr %q; want 1 naming the valid ones", code, errOut)
	}
}

func TestAgainstRealAPIAdmin(t *testing.T) {
	url := realAPI(t)
	var co struct{ ID string }
	decodeJSON(t, mustCLI(t, url, "", "company", "create", "Acme", "--output", "json"), &co)
	var cn struct{ ID string }
	decodeJSON(t, mustCLI(t, url, "", "connection", "create", co.ID, "--datasource", "sandbox", "--username", "user_good",
		"--password", realSecret, "--output", "json"), &cn)

	contains(t, "set", mustCLI(t, url, "", "connection", "set", cn.ID, "--name", "HQ", "--start-date", "2025-01-01", "--occupancy", "2.5"),
		"Name:            HQ", "Start date:      2025-01-01", "Occupancy:       2.5")
	contains(t, "deactivate", mustCLI(t, url, "", "connection", "deactivate", cn.ID), "DEACTIVATED", "Active:          no")
	if _, errOut, code := cli(t, url, "", "connection", "refresh", cn.ID); code != ctl.ExitConflict || errOut == "" {
		t.Errorf("refresh of a deactivated connection: exit %d, stderr %q; want %d", code, errOut, ctl.ExitConflict)
	}
	contains(t, "reactivate", mustCLI(t, url, "", "connection", "reactivate", cn.ID), "PENDING", "Check enqueued:  yes (task check:"+cn.ID)
	contains(t, "refresh while queued", mustCLI(t, url, "", "connection", "refresh", cn.ID), "check not enqueued: ")
	contains(t, "queues list", mustCLI(t, url, "", "queues", "list"), "critical  1     1")
	contains(t, "queues pause", mustCLI(t, url, "", "queues", "pause", "critical"), "critical", "yes")
	contains(t, "queues resume", mustCLI(t, url, "", "queues", "resume", "critical"), "critical", "no")
	if _, errOut, code := cli(t, url, "", "queues", "pause", "nope"); code != ctl.ExitNotFound {
		t.Errorf("pause unknown queue: exit %d, stderr %q; want %d", code, errOut, ctl.ExitNotFound)
	}
	contains(t, "credentials", mustCLI(t, url, realSecret+"2\n", "connection", "credentials", cn.ID, "--username", "user_good", "--password-stdin"), cn.ID)
	contains(t, "link", mustCLI(t, url, "", "connection", "link", cn.ID), "URL:", "https://checkd.example.com/link#", "Expires:")
	contains(t, "company link", mustCLI(t, url, "", "company", "link", co.ID), "URL:", "https://checkd.example.com/link#", "Expires:")
	if _, errOut, code := cli(t, url, "", "accounts", "confirm", cn.ID, "ac_0000000000000000"); code != ctl.ExitError ||
		!strings.Contains(errOut, "  ac_0000000000000000: ") {
		t.Errorf("confirming an unknown account: exit %d, stderr %q; want 1 naming the account", code, errOut)
	}
	contains(t, "company deactivate", mustCLI(t, url, "", "company", "deactivate", co.ID), "no", "connections updated: 1")
	contains(t, "show inactive", mustCLI(t, url, "", "connection", "show", cn.ID), "COMPANY_INACTIVE")
	contains(t, "company reactivate", mustCLI(t, url, "", "company", "reactivate", co.ID), "yes", "connections updated: 1")
}

// TestAgainstRealAPIKeys: checkctl keys create prints the key once, list
// shows it without the secret, the key works with its scopes only, and
// delete revokes it.
func TestAgainstRealAPIKeys(t *testing.T) {
	url := realAPI(t)
	var co struct{ ID string }
	decodeJSON(t, mustCLI(t, url, "", "company", "create", "Acme", "--output", "json"), &co)
	out := mustCLI(t, url, "", "keys", "create", "reporting", "--scope", "read", "--company", co.ID)
	contains(t, "keys create", out, "name:      reporting", "scopes:    read", "companies: "+co.ID, "cannot show it again")
	_, secret, ok := strings.Cut(out, "key:       ")
	secret, _, _ = strings.Cut(secret, "\n")
	if !ok || !strings.HasPrefix(secret, store.APIKeyPrefix) {
		t.Fatalf("keys create printed no key:\n%s", out)
	}
	list := mustCLI(t, url, "", "keys", "list")
	contains(t, "keys list", list, "NAME", "reporting", "read", co.ID)
	if strings.Contains(list, secret) {
		t.Errorf("keys list shows the secret:\n%s", list)
	}
	// The new key reads, and is refused what its scope does not allow.
	as := func(args ...string) (string, string, int) {
		var o, e bytes.Buffer
		code := ctl.Run(context.Background(), append([]string{"--url", url, "--api-key", secret}, args...), ctl.Env{
			Stdin: strings.NewReader(""), Stdout: &o, Stderr: &e, Getenv: func(string) string { return "" }})
		return o.String(), e.String(), code
	}
	if o, e, code := as("company", "show", co.ID); code != ctl.ExitOK || !strings.Contains(o, "Acme") {
		t.Errorf("company show with the read key: exit %d\n%s%s", code, o, e)
	}
	if _, e, code := as("company", "create", "Other"); code != ctl.ExitError || !strings.Contains(e, "lacks the write scope") {
		t.Errorf("company create with the read key: exit %d, stderr %q; want 1 and the 403", code, e)
	}
	contains(t, "keys delete", mustCLI(t, url, "", "keys", "delete", "reporting"), "reporting deleted")
	if _, e, code := as("company", "show", co.ID); code != ctl.ExitError || !strings.Contains(e, "deleted") {
		t.Errorf("the deleted key: exit %d, stderr %q; want 1 and the 401", code, e)
	}
	if _, e, code := cli(t, url, "", "keys", "delete", "reporting"); code != ctl.ExitNotFound || !strings.Contains(e, "checkctl keys list") {
		t.Errorf("deleting it again: exit %d, stderr %q; want %d with the hint", code, e, ctl.ExitNotFound)
	}
	if _, _, code := cli(t, url, "", "keys", "create", "x"); code != ctl.ExitUsage {
		t.Errorf("keys create without --scope: exit %d, want %d", code, ctl.ExitUsage)
	}
}

package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/store"
)

const (
	unknownCompany    = "co_0000000000000000"
	unknownConnection = "cn_0000000000000000"
)

// errorCase is a request that must fail with status and code, with msg in
// the message, and write nothing.
type errorCase struct {
	name   string
	call   call
	status int
	code   string
	msg    []string
}

func (e *env) runErrorCases(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, tc := range cases {
		before := e.dump()
		w := e.do(tc.call)
		if w.Code != tc.status {
			t.Errorf("%s: status %d, want %d; body %s", tc.name, w.Code, tc.status, w.Body)
			continue
		}
		got := decodeAs[api.ErrorResponse](t, w)
		if got.Error.Code != tc.code {
			t.Errorf("%s: code %q, want %q", tc.name, got.Error.Code, tc.code)
		}
		for _, m := range tc.msg {
			if !strings.Contains(got.Error.Message, m) {
				t.Errorf("%s: message %q does not mention %q", tc.name, got.Error.Message, m)
			}
		}
		if after := e.dump(); after != before {
			t.Errorf("%s: a %d wrote to Redis:\nbefore:\n%s\nafter:\n%s", tc.name, w.Code, before, after)
		}
		e.assertNoSecret(w.Body.String())
	}
}

func TestHealthzNeedsNoKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := e.do(call{method: "GET", path: "/healthz", key: "-"})
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if got := decodeAs[map[string]string](t, w); got["status"] != "ok" {
		t.Errorf("body %v, want status ok", got)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	cn := e.connection(co.ID, "user_good")
	routes := []call{
		{method: "POST", path: "/v1/company", body: `{"name":"X"}`},
		{method: "GET", path: "/v1/company"},
		{method: "GET", path: "/v1/company/" + co.ID},
		{method: "POST", path: "/v1/connection/company/" + co.ID,
			body: `{"datasource":"sandbox","credentials":{"username":"user_good","password":"` + secret + `"}}`},
		{method: "GET", path: "/v1/connection/company/" + co.ID},
		{method: "GET", path: "/v1/connection/" + cn.ID + "/details"},
		{method: "GET", path: "/v1/connection/" + cn.ID + "/history"},
		{method: "GET", path: "/v1/statuses"},
	}
	var cases []errorCase
	for _, r := range routes {
		missing, wrong, near := r, r, r
		missing.key, wrong.key, near.key = "-", "wrong-key", testKey+"x"
		cases = append(cases,
			errorCase{name: "no key " + r.method + " " + r.path, call: missing, status: 401, code: api.CodeUnauthorized, msg: []string{"X-API-Key", "missing"}},
			errorCase{name: "wrong key " + r.method + " " + r.path, call: wrong, status: 401, code: api.CodeUnauthorized, msg: []string{"X-API-Key", "does not match"}},
			errorCase{name: "key prefix " + r.method + " " + r.path, call: near, status: 401, code: api.CodeUnauthorized, msg: []string{"X-API-Key"}},
		)
	}
	e.runErrorCases(t, cases)
	for _, r := range routes {
		r.key = otherKey // every configured key is accepted
		if w := e.do(r); w.Code/100 != 2 {
			t.Errorf("%s %s with the second key: %d %s", r.method, r.path, w.Code, w.Body)
		}
	}
}

func TestCompanies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	for _, tc := range []struct{ name, ct, body, want string }{
		{"json", "application/json", `{"name":"Acme"}`, "Acme"},
		{"json with charset", "application/json; charset=utf-8", `{"name":"  Globex  "}`, "Globex"},
		{"no content type", "-", `{"name":"Initech"}`, "Initech"},
		{"trailing whitespace", "", "{\"name\":\"Umbrella\"}\n\t ", "Umbrella"},
	} {
		w := e.do(call{method: "POST", path: "/v1/company", body: tc.body, ct: tc.ct})
		if w.Code != http.StatusCreated {
			t.Fatalf("%s: status %d: %s", tc.name, w.Code, w.Body)
		}
		co := decodeAs[store.Company](t, w)
		if co.Name != tc.want || !co.IsActive || !co.CreatedAt.Equal(testNow) || !store.ValidID(store.CompanyIDPrefix, co.ID) {
			t.Errorf("%s: created %+v", tc.name, co)
		}
		if loc := w.Header().Get("Location"); loc != "/v1/company/"+co.ID {
			t.Errorf("%s: Location %q", tc.name, loc)
		}
		w = e.do(call{method: "GET", path: "/v1/company/" + co.ID})
		if got := decodeAs[store.Company](t, w); w.Code != 200 || got != co {
			t.Errorf("%s: GET %d %+v, want %+v", tc.name, w.Code, got, co)
		}
	}

	// A company that decides its own tracking says so; the others leave
	// autoTrack out.
	w := e.do(call{method: "POST", path: "/v1/company", body: `{"name":"Hooli","autoTrack":false}`})
	manual := decodeAs[store.Company](t, w)
	if w.Code != http.StatusCreated || manual.AutoTrack == nil || *manual.AutoTrack || !strings.Contains(w.Body.String(), `"autoTrack":false`) {
		t.Fatalf("company with autoTrack false: %d %s", w.Code, w.Body)
	}
	if w = e.do(call{method: "GET", path: "/v1/company/" + manual.ID}); !strings.Contains(w.Body.String(), `"autoTrack":false`) {
		t.Fatalf("GET a company with autoTrack false: %s", w.Body)
	}
	if w = e.do(call{method: "GET", path: "/v1/company"}); strings.Count(w.Body.String(), `"autoTrack"`) != 1 {
		t.Fatalf("only Hooli decides its tracking: %s", w.Body)
	}

	w = e.do(call{method: "GET", path: "/v1/company"})
	list := decodeAs[api.CompanyList](t, w)
	var names []string
	for _, c := range list.Companies {
		names = append(names, c.Name)
	}
	if w.Code != 200 || len(names) != 5 || !slices.Contains(names, "Acme") || !slices.Contains(names, "Umbrella") {
		t.Errorf("list: %d %v", w.Code, names)
	}

	big := `{"name":"` + strings.Repeat("x", 5000) + `"}`
	e.runErrorCases(t, []errorCase{
		{"unknown company", call{method: "GET", path: "/v1/company/" + unknownCompany}, 404, api.CodeNotFound, []string{unknownCompany, "not found", "GET /v1/company"}},
		{"malformed company id", call{method: "GET", path: "/v1/company/nope"}, 404, api.CodeNotFound, []string{"not found"}},
		{"empty body", call{method: "POST", path: "/v1/company"}, 400, api.CodeInvalidRequest, []string{"empty"}},
		{"truncated", call{method: "POST", path: "/v1/company", body: `{"name":`}, 400, api.CodeInvalidRequest, []string{"truncated"}},
		{"syntax", call{method: "POST", path: "/v1/company", body: `{name}`}, 400, api.CodeInvalidRequest, []string{"not valid JSON"}},
		{"unknown field", call{method: "POST", path: "/v1/company", body: `{"nmae":"Acme"}`}, 400, api.CodeInvalidRequest, []string{`unknown field "nmae"`, "valid fields are name"}},
		{"trailing object", call{method: "POST", path: "/v1/company", body: `{"name":"a"}{"name":"b"}`}, 400, api.CodeInvalidRequest, []string{"after the JSON object"}},
		{"trailing garbage", call{method: "POST", path: "/v1/company", body: `{"name":"a"} x`}, 400, api.CodeInvalidRequest, []string{"after the JSON object"}},
		{"missing name", call{method: "POST", path: "/v1/company", body: `{}`}, 400, api.CodeInvalidRequest, []string{"name is required"}},
		{"blank name", call{method: "POST", path: "/v1/company", body: `{"name":" \t"}`}, 400, api.CodeInvalidRequest, []string{"name is required"}},
		{"null", call{method: "POST", path: "/v1/company", body: `null`}, 400, api.CodeInvalidRequest, []string{"name is required"}},
		{"array", call{method: "POST", path: "/v1/company", body: `[{"name":"a"}]`}, 400, api.CodeInvalidRequest, []string{"JSON array", "send a JSON object"}},
		{"wrong type", call{method: "POST", path: "/v1/company", body: `{"name":42}`}, 400, api.CodeInvalidRequest, []string{`field "name" has a JSON number where a string is expected`}},
		{"name too long", call{method: "POST", path: "/v1/company", body: `{"name":"` + strings.Repeat("n", store.MaxNameLen+1) + `"}`}, 400, api.CodeInvalidRequest, []string{"at most 200"}},
		{"escape sequence in the name", call{method: "POST", path: "/v1/company", body: `{"name":"Acme\u001b[8m"}`}, 400, api.CodeInvalidRequest, []string{"control characters"}},
		{"direction override in the name", call{method: "POST", path: "/v1/company", body: `{"name":"Acme\u202eemcA"}`}, 400, api.CodeInvalidRequest, []string{"direction overrides"}},
		{"too large", call{method: "POST", path: "/v1/company", body: big}, 413, api.CodePayloadTooLarge, []string{"4096 bytes"}},
		{"too large, unknown length", call{method: "POST", path: "/v1/company", body: big, chunked: true}, 413, api.CodePayloadTooLarge, []string{"4096 bytes"}},
		{"padding past the limit", call{method: "POST", path: "/v1/company", body: `{"name":"a"}` + strings.Repeat(" ", 5000), chunked: true}, 413, api.CodePayloadTooLarge, []string{"larger than"}},
		{"text/plain", call{method: "POST", path: "/v1/company", body: `{"name":"a"}`, ct: "text/plain"}, 415, api.CodeUnsupportedMediaType, []string{"text/plain", "application/json"}},
		{"form", call{method: "POST", path: "/v1/company", body: `name=a`, ct: "application/x-www-form-urlencoded"}, 415, api.CodeUnsupportedMediaType, []string{"application/json"}},
		{"bad media type", call{method: "POST", path: "/v1/company", body: `{"name":"a"}`, ct: "application/json; ="}, 415, api.CodeUnsupportedMediaType, []string{"application/json"}},
	})
}

const goodConnection = `{"datasource":"sandbox","name":"Electric","credentials":{"username":"user_good","password":"` + secret + `"}}`

// TestCreateConnectionDatasourceForms: a request may name the datasource
// bare or as the object answers carry, so an answer can be sent back.
func TestCreateConnectionDatasourceForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	for _, ds := range []string{`"sandbox"`, `{"name":"sandbox"}`, ` { "name" : "sandbox" } `} {
		w := e.do(call{method: "POST", path: "/v1/connection/company/" + co.ID, body: `{"datasource":` + ds + `,"credentials":{"username":"user_good"}}`})
		if w.Code != http.StatusCreated {
			t.Fatalf("datasource %s: %d %s", ds, w.Code, w.Body)
		}
		if c := decodeAs[api.Connection](t, w); c.Datasource.Name != "sandbox" {
			t.Fatalf("datasource %s: created %+v", ds, c.Datasource)
		}
	}
}

func TestCreateConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	path := "/v1/connection/company/" + co.ID

	w := e.do(call{method: "POST", path: path, body: goodConnection})
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	e.assertNoSecret(w.Body.String())
	raw := decodeAs[map[string]any](t, w)
	for _, k := range []string{"credentials", "password", "username"} {
		if _, ok := raw[k]; ok {
			t.Errorf("response has field %q", k)
		}
	}
	if ds, _ := raw["datasource"].(map[string]any); ds["name"] != "sandbox" { // seed 001: datasource.name
		t.Errorf("datasource = %#v, want {\"name\":\"sandbox\"}", raw["datasource"])
	}
	c := decodeAs[api.Connection](t, w)
	info, _ := checks.ConnPending.Info()
	switch {
	case !store.ValidID(store.ConnectionIDPrefix, c.ID), c.CompanyID != co.ID, c.Datasource.Name != "sandbox", c.Name != "Electric", !c.IsActive:
		t.Errorf("identity fields: %+v", c.Connection)
	case c.Status != checks.ConnPending, !c.StatusFirstSeenTime.Equal(testNow), !c.StatusLastUpdateTime.Equal(testNow), c.StatusErrorDetail != "":
		t.Errorf("status fields: %+v", c.Connection)
	case c.NextCheckAt == nil || !c.NextCheckAt.Equal(testNow):
		t.Errorf("nextCheckAt = %v, want now (%v): the first check runs on the next tick", c.NextCheckAt, testNow)
	case c.LastCheckAt != nil, c.LastSuccessAt != nil, c.ConsecutiveFailures != 0:
		t.Errorf("check fields of a new connection: %+v", c.Connection)
	case c.StatusDisplayName != "Pending", c.StatusCategory != checks.CategoryHealthy, c.StatusReason != info.Reason, !c.CanRefresh, c.CanReconnect:
		t.Errorf("derived fields: %+v", c.StatusInfo)
	case c.Accounts == nil || len(c.Accounts) != 0:
		t.Errorf("accounts = %#v, want []", c.Accounts)
	}
	if loc := w.Header().Get("Location"); loc != "/v1/connection/"+c.ID+"/details" {
		t.Errorf("Location %q", loc)
	}
	// The credentials were stored (encrypted) for the worker.
	tg, err := e.st.LoadCheck(context.Background(), c.ID)
	if err != nil || tg.Request.Credentials.Username != "user_good" || tg.Request.Credentials.Password != secret {
		t.Errorf("stored credentials: %v, %v", tg, err)
	}
	if strings.Contains(e.mr.Dump(), secret) {
		t.Error("the password is stored in clear")
	}

	cred := func(s string) string { return `{"datasource":"sandbox","credentials":` + s + `}` }
	extra := map[string]string{}
	for i := range 17 {
		extra[string(rune('a'+i))] = "v"
	}
	extraJSON, _ := json.Marshal(map[string]any{"datasource": "sandbox", "credentials": map[string]any{"username": "u", "extra": extra}})
	e.runErrorCases(t, []errorCase{
		{"unknown datasource", call{method: "POST", path: path, body: `{"datasource":"nope","credentials":{"username":"u","password":"` + secret + `"}}`}, 400, api.CodeInvalidRequest,
			[]string{`unknown datasource "nope"`, "sandbox, webportal"}},
		{"missing datasource", call{method: "POST", path: path, body: `{"credentials":{"username":"u"}}`}, 400, api.CodeInvalidRequest,
			[]string{"datasource is required", "sandbox, webportal"}},
		{"missing credentials", call{method: "POST", path: path, body: `{"datasource":"sandbox"}`}, 400, api.CodeInvalidRequest, []string{"credentials is required"}},
		{"null credentials", call{method: "POST", path: path, body: cred(`null`)}, 400, api.CodeInvalidRequest, []string{"credentials is required"}},
		{"missing username", call{method: "POST", path: path, body: cred(`{"password":"` + secret + `"}`)}, 400, api.CodeInvalidRequest, []string{"credentials.username is required"}},
		{"blank username", call{method: "POST", path: path, body: cred(`{"username":"  ","password":"p"}`)}, 400, api.CodeInvalidRequest, []string{"credentials.username is required"}},
		{"every problem at once", call{method: "POST", path: path, body: `{"datasource":"x"}`}, 400, api.CodeInvalidRequest, []string{"unknown datasource", "credentials is required"}},
		{"unknown nested field", call{method: "POST", path: path, body: cred(`{"username":"u","pin":"1234"}`)}, 400, api.CodeInvalidRequest,
			[]string{`unknown field "pin"`, "credentials.username", "credentials.password", "credentials.extra"}},
		{"unknown top field", call{method: "POST", path: path, body: `{"datasource":"sandbox","credentials":{"username":"u"},"sites":[1]}`}, 400, api.CodeInvalidRequest, []string{`unknown field "sites"`}},
		{"credentials not an object", call{method: "POST", path: path, body: cred(`"user:pass"`)}, 400, api.CodeInvalidRequest, []string{`field "credentials" has a JSON string where an object is expected`}},
		{"extra not strings", call{method: "POST", path: path, body: cred(`{"username":"u","extra":{"pin":1}}`)}, 400, api.CodeInvalidRequest, []string{`field "credentials.extra" has a JSON number where a string is expected`}},
		{"too many extras", call{method: "POST", path: path, body: string(extraJSON)}, 400, api.CodeInvalidRequest, []string{"at most 16"}},
		{"username too long", call{method: "POST", path: path, body: cred(`{"username":"` + strings.Repeat("u", store.MaxCredentialLen+1) + `"}`)}, 400, api.CodeInvalidRequest, []string{"at most 1024"}},
		{"datasource a number", call{method: "POST", path: path, body: `{"datasource":7,"credentials":{"username":"u"}}`}, 400, api.CodeInvalidRequest, []string{`field "datasource" has a JSON number where a string is expected`}},
		{"datasource object with an unknown field", call{method: "POST", path: path, body: `{"datasource":{"name":"sandbox","id":1},"credentials":{"username":"u"}}`}, 400, api.CodeInvalidRequest, []string{`unknown field "id"`}},
		{"datasource object of an unknown name", call{method: "POST", path: path, body: `{"datasource":{"name":"nope"},"credentials":{"username":"u"}}`}, 400, api.CodeInvalidRequest, []string{"nope"}},
		{"newline in the name", call{method: "POST", path: path, body: `{"datasource":"sandbox","name":"a\nb","credentials":{"username":"u"}}`}, 400, api.CodeInvalidRequest, []string{"control characters"}},
		{"trailing data", call{method: "POST", path: path, body: goodConnection + `{}`}, 400, api.CodeInvalidRequest, []string{"after the JSON object"}},
		{"unknown company", call{method: "POST", path: "/v1/connection/company/" + unknownCompany, body: goodConnection}, 404, api.CodeNotFound, []string{unknownCompany, "not found"}},
		{"malformed company id", call{method: "POST", path: "/v1/connection/company/acme", body: goodConnection}, 404, api.CodeNotFound, []string{`"acme" not found`}},
		{"too large", call{method: "POST", path: path, body: cred(`{"username":"u","password":"` + strings.Repeat("p", 5000) + `"}`)}, 413, api.CodePayloadTooLarge, []string{"4096"}},
		{"wrong content type", call{method: "POST", path: path, body: goodConnection, ct: "text/json"}, 415, api.CodeUnsupportedMediaType, []string{"application/json"}},
	})
	e.assertNoSecret()
}

// companyWithStatuses builds a company whose connections are CONNECTED (with
// two accounts), PASSWORD_INCORRECT, PENDING and WEBSITE_DOWN, and another
// company's connection that must never show up.
func (e *env) companyWithStatuses() (store.Company, map[checks.ConnectionStatus]string) {
	e.t.Helper()
	co := e.company("Acme")
	ids := map[checks.ConnectionStatus]string{}
	for _, res := range []checks.Result{
		{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "A-1", Name: "Main"}, {Number: "A-2"}}},
		{Status: checks.ConnPasswordIncorrect, Detail: "login rejected"},
		{Status: checks.ConnPending},
		{Status: checks.ConnWebsiteDown, Detail: "portal answered 503"},
	} {
		c := e.connection(co.ID, "user_"+string(res.Status))
		ids[res.Status] = c.ID
		if res.Status != checks.ConnPending {
			recordCheck(e.t, e.st, e.clk, c.ID, res)
		}
	}
	e.connection(e.company("Other").ID, "user_good")
	return co, ids
}

func TestListConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co, ids := e.companyWithStatuses()
	path := "/v1/connection/company/" + co.ID

	for _, tc := range []struct {
		name, query string
		want        []checks.ConnectionStatus // in the reference's order
	}{
		{"all", "", []checks.ConnectionStatus{checks.ConnPending, checks.ConnConnected, checks.ConnWebsiteDown, checks.ConnPasswordIncorrect}},
		{"one", "?status=PASSWORD_INCORRECT", []checks.ConnectionStatus{checks.ConnPasswordIncorrect}},
		{"comma-separated, any case", "?status=password_incorrect,CONNECTED", []checks.ConnectionStatus{checks.ConnConnected, checks.ConnPasswordIncorrect}},
		{"repeated", "?status=PASSWORD_INCORRECT&status=CONNECTED", []checks.ConnectionStatus{checks.ConnConnected, checks.ConnPasswordIncorrect}},
		{"duplicates and empty items", "?status=WEBSITE_DOWN,,WEBSITE_DOWN,", []checks.ConnectionStatus{checks.ConnWebsiteDown}},
		{"empty filter", "?status=", []checks.ConnectionStatus{checks.ConnPending, checks.ConnConnected, checks.ConnWebsiteDown, checks.ConnPasswordIncorrect}},
		{"none in status", "?status=NO_ACCOUNTS_FOUND", nil},
		{"with limit", "?status=CONNECTED&limit=5", []checks.ConnectionStatus{checks.ConnConnected}},
	} {
		w := e.do(call{method: "GET", path: path + tc.query})
		if w.Code != 200 {
			t.Errorf("%s: status %d: %s", tc.name, w.Code, w.Body)
			continue
		}
		page := decodeAs[api.ConnectionPage](t, w)
		if page.Connections == nil {
			t.Errorf("%s: connections is null, want an array", tc.name)
		}
		var got []checks.ConnectionStatus
		for _, c := range page.Connections {
			got = append(got, c.Status)
			if c.ID != ids[c.Status] {
				t.Errorf("%s: unexpected connection %s in %s", tc.name, c.ID, c.Status)
			}
			in, _ := c.Status.Info()
			if c.StatusDisplayName != in.DisplayName || c.StatusReason != in.Reason {
				t.Errorf("%s: derived fields of %s: %+v", tc.name, c.Status, c.StatusInfo)
			}
		}
		if !slices.Equal(got, tc.want) || page.NextCursor != "" {
			t.Errorf("%s: statuses %v (next %q), want %v", tc.name, got, page.NextCursor, tc.want)
		}
	}

	// Pages of one follow nextCursor through every connection exactly once.
	var seen []string
	cursor := ""
	for range 10 {
		w := e.do(call{method: "GET", path: path + "?limit=1&cursor=" + cursor})
		page := decodeAs[api.ConnectionPage](t, w)
		if w.Code != 200 || len(page.Connections) > 1 {
			t.Fatalf("page after %q: %d %s", cursor, w.Code, w.Body)
		}
		for _, c := range page.Connections {
			seen = append(seen, c.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	slices.Sort(seen)
	var all []string
	for _, id := range ids {
		all = append(all, id)
	}
	slices.Sort(all)
	if !slices.Equal(seen, all) || cursor != "" {
		t.Errorf("paged through %v (cursor %q), want %v", seen, cursor, all)
	}

	validStatuses := make([]string, len(checks.ConnectionStatuses))
	for i, s := range checks.ConnectionStatuses {
		validStatuses[i] = string(s)
	}
	e.runErrorCases(t, []errorCase{
		{"unknown status", call{method: "GET", path: path + "?status=BOGUS"}, 400, api.CodeInvalidRequest,
			append([]string{`"BOGUS"`, "valid values are"}, validStatuses...)},
		{"one bad among good", call{method: "GET", path: path + "?status=CONNECTED,PASWORD_INCORRECT"}, 400, api.CodeInvalidRequest, []string{"PASWORD_INCORRECT", "PASSWORD_INCORRECT"}},
		{"limit not a number", call{method: "GET", path: path + "?limit=ten"}, 400, api.CodeInvalidRequest, []string{"limit must be an integer from 1 to 1000"}},
		{"limit zero", call{method: "GET", path: path + "?limit=0"}, 400, api.CodeInvalidRequest, []string{"limit"}},
		{"limit negative", call{method: "GET", path: path + "?limit=-3"}, 400, api.CodeInvalidRequest, []string{"limit"}},
		{"limit too big", call{method: "GET", path: path + "?limit=1001"}, 400, api.CodeInvalidRequest, []string{"1000"}},
		{"bad cursor", call{method: "GET", path: path + "?cursor=zz"}, 400, api.CodeInvalidRequest, []string{"cursor"}},
		{"cursor out of range", call{method: "GET", path: path + "?cursor=99.0"}, 400, api.CodeInvalidRequest, []string{"cursor"}},
		{"unknown company", call{method: "GET", path: "/v1/connection/company/" + unknownCompany}, 404, api.CodeNotFound, []string{unknownCompany}},
		{"malformed company id", call{method: "GET", path: "/v1/connection/company/x"}, 404, api.CodeNotFound, []string{"not found"}},
	})
	e.assertNoSecret()
}

func TestConnectionDetails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnConnected,
		Accounts: []checks.AccountResult{{Number: "A-1", Name: "Main"}, {Number: "A-2"}}})
	success := e.clk.Now()
	e.clk.Advance(time.Hour)
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnWebsiteDown, Detail: "portal answered 503"})
	failed := e.clk.Now()

	w := e.do(call{method: "GET", path: "/v1/connection/" + c.ID + "/details"})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	e.assertNoSecret(w.Body.String())
	raw := decodeAs[map[string]any](t, w)
	for _, k := range []string{"id", "companyId", "datasource", "isActive", "status", "statusFirstSeenTime", "statusLastUpdateTime",
		"statusErrorDetail", "lastCheckAt", "lastSuccessAt", "nextCheckAt", "consecutiveFailures",
		"statusDisplayName", "statusCategory", "statusReason", "canRefresh", "canReconnect", "accounts"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("details lack %q: %s", k, w.Body)
		}
	}
	accts, _ := raw["accounts"].([]any)
	if len(accts) != 2 {
		t.Fatalf("accounts: %v", raw["accounts"])
	}
	for _, a := range accts {
		for _, k := range []string{"id", "accountNumber", "trackingStatus", "status", "statusFirstSeenTime", "statusLastUpdateTime",
			"statusErrorDetail", "statusDisplayName", "statusCategory", "statusReason", "canRefresh", "canReconnect"} {
			if _, ok := a.(map[string]any)[k]; !ok {
				t.Errorf("account lacks %q: %v", k, a)
			}
		}
	}

	got := decodeAs[api.Connection](t, w)
	in, _ := checks.ConnWebsiteDown.Info()
	switch {
	case got.Status != checks.ConnWebsiteDown, got.StatusErrorDetail != "portal answered 503",
		!got.StatusFirstSeenTime.Equal(failed), !got.StatusLastUpdateTime.Equal(failed):
		t.Errorf("status fields: %+v", got.Connection)
	case got.LastCheckAt == nil || !got.LastCheckAt.Equal(failed), got.LastSuccessAt == nil || !got.LastSuccessAt.Equal(success),
		got.NextCheckAt == nil, got.ConsecutiveFailures != 1:
		t.Errorf("check fields: last %v success %v next %v failures %d", got.LastCheckAt, got.LastSuccessAt, got.NextCheckAt, got.ConsecutiveFailures)
	case got.StatusDisplayName != "Website Down", got.StatusCategory != checks.CategoryProviderError,
		got.StatusReason != in.Reason, got.CanRefresh != in.CanRefresh, got.CanReconnect != in.CanReconnect:
		t.Errorf("derived fields: %+v", got.StatusInfo)
	}
	for _, a := range got.Accounts {
		ai, _ := checks.AcctWorkflowNotAccessible.Info()
		if a.Status != checks.AcctWorkflowNotAccessible || !strings.Contains(a.StatusErrorDetail, "WEBSITE_DOWN") ||
			a.StatusDisplayName != ai.DisplayName || a.StatusCategory != ai.Category || a.StatusReason != ai.Reason ||
			a.CanRefresh != ai.CanRefresh || a.CanReconnect != ai.CanReconnect || a.TrackingStatus != checks.TrackingUnset {
			t.Errorf("account: %+v", a)
		}
	}
	if got.Accounts[0].AccountNumber != "A-1" || got.Accounts[0].Name != "Main" {
		t.Errorf("first account: %+v", got.Accounts[0])
	}

	e.runErrorCases(t, []errorCase{
		{"unknown connection", call{method: "GET", path: "/v1/connection/" + unknownConnection + "/details"}, 404, api.CodeNotFound, []string{unknownConnection, "not found"}},
		{"malformed connection id", call{method: "GET", path: "/v1/connection/nope/details"}, 404, api.CodeNotFound, []string{`"nope" not found`}},
		{"unknown view", call{method: "GET", path: "/v1/connection/" + c.ID + "/bills"}, 404, api.CodeNotFound, []string{"no route"}},
	})
}

// TestConnectionHistoryOfConsoleActions: an action taken in the admin
// console (store.WithOrigin) reads back with its console cause and actor,
// as the document says.
func TestConnectionHistoryOfConsoleActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.connection(e.company("Acme").ID, "user_good")
	ctx, err := store.WithOrigin(context.Background(), store.Origin{Channel: "console", Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	off := false
	if _, err := e.st.UpdateDetails(ctx, c.ID, store.DetailsPatch{IsActive: &off}); err != nil {
		t.Fatal(err)
	}
	h := decodeAs[api.History](t, e.do(call{method: "GET", path: "/v1/connection/" + c.ID + "/history?limit=1"}))
	if len(h.History) != 1 || h.History[0].Cause != "console:deactivate" || h.History[0].Actor != "admin" {
		t.Errorf("history: %+v, want console:deactivate by admin", h.History)
	}
}

func TestConnectionHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "A-1"}}})
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnPasswordIncorrect, Detail: "rejected"})
	want, err := e.st.History(context.Background(), c.ID, 0)
	if err != nil || len(want) < 3 {
		t.Fatalf("store history: %v, %v", want, err)
	}

	for _, tc := range []struct {
		query string
		want  []store.HistoryEntry
	}{
		{"", want},
		{"?limit=1", want[:1]},
		{"?limit=1000", want},
	} {
		w := e.do(call{method: "GET", path: "/v1/connection/" + c.ID + "/history" + tc.query})
		if w.Code != 200 {
			t.Fatalf("%q: status %d: %s", tc.query, w.Code, w.Body)
		}
		var got struct {
			History json.RawMessage `json:"history"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		wantJSON, _ := json.Marshal(tc.want)
		if string(got.History) != string(wantJSON) {
			t.Errorf("%q: history %s, want %s", tc.query, got.History, wantJSON)
		}
	}
	h := decodeAs[api.History](t, e.do(call{method: "GET", path: "/v1/connection/" + c.ID + "/history"}))
	oldest := h.History[len(h.History)-1]
	var newest store.HistoryEntry
	for _, en := range h.History {
		if en.AccountID == "" {
			newest = en // the connection's own newest transition
			break
		}
	}
	if newest.To != string(checks.ConnPasswordIncorrect) || newest.Detail != "rejected" || oldest.To != string(checks.ConnPending) || oldest.Cause != store.CauseCreated {
		t.Errorf("history order: newest %+v, oldest %+v", newest, oldest)
	}

	e.runErrorCases(t, []errorCase{
		{"limit zero", call{method: "GET", path: "/v1/connection/" + c.ID + "/history?limit=0"}, 400, api.CodeInvalidRequest, []string{"limit must be an integer from 1 to 1000"}},
		{"limit junk", call{method: "GET", path: "/v1/connection/" + c.ID + "/history?limit=1e3"}, 400, api.CodeInvalidRequest, []string{`"1e3"`}},
		{"limit too big", call{method: "GET", path: "/v1/connection/" + c.ID + "/history?limit=1001"}, 400, api.CodeInvalidRequest, []string{"limit"}},
		{"unknown connection", call{method: "GET", path: "/v1/connection/" + unknownConnection + "/history"}, 404, api.CodeNotFound, []string{unknownConnection}},
	})
}

func TestStatuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := e.do(call{method: "GET", path: "/v1/statuses"})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	got := decodeAs[api.Statuses](t, w)
	if !slices.Equal(got.ConnectionStatuses, checks.ConnectionInfos()) {
		t.Errorf("connection statuses: %+v", got.ConnectionStatuses)
	}
	if !slices.Equal(got.AccountStatuses, checks.AccountInfos()) {
		t.Errorf("account statuses: %+v", got.AccountStatuses)
	}
	if !slices.Equal(got.TrackingStatuses, checks.TrackingStatuses) || !slices.Equal(got.Datasources, datasources()) {
		t.Errorf("tracking %v, datasources %v", got.TrackingStatuses, got.Datasources)
	}
	if got.ConnectionStatuses[0].Value != "PENDING" || got.ConnectionStatuses[0].DisplayName != "Pending" {
		t.Errorf("first connection status: %+v", got.ConnectionStatuses[0])
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.runErrorCases(t, []errorCase{
		{"unknown path", call{method: "GET", path: "/nope"}, 404, api.CodeNotFound, []string{"no route GET /nope", "/v1"}},
		{"unknown path without key", call{method: "GET", path: "/v2/company", key: "-"}, 404, api.CodeNotFound, []string{"no route"}},
		{"trailing slash", call{method: "GET", path: "/v1/company/"}, 404, api.CodeNotFound, []string{"no route"}},
		{"too deep", call{method: "GET", path: "/v1/connection/company/x/y"}, 404, api.CodeNotFound, []string{"no route"}},
	})
	for _, tc := range []struct {
		method, path string
		allow        []string
	}{
		{"DELETE", "/v1/company", []string{"GET", "POST"}},
		{"PUT", "/v1/connection/company/" + unknownCompany, []string{"GET", "POST"}},
		{"POST", "/v1/connection/" + unknownConnection + "/details", []string{"GET"}},
		{"POST", "/v1/statuses", []string{"GET"}},
		{"POST", "/healthz", []string{"GET"}},
	} {
		before := e.mr.Dump()
		w := e.do(call{method: tc.method, path: tc.path, body: `{}`})
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: status %d: %s", tc.method, tc.path, w.Code, w.Body)
			continue
		}
		got := decodeAs[api.ErrorResponse](t, w)
		allow := w.Header().Get("Allow")
		for _, m := range tc.allow {
			if !strings.Contains(allow, m) || !strings.Contains(got.Error.Message, m) {
				t.Errorf("%s %s: Allow %q, message %q, want %s in both", tc.method, tc.path, allow, got.Error.Message, m)
			}
		}
		if got.Error.Code != api.CodeMethodNotAllowed || e.mr.Dump() != before {
			t.Errorf("%s %s: %+v", tc.method, tc.path, got)
		}
	}
	if w := e.do(call{method: "HEAD", path: "/healthz"}); w.Code != 200 {
		t.Errorf("HEAD /healthz: %d", w.Code)
	}
}

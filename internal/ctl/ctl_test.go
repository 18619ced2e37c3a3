package ctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/checkd/checkd/internal/ctl"
	"github.com/checkd/checkd/internal/version"
)

const testKey = "test-key-123"

// reply is one canned answer of the fake API.
type reply struct {
	status int
	body   string
}

// request is what the fake API received.
type request struct {
	method, path, query string
	body                string // JSON, compared semantically; "" for none
}

// fakeAPI answers requests with canned replies, in order, and records them.
type fakeAPI struct {
	mu      sync.Mutex
	replies []reply
	got     []request
	keys    []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, request{method: r.Method, path: r.URL.EscapedPath(), query: r.URL.RawQuery, body: string(b)})
	f.keys = append(f.keys, r.Header.Get("X-API-Key"))
	if len(b) > 0 && r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "body without Content-Type: application/json", http.StatusUnsupportedMediaType)
		return
	}
	if len(f.replies) == 0 {
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, `{"error":{"code":"test","message":"unexpected request"}}`)
		return
	}
	rep := f.replies[0]
	f.replies = f.replies[1:]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

const (
	companyJSON = `{"id":"co_1","name":"Acme","isActive":true,"createdAt":"2026-03-02T10:00:00Z"}`
	connJSON    = `{"id":"cn_1","companyId":"co_1","datasource":{"name":"sandbox"},"name":"Main office","isActive":true,
		"createdAt":"2026-03-02T10:00:00Z","status":"PASSWORD_INCORRECT","statusDisplayName":"Password Incorrect",
		"statusFirstSeenTime":"2026-03-02T10:05:00Z","statusLastUpdateTime":"2026-03-03T10:05:00Z",
		"statusErrorDetail":"login rejected","lastCheckAt":"2026-03-03T10:05:00Z","lastSuccessAt":null,"nextCheckAt":null,
		"consecutiveFailures":2,"startDate":"2025-01-01","occupancyMultiplier":1.5,"canRefresh":false,"canReconnect":true,
		"accounts":[{"id":"ac_1","accountNumber":"1001","name":"Meter A","trackingStatus":"UNSET","status":"DETECTED",
		"statusFirstSeenTime":"2026-03-02T10:05:00Z","statusErrorDetail":""}]}`
	queueJSON = `{"queue":"default","size":3,"pending":2,"active":1,"scheduled":0,"retry":0,"archived":0,"completed":5,"paused":true}`
)

func withEnqueued(conn string, v bool) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(conn), &m); err != nil {
		panic(err)
	}
	m["checkEnqueued"] = v
	b, _ := json.Marshal(m)
	return string(b)
}

type cliCase struct {
	name    string
	args    []string // after --url and --api-key
	stdin   string
	replies []reply
	want    []request
	code    int
	stdout  string   // exact, when set
	outHas  []string // substrings of stdout
	errHas  []string // substrings of stderr
	noOut   []string // never printed (stdout or stderr)
}

func runCLI(t *testing.T, f *fakeAPI, url string, c cliCase) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	args := append([]string{"--url", url, "--api-key", testKey}, c.args...)
	code := ctl.Run(context.Background(), args, ctl.Env{
		Stdin: strings.NewReader(c.stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(string) string { return "" },
	})
	return out.String(), errb.String(), code
}

func jsonEqual(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func check(t *testing.T, c cliCase, f *fakeAPI, out, errOut string, code int) {
	t.Helper()
	if code != c.code {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
	}
	if len(f.got) != len(c.want) {
		t.Fatalf("requests = %+v, want %+v", f.got, c.want)
	}
	for i, w := range c.want {
		g := f.got[i]
		if g.method != w.method || g.path != w.path || g.query != w.query || !jsonEqual(g.body, w.body) {
			t.Errorf("request %d = %s %s?%s %s\nwant        %s %s?%s %s", i, g.method, g.path, g.query, g.body, w.method, w.path, w.query, w.body)
		}
		if f.keys[i] != testKey {
			t.Errorf("request %d sent X-API-Key %q, want %q", i, f.keys[i], testKey)
		}
	}
	if c.stdout != "" && out != c.stdout {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, c.stdout)
	}
	for _, s := range c.outHas {
		if !strings.Contains(out, s) {
			t.Errorf("stdout lacks %q:\n%s", s, out)
		}
	}
	for _, s := range c.errHas {
		if !strings.Contains(errOut, s) {
			t.Errorf("stderr lacks %q:\n%s", s, errOut)
		}
	}
	for _, s := range c.noOut {
		if strings.Contains(out+errOut, s) {
			t.Errorf("output shows %q:\n%s\n%s", s, out, errOut)
		}
	}
	if c.code == ctl.ExitOK && errOut != "" && len(c.errHas) == 0 {
		t.Errorf("unexpected stderr on success:\n%s", errOut)
	}
}

func TestCommands(t *testing.T) {
	get := func(path, query string) request { return request{method: "GET", path: path, query: query} }
	ok := func(body string) []reply { return []reply{{200, body}} }
	for _, c := range []cliCase{
		{
			name:    "companies list",
			args:    []string{"companies", "list"},
			replies: ok(`{"companies":[` + companyJSON + `,{"id":"co_2","name":"Beta Corp","isActive":false,"createdAt":"2026-03-04T00:00:00Z"}]}`),
			want:    []request{get("/v1/company", "")},
			stdout: "ID    NAME       ACTIVE  CREATED\n" +
				"co_1  Acme       yes     2026-03-02T10:00:00Z\n" +
				"co_2  Beta Corp  no      2026-03-04T00:00:00Z\n",
		},
		{
			name:    "companies list --output json prints the API's answer",
			args:    []string{"companies", "list", "--output", "json"},
			replies: ok(`{"companies":[` + companyJSON + `]}`),
			want:    []request{get("/v1/company", "")},
			stdout:  "{\n  \"companies\": [\n    {\n      \"id\": \"co_1\",\n      \"name\": \"Acme\",\n      \"isActive\": true,\n      \"createdAt\": \"2026-03-02T10:00:00Z\"\n    }\n  ]\n}\n",
		},
		{
			name:    "company create",
			args:    []string{"company", "create", "Acme"},
			replies: []reply{{201, companyJSON}},
			want:    []request{{method: "POST", path: "/v1/company", body: `{"name":"Acme"}`}},
			stdout:  "ID    NAME  ACTIVE  CREATED\nco_1  Acme  yes     2026-03-02T10:00:00Z\n",
		},
		{
			name:    "company deactivate",
			args:    []string{"company", "deactivate", "co_1"},
			replies: ok(`{"company":{"id":"co_1","name":"Acme","isActive":false,"createdAt":"2026-03-02T10:00:00Z"},"connectionsUpdated":7}`),
			want:    []request{{method: "PATCH", path: "/v1/company/co_1", body: `{"isActive":false}`}},
			stdout:  "ID    NAME  ACTIVE  CREATED\nco_1  Acme  no      2026-03-02T10:00:00Z\nconnections updated: 7\n",
		},
		{
			name:    "company reactivate",
			args:    []string{"company", "reactivate", "co_1"},
			replies: ok(`{"company":` + companyJSON + `,"connectionsUpdated":7}`),
			want:    []request{{method: "PATCH", path: "/v1/company/co_1", body: `{"isActive":true}`}},
			outHas:  []string{"co_1  Acme  yes", "connections updated: 7"},
		},
		{
			name:    "connections list with filters",
			args:    []string{"connections", "list", "co_1", "--status", "password_incorrect, MFA_TOKEN_EXPIRED", "--limit", "10"},
			replies: ok(`{"connections":[` + connJSON + `],"nextCursor":"3.10"}`),
			want:    []request{get("/v1/connection/company/co_1", "limit=10&status=PASSWORD_INCORRECT%2CMFA_TOKEN_EXPIRED")},
			stdout: "ID    NAME         DATASOURCE  STATUS              ACTIVE  ACCOUNTS  LAST CHECK            NEXT CHECK\n" +
				"cn_1  Main office  sandbox     PASSWORD_INCORRECT  yes     1         2026-03-03T10:05:00Z  -\n",
			errHas: []string{"--cursor 3.10"},
		},
		{
			name: "connections list --all follows nextCursor",
			args: []string{"connections", "list", "co_1", "--all", "--limit", "1"},
			replies: []reply{
				{200, `{"connections":[` + connJSON + `],"nextCursor":"0.1"}`},
				{200, `{"connections":[{"id":"cn_2","companyId":"co_1","datasource":"sandbox","status":"CONNECTED","isActive":true,"accounts":[]}],"nextCursor":""}`},
			},
			want: []request{
				get("/v1/connection/company/co_1", "limit=1"),
				get("/v1/connection/company/co_1", "cursor=0.1&limit=1"),
			},
			outHas: []string{"cn_1  Main office", "cn_2  -", "CONNECTED"},
		},
		{
			name: "connections list --all --output json merges the pages",
			args: []string{"connections", "list", "co_1", "--all", "--output", "json"},
			replies: []reply{
				{200, `{"connections":[{"id":"cn_1"}],"nextCursor":"0.1"}`},
				{200, `{"connections":[{"id":"cn_2"}],"nextCursor":""}`},
			},
			want:   []request{get("/v1/connection/company/co_1", ""), get("/v1/connection/company/co_1", "cursor=0.1")},
			stdout: "{\n  \"connections\": [\n    {\n      \"id\": \"cn_1\"\n    },\n    {\n      \"id\": \"cn_2\"\n    }\n  ],\n  \"nextCursor\": \"\"\n}\n",
		},
		{
			name:    "connection create reads the password from stdin",
			args:    []string{"connection", "create", "co_1", "--datasource", "sandbox", "--username", "user_good", "--password-stdin", "--name", "Main office"},
			stdin:   "s3cret-pw\n",
			replies: []reply{{201, connJSON}},
			want: []request{{method: "POST", path: "/v1/connection/company/co_1",
				body: `{"datasource":"sandbox","name":"Main office","credentials":{"username":"user_good","password":"s3cret-pw"}}`}},
			outHas: []string{"ID:", "cn_1", "PASSWORD_INCORRECT (Password Incorrect)", "Detail:", "login rejected", "Accounts:", "ac_1", "1001", "DETECTED"},
			noOut:  []string{"s3cret-pw"},
		},
		{
			name:    "connection create with --password and flags before the argument",
			args:    []string{"connection", "create", "--datasource", "sandbox", "--username", "u", "--password", "pw", "co_1"},
			replies: []reply{{201, connJSON}},
			want: []request{{method: "POST", path: "/v1/connection/company/co_1",
				body: `{"datasource":"sandbox","credentials":{"username":"u","password":"pw"}}`}},
			outHas: []string{"cn_1"},
		},
		{
			name:    "connection show",
			args:    []string{"connection", "show", "cn_1"},
			replies: ok(connJSON),
			want:    []request{get("/v1/connection/cn_1/details", "")},
			outHas: []string{"Company:         co_1", "Status since:    2026-03-02T10:05:00Z", "Last success:    -",
				"Failures:        2", "Start date:      2025-01-01", "Occupancy:       1.5",
				"ID    NUMBER  NAME     TRACKING  STATUS    DETAIL\nac_1  1001    Meter A  UNSET     DETECTED  -\n"},
		},
		{
			name: "connection show escapes control characters from the API",
			args: []string{"connection", "show", "cn_1"},
			replies: ok(strings.Replace(strings.Replace(connJSON, `"Main office"`, `"Main\u001b[8m office"`, 1),
				`"Meter A"`, `"Meter\tA\u009b\u202e"`, 1)),
			want:   []request{get("/v1/connection/cn_1/details", "")},
			outHas: []string{`Main\x1b[8m office`, `Meter\x09A\x9b\u202e`},
			noOut:  []string{"\x1b", "\u009b", "\u202e"},
		},
		{
			name:    "connection show escapes the ID",
			args:    []string{"connection", "show", "cn_1/../x"},
			replies: ok(connJSON),
			want:    []request{get("/v1/connection/cn_1%2F..%2Fx/details", "")},
		},
		{
			name: "connection history",
			args: []string{"connection", "history", "cn_1", "--limit", "5"},
			replies: ok(`{"history":[{"time":"2026-03-03T10:05:00Z","from":"PENDING","to":"PASSWORD_INCORRECT","detail":"login rejected","cause":"check"},` +
				`{"time":"2026-03-03T10:05:00Z","accountId":"ac_1","from":"","to":"DETECTED","cause":"check"}]}`),
			want: []request{get("/v1/connection/cn_1/history", "limit=5")},
			stdout: "TIME                  ACCOUNT  FROM     TO                  CAUSE  DETAIL\n" +
				"2026-03-03T10:05:00Z  -        PENDING  PASSWORD_INCORRECT  check  login rejected\n" +
				"2026-03-03T10:05:00Z  ac_1     -        DETECTED            check  -\n",
		},
		{
			name: "connection history names who acted in the console",
			args: []string{"connection", "history", "cn_1"},
			replies: ok(`{"history":[{"time":"2026-03-03T10:06:00Z","from":"CONNECTED","to":"DEACTIVATED","cause":"console:deactivate","actor":"admin"},` +
				`{"time":"2026-03-03T10:05:00Z","from":"PENDING","to":"CONNECTED","cause":"check","actor":"check"}]}`),
			want: []request{get("/v1/connection/cn_1/history", "")},
			stdout: "TIME                  ACCOUNT  FROM       TO           CAUSE                        DETAIL\n" +
				"2026-03-03T10:06:00Z  -        CONNECTED  DEACTIVATED  console:deactivate by admin  -\n" +
				"2026-03-03T10:05:00Z  -        PENDING    CONNECTED    check                        -\n",
		},
		{
			name:    "connection deactivate",
			args:    []string{"connection", "deactivate", "cn_1"},
			replies: ok(withEnqueued(connJSON, false)),
			want:    []request{{method: "PATCH", path: "/v1/connection/cn_1/details", body: `{"isActive":false}`}},
			outHas:  []string{"cn_1", "Check enqueued:  no"},
		},
		{
			name:    "connection reactivate",
			args:    []string{"connection", "reactivate", "cn_1"},
			replies: ok(withEnqueued(connJSON, true)),
			want:    []request{{method: "PATCH", path: "/v1/connection/cn_1/details", body: `{"isActive":true}`}},
			outHas:  []string{"Check enqueued:  yes"},
		},
		{
			name:    "connection set sends only the given fields",
			args:    []string{"connection", "set", "cn_1", "--start-date", "2025-01-01", "--occupancy", "1.5"},
			replies: ok(withEnqueued(connJSON, false)),
			want:    []request{{method: "PATCH", path: "/v1/connection/cn_1/details", body: `{"startDate":"2025-01-01","occupancyMultiplier":1.5}`}},
			outHas:  []string{"Start date:      2025-01-01"},
		},
		{
			name:    "connection set --start-date empty clears it; --name",
			args:    []string{"connection", "set", "cn_1", "--start-date=", "--name", "HQ"},
			replies: ok(withEnqueued(connJSON, false)),
			want:    []request{{method: "PATCH", path: "/v1/connection/cn_1/details", body: `{"startDate":"","name":"HQ"}`}},
		},
		{
			name:    "connection refresh enqueued",
			args:    []string{"connection", "refresh", "cn_1"},
			replies: []reply{{202, `{"enqueued":true,"taskId":"check:cn_1:1772445600000"}`}},
			want:    []request{{method: "POST", path: "/v1/connection/cn_1/refresh"}},
			stdout:  "check enqueued: task check:cn_1:1772445600000\n",
		},
		{
			name:    "connection refresh already queued",
			args:    []string{"connection", "refresh", "cn_1"},
			replies: []reply{{202, `{"enqueued":false,"reason":"a check is already queued or running"}`}},
			want:    []request{{method: "POST", path: "/v1/connection/cn_1/refresh"}},
			stdout:  "check not enqueued: a check is already queued or running\n",
		},
		{
			name:    "connection refresh refused",
			args:    []string{"connection", "refresh", "cn_1"},
			replies: []reply{{409, `{"error":{"code":"not_allowed","message":"connection cn_1 is PASSWORD_INCORRECT: update its credentials first"}}`}},
			want:    []request{{method: "POST", path: "/v1/connection/cn_1/refresh"}},
			code:    ctl.ExitConflict,
			errHas:  []string{"checkctl: connection cn_1 is PASSWORD_INCORRECT: update its credentials first"},
		},
		{
			name:    "connection credentials",
			args:    []string{"connection", "credentials", "cn_1", "--username", "new_user", "--password-stdin"},
			stdin:   "n3w-pw\r\nignored second line\n",
			replies: ok(withEnqueued(connJSON, true)),
			want: []request{{method: "PATCH", path: "/v1/connection/cn_1/credentials",
				body: `{"credentials":{"username":"new_user","password":"n3w-pw"}}`}},
			outHas: []string{"Check enqueued:  yes"},
			noOut:  []string{"n3w-pw"},
		},
		{
			name:    "connection link",
			args:    []string{"connection", "link", "cn_1"},
			replies: []reply{{201, `{"url":"http://127.0.0.1:8080/link#tok","token":"tok","expiresAt":"2026-03-09T10:00:00Z"}`}},
			want:    []request{{method: "POST", path: "/v1/connection/cn_1/link"}},
			outHas:  []string{"URL:      http://127.0.0.1:8080/link#tok", "Expires:  2026-03-09T10:00:00Z"},
		},
		{
			name:    "company link",
			args:    []string{"company", "link", "co_1"},
			replies: []reply{{201, `{"companyId":"co_1","url":"http://127.0.0.1:8080/link#tok","token":"tok","expiresAt":"2026-03-09T10:00:00Z"}`}},
			want:    []request{{method: "POST", path: "/v1/connection/company/co_1/link"}},
			outHas:  []string{"URL:      http://127.0.0.1:8080/link#tok", "Expires:  2026-03-09T10:00:00Z"},
		},
		{
			name:    "link gone",
			args:    []string{"connection", "link", "cn_1"},
			replies: []reply{{410, `{"error":{"code":"gone","message":"gone"}}`}},
			want:    []request{{method: "POST", path: "/v1/connection/cn_1/link"}},
			code:    ctl.ExitConflict,
			errHas:  []string{"checkctl: gone"},
		},
		{
			name:    "accounts confirm",
			args:    []string{"accounts", "confirm", "cn_1", "ac_1", "ac_2"},
			replies: ok(connJSON),
			want: []request{{method: "PATCH", path: "/v1/connection/cn_1/status",
				body: `{"accounts":[{"accountId":"ac_1","trackingStatus":"ENABLED"},{"accountId":"ac_2","trackingStatus":"ENABLED"}]}`}},
			outHas: []string{"Accounts:"},
		},
		{
			name: "accounts reject refused names each account",
			args: []string{"accounts", "reject", "cn_1", "ac_9", "ac_1"},
			replies: []reply{{400, `{"error":{"code":"invalid_request","message":"accounts refused (nothing was changed)",` +
				`"accounts":{"ac_9":"no such account on this connection","ac_1":"account is DUPLICATE (terminal)"}}}`}},
			want: []request{{method: "PATCH", path: "/v1/connection/cn_1/status",
				body: `{"accounts":[{"accountId":"ac_9","trackingStatus":"DISABLED"},{"accountId":"ac_1","trackingStatus":"DISABLED"}]}`}},
			code:   ctl.ExitError,
			errHas: []string{"checkctl: accounts refused (nothing was changed)\n  ac_1: account is DUPLICATE (terminal)\n  ac_9: no such account on this connection\n"},
		},
		{
			name:    "queues list",
			args:    []string{"queues", "list"},
			replies: ok(`{"queues":[` + queueJSON + `]}`),
			want:    []request{get("/v1/queues", "")},
			stdout: "QUEUE    SIZE  PENDING  ACTIVE  SCHEDULED  RETRY  ARCHIVED  COMPLETED  PAUSED\n" +
				"default  3     2        1       0          0      0         5          yes\n",
		},
		{
			name:    "queues pause",
			args:    []string{"queues", "pause", "default"},
			replies: ok(queueJSON),
			want:    []request{{method: "POST", path: "/v1/queues/default/pause"}},
			outHas:  []string{"default  3     2"},
		},
		{
			name:    "queues resume",
			args:    []string{"queues", "resume", "critical"},
			replies: ok(strings.Replace(queueJSON, `"paused":true`, `"paused":false`, 1)),
			want:    []request{{method: "POST", path: "/v1/queues/critical/resume"}},
			outHas:  []string{"no\n"},
		},
		{
			name:    "company deactivate still converting",
			args:    []string{"company", "deactivate", "co_1"},
			replies: []reply{{202, `{"company":{"id":"co_1","name":"Acme","isActive":false,"createdAt":"2026-03-02T10:00:00Z"},"connectionsUpdated":0,"inProgress":true}`}},
			want:    []request{{method: "PATCH", path: "/v1/company/co_1", body: `{"isActive":false}`}},
			outHas:  []string{"co_1", "still being converted in the background"},
		},
		{
			name:    "store keys",
			args:    []string{"store", "keys"},
			replies: ok(`{"primary":"bbbb","inUse":["bbbb"],"rekey":{"target":"bbbb","pass":2,"scanned":20,"rewritten":10,"done":true}}`),
			want:    []request{get("/v1/store/keys", "")},
			stdout: "primary key:   bbbb\nkeys in use:   bbbb\nre-encryption: done\n  toward key bbbb: 20 scanned, 10 rewritten\n" +
				"every credential is sealed with the primary key: remove CHECKD_ENCRYPTION_OLD_KEYS from every process\n",
		},
		{
			name: "store rekey --wait follows the run until done",
			args: []string{"store", "rekey", "--wait", "--poll", "1ms"},
			replies: []reply{
				{202, `{"started":true,"primary":"bbbb","inUse":["aaaa","bbbb"],"rekey":{"target":"bbbb","pass":1,"running":true}}`},
				{200, `{"primary":"bbbb","inUse":["aaaa","bbbb"],"rekey":{"target":"bbbb","pass":1,"scanned":10,"rewritten":10,"running":true}}`},
				{200, `{"primary":"bbbb","inUse":["bbbb"],"rekey":{"target":"bbbb","pass":2,"scanned":20,"rewritten":10,"done":true}}`},
			},
			want:   []request{{method: "POST", path: "/v1/store/rekey"}, get("/v1/store/keys", ""), get("/v1/store/keys", "")},
			outHas: []string{"re-encryption started toward key bbbb", "running (pass 1)", "10 scanned, 10 rewritten", "re-encryption: done", "remove CHECKD_ENCRYPTION_OLD_KEYS"},
		},
		{
			name: "store rekey --wait exits 1 on a blocked run",
			args: []string{"store", "rekey", "--wait", "--poll", "1ms"},
			replies: []reply{
				{202, `{"started":false,"primary":"bbbb","inUse":["aaaa","bbbb"],"rekey":{"target":"bbbb","pass":1,"running":true}}`},
				{200, `{"primary":"bbbb","inUse":["aaaa","bbbb"],"rekey":{"target":"bbbb","pass":1,"unreadable":2,"blocked":true}}`},
			},
			want:   []request{{method: "POST", path: "/v1/store/rekey"}, get("/v1/store/keys", "")},
			code:   ctl.ExitError,
			outHas: []string{"under way already", "blocked: 2 credentials"},
			errHas: []string{"configure the key that sealed"},
		},
		{
			name:    "queues pause unknown",
			args:    []string{"queues", "pause", "nope"},
			replies: []reply{{404, `{"error":{"code":"not_found","message":"queue \"nope\" not found"}}`}},
			want:    []request{{method: "POST", path: "/v1/queues/nope/pause"}},
			code:    ctl.ExitNotFound,
			errHas:  []string{`queue "nope" not found`},
		},
		{
			name: "statuses",
			args: []string{"statuses"},
			replies: ok(`{"connectionStatuses":[{"value":"CONNECTED","displayName":"Connected","category":"healthy","canRefresh":true}],` +
				`"accountStatuses":[{"value":"DETECTED","displayName":"Detected","category":"healthy"}],` +
				`"trackingStatuses":["UNSET","ENABLED","DISABLED"],"datasources":["sandbox"]}`),
			want: []request{get("/v1/statuses", "")},
			stdout: "Connection statuses:\nSTATUS     NAME       CATEGORY  REFRESH  RECONNECT\nCONNECTED  Connected  healthy   yes      no\n\n" +
				"Account statuses:\nSTATUS    NAME      CATEGORY  REFRESH  RECONNECT\nDETECTED  Detected  healthy   no       no\n\n" +
				"Tracking statuses: UNSET, ENABLED, DISABLED\nDatasources: sandbox\n",
		},
		{
			name:    "not found exits 3 and names the checkctl command that lists the IDs",
			args:    []string{"connection", "show", "cn_x"},
			replies: []reply{{404, `{"error":{"code":"not_found","message":"connection \"cn_x\" not found: check the ID"}}`}},
			want:    []request{get("/v1/connection/cn_x/details", "")},
			code:    ctl.ExitNotFound,
			errHas:  []string{`checkctl: connection "cn_x" not found: check the ID`, "checkctl connections list <companyId>", "checkctl companies list"},
		},
		{
			name:    "company show",
			args:    []string{"company", "show", "co_1"},
			replies: ok(companyJSON),
			want:    []request{get("/v1/company/co_1", "")},
			stdout: "ID:          co_1\nName:        Acme\nActive:      yes\nCreated:     2026-03-02T10:00:00Z\n" +
				"Auto-track:  the service's default (store.autoTrack)\n\nIts connections: checkctl connections list co_1\n",
		},
		{
			name:    "company show of a company that decides its tracking",
			args:    []string{"company", "show", "co_1"},
			replies: ok(strings.Replace(companyJSON, `}`, `,"autoTrack":false}`, 1)),
			want:    []request{get("/v1/company/co_1", "")},
			outHas:  []string{"Auto-track:  no\n"},
		},
		{
			name:    "company show -o json",
			args:    []string{"company", "show", "co_1", "-o", "json"},
			replies: ok(companyJSON),
			want:    []request{get("/v1/company/co_1", "")},
			stdout:  "{\n  \"id\": \"co_1\",\n  \"name\": \"Acme\",\n  \"isActive\": true,\n  \"createdAt\": \"2026-03-02T10:00:00Z\"\n}\n",
		},
		{
			name:    "company not found names companies list",
			args:    []string{"company", "show", "co_x"},
			replies: []reply{{404, `{"error":{"code":"not_found","message":"company \"co_x\" not found"}}`}},
			want:    []request{get("/v1/company/co_x", "")},
			code:    ctl.ExitNotFound,
			errHas:  []string{"checkctl companies list"},
		},
		{
			name:    "unknown queue names queues list",
			args:    []string{"queues", "resume", "urgent"},
			replies: []reply{{404, `{"error":{"code":"not_found","message":"queue \"urgent\" not found"}}`}},
			want:    []request{{method: "POST", path: "/v1/queues/urgent/resume"}},
			code:    ctl.ExitNotFound,
			errHas:  []string{"checkctl queues list"},
		},
		{
			name:    "-o json shorthand",
			args:    []string{"-ojson", "queues", "pause", "default"},
			replies: ok(queueJSON),
			want:    []request{{method: "POST", path: "/v1/queues/default/pause"}},
			outHas:  []string{"\"queue\": \"default\",\n", "\"paused\": true"},
		},
		{
			name:    "conflict exits 4",
			args:    []string{"company", "deactivate", "co_1"},
			replies: []reply{{409, `{"error":{"code":"conflict","message":"too many concurrent writes; try again"}}`}},
			want:    []request{{method: "PATCH", path: "/v1/company/co_1", body: `{"isActive":false}`}},
			code:    ctl.ExitConflict,
			errHas:  []string{"too many concurrent writes; try again"},
		},
		{
			name:    "bad request exits 1",
			args:    []string{"connection", "set", "cn_1", "--occupancy", "500"},
			replies: []reply{{400, `{"error":{"code":"invalid_request","message":"occupancyMultiplier must be greater than 0 and at most 100"}}`}},
			want:    []request{{method: "PATCH", path: "/v1/connection/cn_1/details", body: `{"occupancyMultiplier":500}`}},
			code:    ctl.ExitError,
			errHas:  []string{"occupancyMultiplier must be greater than 0 and at most 100"},
		},
		{
			name:    "a non-API answer is reported with its status",
			args:    []string{"companies", "list"},
			replies: []reply{{502, `<html>Bad Gateway</html>`}},
			want:    []request{get("/v1/company", "")},
			code:    ctl.ExitError,
			errHas:  []string{"the server answered 502 Bad Gateway", "<html>Bad Gateway</html>"},
		},
		{
			name:    "an unexpected answer shape is an error, not a silent empty table",
			args:    []string{"queues", "list"},
			replies: ok(`{"queues":"not a list"}`),
			want:    []request{get("/v1/queues", "")},
			code:    ctl.ExitError,
			errHas:  []string{"version mismatch"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeAPI{replies: c.replies}
			srv := httptest.NewServer(f)
			defer srv.Close()
			out, errOut, code := runCLI(t, f, srv.URL, c)
			check(t, c, f, out, errOut, code)
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		args   []string
		stdin  string
		errHas []string
	}{
		{"no command", nil, "", []string{"a command is required", "Usage: checkctl [--url URL]"}},
		{"unknown command", []string{"frobnicate"}, "", []string{`unknown command "frobnicate"`, "Commands:"}},
		{"group without subcommand", []string{"connection"}, "", []string{`"connection" needs a subcommand`, "connection show <connectionId>"}},
		{"unknown subcommand", []string{"queues", "drain"}, "", []string{`unknown command "queues drain"`, "queues pause <queue>"}},
		{"missing argument", []string{"connection", "show"}, "", []string{"missing arguments: <connectionId>", "Usage: checkctl connection show <connectionId>"}},
		{"extra argument", []string{"company", "create", "Acme", "Corp"}, "", []string{`unexpected argument "Corp"`, "Usage: checkctl company create <name>"}},
		{"empty argument", []string{"connection", "show", " "}, "", []string{"an argument is empty"}},
		{"unknown flag", []string{"companies", "list", "--colour"}, "", []string{"unknown flag: --colour", "Usage: checkctl companies list"}},
		{"bad output", []string{"companies", "list", "--output", "yaml"}, "", []string{`--output must be json or table, not "yaml"`}},
		{"bad limit", []string{"connections", "list", "co_1", "--limit", "0"}, "", []string{"--limit must be from 1 to 1000"}},
		{"bad limit value", []string{"connections", "list", "co_1", "--limit", "ten"}, "", []string{`invalid argument "ten" for "--limit"`}},
		{"bad history limit", []string{"connection", "history", "cn_1", "--limit", "5000"}, "", []string{"--limit must be from 1 to 1000"}},
		{"create without datasource", []string{"connection", "create", "co_1", "--username", "u", "--password", "p"}, "", []string{"--datasource is required"}},
		{"create without username", []string{"connection", "create", "co_1", "--datasource", "sandbox", "--password", "p"}, "", []string{"--username is required"}},
		{"create without password", []string{"connection", "create", "co_1", "--datasource", "sandbox", "--username", "u"}, "", []string{"a password is required"}},
		{"both password flags", []string{"connection", "credentials", "cn_1", "--username", "u", "--password", "p", "--password-stdin"}, "p\n", []string{"not both"}},
		{"empty stdin password", []string{"connection", "credentials", "cn_1", "--username", "u", "--password-stdin"}, "\n", []string{"empty password"}},
		{"set without fields", []string{"connection", "set", "cn_1"}, "", []string{"nothing to change"}},
		{"set bad occupancy", []string{"connection", "set", "cn_1", "--occupancy", "lots"}, "", []string{`--occupancy must be a number`}},
		{"accounts without account", []string{"accounts", "confirm", "cn_1"}, "", []string{"missing arguments: <connectionId> <accountId>..."}},
		{"bad url", []string{"--url", "ftp://x", "companies", "list"}, "", []string{`API URL "ftp://x" is not an http(s) URL`}},
		{"help for unknown command", []string{"help", "nope"}, "", []string{`no help for unknown command "nope"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeAPI{}
			srv := httptest.NewServer(f)
			defer srv.Close()
			var out, errb bytes.Buffer
			args := append([]string{"--url", srv.URL}, c.args...)
			code := ctl.Run(context.Background(), args, ctl.Env{Stdin: strings.NewReader(c.stdin), Stdout: &out, Stderr: &errb,
				Getenv: func(string) string { return "" }})
			if code != ctl.ExitUsage {
				t.Errorf("exit code %d, want %d (usage)", code, ctl.ExitUsage)
			}
			if len(f.got) != 0 {
				t.Errorf("a usage error sent requests: %+v", f.got)
			}
			if out.Len() != 0 {
				t.Errorf("a usage error printed on stdout:\n%s", out.String())
			}
			if !strings.Contains(errb.String(), "Usage: checkctl") {
				t.Errorf("stderr has no help text:\n%s", errb.String())
			}
			for _, s := range c.errHas {
				if !strings.Contains(errb.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, errb.String())
				}
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, c := range []struct {
		name   string
		args   []string
		outHas []string
	}{
		{"--help", []string{"--help"}, []string{"Usage: checkctl [--url URL]", "connections list <companyId>", "Exit codes: 0 ok, 1 API or other error, 2 usage error, 3 not found, 4 conflict or refused"}},
		{"help", []string{"help"}, []string{"Commands:"}},
		{"help command", []string{"help", "connection", "create"}, []string{"Usage: checkctl connection create <companyId> --datasource D --username U", "--password-stdin", "Global flags:", "--api-key"}},
		{"help group", []string{"help", "queues"}, []string{"Usage: checkctl queues <command>", "queues resume <queue>"}},
		{"group --help", []string{"accounts", "--help"}, []string{"accounts confirm <connectionId> <accountId>..."}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := ctl.Run(context.Background(), c.args, ctl.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
			if code != ctl.ExitOK || errb.Len() != 0 {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, errb.String())
			}
			for _, s := range c.outHas {
				if !strings.Contains(out.String(), s) {
					t.Errorf("help lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
	// Every command has a --help that exits 0 with its own synopsis.
	for _, name := range []string{"companies list", "company create", "company deactivate", "company reactivate", "company link",
		"connections list", "connection create", "connection show", "connection history", "connection deactivate",
		"connection reactivate", "connection set", "connection refresh", "connection credentials", "connection link",
		"accounts confirm", "accounts reject", "queues list", "queues pause", "queues resume", "statuses", "store keys", "store rekey"} {
		t.Run(name+" --help", func(t *testing.T) {
			var out, errb bytes.Buffer
			code := ctl.Run(context.Background(), append(strings.Fields(name), "--help"),
				ctl.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
			if code != ctl.ExitOK || !strings.HasPrefix(out.String(), "Usage: checkctl "+name) {
				t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
			}
		})
	}
}

func TestEnvironmentSetsURLAndKey(t *testing.T) {
	f := &fakeAPI{replies: []reply{{200, `{"companies":[]}`}}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	env := map[string]string{ctl.EnvURL: srv.URL + "/", ctl.EnvAPIKey: testKey}
	var out, errb bytes.Buffer
	code := ctl.Run(context.Background(), []string{"companies", "list"},
		ctl.Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	if code != ctl.ExitOK || len(f.got) != 1 || f.got[0].path != "/v1/company" || f.keys[0] != testKey {
		t.Fatalf("exit %d, requests %+v, keys %q, stderr %s", code, f.got, f.keys, errb.String())
	}
	if out.String() != "ID  NAME  ACTIVE  CREATED\n" {
		t.Errorf("empty list printed %q", out.String())
	}

	// Flags override the environment.
	f2 := &fakeAPI{replies: []reply{{200, `{"companies":[]}`}}}
	srv2 := httptest.NewServer(f2)
	defer srv2.Close()
	code = ctl.Run(context.Background(), []string{"companies", "list", "--url", srv2.URL, "--api-key", "flag-key"},
		ctl.Env{Stdout: io.Discard, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	if code != ctl.ExitOK || len(f2.got) != 1 || f2.keys[0] != "flag-key" || len(f.got) != 1 {
		t.Fatalf("flags did not override the environment: exit %d, keys %q", code, f2.keys)
	}
}

// Without a key configured nothing is sent: every route needs one.
func TestNoKeySendsNothing(t *testing.T) {
	f := &fakeAPI{replies: []reply{{200, `{"companies":[]}`}}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	for _, args := range [][]string{{"statuses"}, {"companies", "list", "-o", "json"}, {"--api-key", "", "queues", "list"}} {
		var out, errb bytes.Buffer
		code := ctl.Run(context.Background(), append([]string{"--url", srv.URL}, args...),
			ctl.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
		if code != ctl.ExitUsage || !strings.Contains(errb.String(), "set --api-key or CHECKD_API_KEY") || out.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s", args, code, out.String(), errb.String())
		}
	}
	if len(f.got) != 0 {
		t.Fatalf("requests sent without a key: %+v", f.got)
	}
	// A wrong key is the API's refusal.
	f.replies = []reply{{401, `{"error":{"code":"unauthorized","message":"the X-API-Key header does not match any configured API key"}}`}}
	var errb bytes.Buffer
	code := ctl.Run(context.Background(), []string{"--url", srv.URL, "--api-key", "wrong-key", "statuses"},
		ctl.Env{Stdout: io.Discard, Stderr: &errb, Getenv: func(string) string { return "" }})
	if code != ctl.ExitError || !strings.Contains(errb.String(), "does not match") {
		t.Fatalf("wrong key: exit %d, stderr:\n%s", code, errb.String())
	}
}

func TestUnreachableServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	var errb bytes.Buffer
	code := ctl.Run(context.Background(), []string{"--url", url, "--api-key", testKey, "companies", "list"},
		ctl.Env{Stdout: io.Discard, Stderr: &errb, Getenv: func(string) string { return "" }})
	if code != ctl.ExitError || !strings.Contains(errb.String(), "cannot reach checkd at "+url) {
		t.Fatalf("exit %d, stderr:\n%s", code, errb.String())
	}
}

func TestAllStopsOnARepeatedCursor(t *testing.T) {
	f := &fakeAPI{replies: []reply{
		{200, `{"connections":[],"nextCursor":"0.1"}`},
		{200, `{"connections":[],"nextCursor":"0.1"}`},
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var errb bytes.Buffer
	code := ctl.Run(context.Background(), []string{"--url", srv.URL, "--api-key", testKey, "connections", "list", "co_1", "--all"},
		ctl.Env{Stdout: io.Discard, Stderr: &errb, Getenv: func(string) string { return "" }})
	if code != ctl.ExitError || !strings.Contains(errb.String(), "twice") || len(f.got) != 2 {
		t.Fatalf("exit %d, %d requests, stderr:\n%s", code, len(f.got), errb.String())
	}
}

// run runs checkctl against a fresh fake API with the key set; it returns
// stdout, stderr, the exit code and the requests.
func run(t *testing.T, replies []reply, args ...string) (string, string, int, []request) {
	t.Helper()
	f := &fakeAPI{replies: replies}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var out, errb bytes.Buffer
	code := ctl.Run(context.Background(), append([]string{"--url", srv.URL, "--api-key", testKey}, args...),
		ctl.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return out.String(), errb.String(), code, f.got
}

// Under -o json every error is one JSON object on stderr, stdout stays
// empty, and the exit code is what it is in table mode.
func TestJSONErrors(t *testing.T) {
	for _, c := range []struct {
		name    string
		args    []string
		replies []reply
		code    int
		want    map[string]any // fields of "error"
	}{
		{"not found", []string{"connection", "show", "cn_x", "-o", "json"},
			[]reply{{404, `{"error":{"code":"not_found","message":"connection \"cn_x\" not found"}}`}}, ctl.ExitNotFound,
			map[string]any{"code": "not_found", "message": `connection "cn_x" not found`, "status": 404.0}},
		{"refused accounts", []string{"--output", "json", "accounts", "reject", "cn_1", "ac_9"},
			[]reply{{400, `{"error":{"code":"invalid_request","message":"accounts refused","accounts":{"ac_9":"no such account"}}}`}}, ctl.ExitError,
			map[string]any{"code": "invalid_request", "status": 400.0, "accounts": map[string]any{"ac_9": "no such account"}}},
		{"conflict", []string{"connection", "refresh", "cn_1", "--output=json"},
			[]reply{{409, `{"error":{"code":"not_allowed","message":"connection cn_1 is PASSWORD_INCORRECT"}}`}}, ctl.ExitConflict,
			map[string]any{"code": "not_allowed", "status": 409.0}},
		{"usage", []string{"connection", "show", "-o", "json"}, nil, ctl.ExitUsage,
			map[string]any{"code": "usage", "message": "missing arguments: <connectionId>"}},
		{"unknown flag", []string{"-o", "json", "connection", "show", "cn_1", "--colour"}, nil, ctl.ExitUsage,
			map[string]any{"code": "usage", "message": "unknown flag: --colour"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code, _ := run(t, c.replies, c.args...)
			var got struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal([]byte(errOut), &got); err != nil || code != c.code || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr not one JSON object (%v):\n%s", code, out, err, errOut)
			}
			for k, v := range c.want {
				if !reflect.DeepEqual(got.Error[k], v) {
					t.Errorf("error.%s = %#v, want %#v (%s)", k, got.Error[k], v, errOut)
				}
			}
			if c.code == ctl.ExitNotFound && !strings.Contains(fmt.Sprint(got.Error["hint"]), "checkctl connections list") {
				t.Errorf("a 404 under -o json has no hint naming checkctl: %s", errOut)
			}
		})
	}
}

// --url takes the base URL with or without the API's /v1.
func TestURLWithV1(t *testing.T) {
	f := &fakeAPI{replies: []reply{{200, `{"companies":[]}`}, {200, `{"companies":[]}`}}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	for _, u := range []string{srv.URL + "/v1", srv.URL + "/v1/"} {
		code := ctl.Run(context.Background(), []string{"--url", u, "--api-key", testKey, "companies", "list"},
			ctl.Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }})
		if code != ctl.ExitOK {
			t.Fatalf("--url %s: exit %d", u, code)
		}
	}
	for _, r := range f.got {
		if r.path != "/v1/company" {
			t.Errorf("--url with /v1 requested %s, want /v1/company", r.path)
		}
	}
}

// A usage error shows the one command's usage, not every command.
func TestUsageIsShort(t *testing.T) {
	_, errOut, code, got := run(t, nil, "connection", "show")
	if code != ctl.ExitUsage || len(got) != 0 {
		t.Fatalf("exit %d, %d requests", code, len(got))
	}
	for _, s := range []string{"queues", "companies list", "connection create", "Global flags"} {
		if strings.Contains(errOut, s) {
			t.Errorf("the usage of connection show mentions %q:\n%s", s, errOut)
		}
	}
	if n := strings.Count(errOut, "\n"); n > 8 {
		t.Errorf("a usage error of %d lines:\n%s", n, errOut)
	}
}

// The completion scripts come from the command tree, and the tree
// completes: "connection s" offers set and show.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_checkctl", "zsh": "#compdef checkctl"} {
		out, errOut, code, got := run(t, nil, "completion", shell)
		if code != ctl.ExitOK || !strings.Contains(out, want) || errOut != "" || len(got) != 0 {
			t.Errorf("completion %s: exit %d, %d requests, stderr %q, script lacks %q", shell, code, len(got), errOut, want)
		}
	}
	if _, errOut, code, _ := run(t, nil, "completion", "fish"); code != ctl.ExitUsage || !strings.Contains(errOut, "bash and zsh") {
		t.Errorf("completion fish: exit %d, stderr %q", code, errOut)
	}
	out, _, code, _ := run(t, nil, "__complete", "connection", "s")
	if code != ctl.ExitOK || !strings.Contains(out, "set\t") || !strings.Contains(out, "show\t") || strings.Contains(out, "refresh") {
		t.Errorf("completing \"connection s\": exit %d:\n%s", code, out)
	}
}

func TestVersion(t *testing.T) {
	want := "checkctl " + version.Get().String() + "\n"
	for _, flag := range []string{"--version", "-v"} {
		out, _, code, got := run(t, nil, flag)
		if code != ctl.ExitOK || out != want || len(got) != 0 {
			t.Errorf("%s: exit %d, %q, want %q", flag, code, out, want)
		}
	}
}

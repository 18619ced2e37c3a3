package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
)

// TestStrictInput: what encoding/json accepts but the API refuses, with a
// 400 naming the field and nothing written: field names in another case
// ({"ISACTIVE":false} deactivated a connection), a field given twice (the
// last won), text that is not UTF-8 or has an unpaired surrogate escape
// (stored as U+FFFD).
func TestStrictInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	c, acct, tok := fixture(t, e, checks.ConnConnected)
	details := "/v1/connection/" + c.ID + "/details"
	conns := "/v1/connection/company/" + co.ID
	post := func(path, body string) call { return call{method: "POST", path: path, body: body} }
	patch := func(path, body string) call { return call{method: "PATCH", path: path, body: body} }
	bad := api.CodeInvalidRequest
	e.runErrorCases(t, []errorCase{
		{"name in capitals", post("/v1/company", `{"NAME":"x"}`), 400, bad, []string{`"NAME"`, "case-sensitive", `did you mean "name"`}},
		{"isActive in capitals", patch(details, `{"ISACTIVE":false}`), 400, bad, []string{`"ISACTIVE"`, `"isActive"`}},
		{"company flag in another case", patch("/v1/company/"+co.ID, `{"isactive":false}`), 400, bad, []string{`"isactive"`, `"isActive"`}},
		{"nested field in another case", post(conns, `{"datasource":"sandbox","credentials":{"Username":"user_good"}}`), 400, bad, []string{`"credentials.Username"`, `"username"`}},
		{"datasource object in another case", post(conns, `{"datasource":{"Name":"sandbox"},"credentials":{"username":"u"}}`), 400, bad, []string{`"datasource.Name"`}},
		{"account field in another case", patch("/v1/connection/"+c.ID+"/status", `{"accounts":[{"ACCOUNTID":"`+acct+`","trackingStatus":"ENABLED"}]}`), 400, bad, []string{`"accounts[0].ACCOUNTID"`}},
		{"link token in another case", call{method: "PATCH", path: "/v1/link/credentials", key: "-", body: `{"Token":"` + tok + `","credentials":{"username":"u"}}`}, 400, bad, []string{`"Token"`}},
		{"duplicate field", post("/v1/company", `{"name":"a","name":"b"}`), 400, bad, []string{`"name" appears twice`}},
		{"duplicate isActive", patch(details, `{"isActive":true,"isActive":false}`), 400, bad, []string{`"isActive" appears twice`}},
		{"duplicate nested field", post(conns, `{"datasource":"sandbox","credentials":{"username":"a","username":"b"}}`), 400, bad, []string{`"credentials.username" appears twice`}},
		{"duplicate extra key", post(conns, `{"datasource":"sandbox","credentials":{"username":"a","extra":{"pin":"1","pin":"2"}}}`), 400, bad, []string{`"credentials.extra.pin" appears twice`}},
		{"invalid UTF-8 in a name", post("/v1/company", "{\"name\":\"Acme\xff\"}"), 400, bad, []string{`"name" is not valid UTF-8`}},
		{"truncated UTF-8 sequence", post("/v1/company", "{\"name\":\"Acm\xc3\"}"), 400, bad, []string{`"name" is not valid UTF-8`}},
		{"overlong UTF-8", post("/v1/company", "{\"name\":\"\xc0\xafx\"}"), 400, bad, []string{`"name" is not valid UTF-8`}},
		{"UTF-8 surrogate bytes", post("/v1/company", "{\"name\":\"\xed\xa0\x80x\"}"), 400, bad, []string{`"name" is not valid UTF-8`}},
		{"lone high surrogate escape", post("/v1/company", `{"name":"a\ud800"}`), 400, bad, []string{`"name"`, "surrogate"}},
		{"lone low surrogate escape", post("/v1/company", `{"name":"\udc00a"}`), 400, bad, []string{`"name"`}},
		{"reversed surrogate pair", post("/v1/company", `{"name":"\ude00\ud83d"}`), 400, bad, []string{`"name"`}},
		{"high surrogate then a plain escape", post("/v1/company", `{"name":"\ud83d\u0041"}`), 400, bad, []string{`"name"`}},
		{"invalid UTF-8 in a password", post(conns, "{\"datasource\":\"sandbox\",\"credentials\":{\"username\":\"u\",\"password\":\"p\xfe\"}}"), 400, bad, []string{`"credentials.password" is not valid UTF-8`}},
		{"invalid UTF-8 in an extra key", post(conns, "{\"datasource\":\"sandbox\",\"credentials\":{\"username\":\"u\",\"extra\":{\"p\xff\":\"1\"}}}"), 400, bad, []string{`field name in field "credentials.extra"`}},
		{"invalid UTF-8 in a field name", post("/v1/company", "{\"name\":\"a\",\"n\xffme\":\"b\"}"), 400, bad, []string{"unknown field"}},
		{"invalid UTF-8 in a known field's name", post("/v1/company", "{\"n\xffme\":\"b\",\"name\":\"a\"}"), 400, bad, []string{"unknown field"}},
	})

	// Still accepted: what is valid, including text that merely looks
	// like the refused cases.
	for _, tc := range []struct{ body, want string }{
		{`{"name":"\ud83d\ude00 Acme"}`, "😀 Acme"},
		{`{"name":"caf\u00e9"}`, "café"},
		{"{\"name\":\"caf\xc3\xa9\"}", "café"},
		{`{"name":"replacement \ufffd given"}`, "replacement \ufffd given"},
		{"{\"name\":\"literal \xef\xbf\xbd\"}", "literal \ufffd"},
		{`{"name":"back\\ud800slash"}`, `back\ud800slash`},
		{`{"name":"quote\"d"}`, `quote"d`},
	} {
		w := e.do(post("/v1/company", tc.body))
		got := decodeAs[map[string]any](t, w)
		if w.Code != http.StatusCreated || got["name"] != tc.want {
			t.Errorf("POST %s: %d %v; want 201 named %q", tc.body, w.Code, got, tc.want)
		}
	}
	if got, err := e.st.GetConnection(context.Background(), c.ID); err != nil || !got.IsActive {
		t.Fatalf("connection after the refused requests: active %v, %v", got.IsActive, err)
	}
}

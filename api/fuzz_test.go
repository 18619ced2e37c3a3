package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"unicode/utf8"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/store"
)

// fuzzPost posts body with Content-Type ct ("" sends none) to a fresh
// database and checks the invariants: never 5xx, a JSON answer, nothing
// written on a non-2xx, something written on a 2xx, and no credentials
// echoed back.
func fuzzPost(t *testing.T, e *env, path func() string, body, ct string) {
	fuzzSend(t, e, "POST", func() (string, *strings.Replacer) { return path(), strings.NewReplacer() }, body, ct, true)
}

// fuzzSend sends body to the path setup returns after flushing the
// database; the replacer setup returns fills placeholders of the body
// ($TOKEN, $ACCOUNT) with the fixture's values. mustWrite: a 2xx must have
// written (an admin PATCH may legitimately change nothing).
func fuzzSend(t *testing.T, e *env, method string, setup func() (string, *strings.Replacer), body, ct string, mustWrite bool) {
	e.mr.FlushAll()
	p, vars := setup()
	body = vars.Replace(body)
	e.logs.Reset() // the hook keeps every entry: bound its memory over a long run
	e.enq.Reset(nil)
	before := e.mr.Dump()
	if ct == "" {
		ct = "-"
	}
	key := ""
	if strings.HasPrefix(p, "/v1/link/") {
		key = "-"
	}
	w := e.doAs(t, call{method: method, path: p, body: body, ct: ct, key: key})
	after := e.mr.Dump()
	if w.Code >= 500 {
		t.Fatalf("%s %s %q (Content-Type %q): %d %s", method, p, body, ct, w.Code, w.Body)
	}
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatalf("answer %d is not a JSON object: %q", w.Code, w.Body)
	}
	if w.Code/100 != 2 {
		if after != before {
			t.Fatalf("a %d wrote to Redis for body %q:\nbefore:\n%s\nafter:\n%s", w.Code, body, before, after)
		}
		if n := len(e.enq.Enqueued()); n != 0 {
			t.Fatalf("a %d enqueued %d checks for body %q", w.Code, n, body)
		}
		if _, ok := raw["error"].(map[string]any); !ok {
			t.Fatalf("a %d without an error object: %s", w.Code, w.Body)
		}
		return
	}
	if mustWrite && after == before {
		t.Fatalf("a %d wrote nothing", w.Code)
	}
	if why := strictViolation(body); why != "" {
		t.Fatalf("a %d took a body the strict decoding refuses (%s): %q", w.Code, why, body)
	}
	for _, k := range []string{"credentials", "password", "username", "extra"} {
		if _, ok := raw[k]; ok {
			t.Fatalf("answer has field %q: %s", k, w.Body)
		}
	}
}

// requestFields are the JSON field names of every request body, exactly.
var requestFields = map[string]bool{"name": true, "datasource": true, "credentials": true, "username": true, "password": true,
	"extra": true, "isActive": true, "startDate": true, "occupancyMultiplier": true, "accounts": true, "accountId": true,
	"trackingStatus": true, "token": true, "scopes": true, "companies": true,
	// the webhook routes' bodies
	"url": true, "description": true, "filterTypes": true, "companyIds": true, "disabled": true, "eventType": true,
	"since": true, "until": true}

// strictViolation says why the API must refuse body, by rules of its own
// (not the API's code): a field name not exactly one of requestFields
// (outside credentials.extra, whose keys are free), a name twice in one
// object, invalid UTF-8, or text decoding to U+FFFD the body never spelt
// (an unpaired surrogate escape). "" when none holds.
func strictViolation(body string) string {
	if !utf8.ValidString(body) {
		return "invalid UTF-8"
	}
	dec := json.NewDecoder(strings.NewReader(body))
	spelt := strings.Contains(strings.ToLower(body), `\ufffd`) || strings.ContainsRune(body, utf8.RuneError)
	type level struct {
		object, free bool
		seen         map[string]bool
		expectKey    bool
	}
	var stack []*level
	lastKey := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) || err != nil {
			return "" // not JSON: the API refused it or the decoder will
		}
		top := (*level)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok {
			if strings.ContainsRune(s, utf8.RuneError) && !spelt {
				return "U+FFFD the body did not spell"
			}
			if top != nil && top.object && top.expectKey {
				if top.seen[s] {
					return "field " + s + " twice"
				}
				top.seen[s] = true
				if !top.free && !requestFields[s] {
					return "field " + s + " not exactly a request field"
				}
				lastKey, top.expectKey = s, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &level{object: true, free: lastKey == "extra", seen: map[string]bool{}, expectKey: true})
			lastKey = ""
			continue
		case json.Delim('['):
			stack = append(stack, &level{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return ""
			}
		}
		if top := stack[len(stack)-1]; top.object {
			top.expectKey = true
		}
	}
}

func FuzzCreateCompany(f *testing.F) {
	for _, s := range []string{`{"name":"Acme"}`, `{"name":""}`, `{"name":" "}`, `{`, `[]`, `null`, `""`, `{"name":"a"} {}`,
		`{"name":1}`, `{"nmae":"x"}`, ``, `{"name":"\u0000\ud800"}`, `{"name":"a","name":"b"}`, "{\"name\":\"a\"}\n",
		`{"NAME":"x"}`, `{"Name":"x"}`, "{\"name\":\"Acme\xff\"}", `{"name":"\ud83d\ude00"}`, `{"name":"\ude00\ud83d"}`,
		`{"name":"\ufffd"}`, "{\"name\":\"\xef\xbf\xbd\"}", `{"name":"a\\ud800"}`} {
		f.Add(s, "application/json")
	}
	f.Add(`{"name":"x"}`, "text/plain")
	f.Add(`{"name":"x"}`, "")
	f.Add(`{"name":"x"}`, "application/json; charset=utf-8")
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body, ct string) {
		fuzzPost(t, e, func() string { return "/v1/company" }, body, ct)
	})
}

// FuzzCreateAPIKey: POST /v1/keys never answers 5xx, writes nothing when
// it refuses, and never echoes more than the key it made.
func FuzzCreateAPIKey(f *testing.F) {
	for _, s := range []string{
		`{"name":"svc","scopes":["read","write"]}`, `{"name":"svc","scopes":["read"],"companies":["$CO"]}`,
		`{"name":"svc","scopes":["admin"],"companies":["$CO"]}`, `{"name":"svc","scopes":["read"],"companies":["co_0000000000000000"]}`,
		`{"name":"svc","scopes":[]}`, `{"name":"svc"}`, `{"name":"","scopes":["read"]}`, `{"name":"link","scopes":["read"]}`,
		`{"name":"Svc","scopes":["read"]}`, `{"name":"svc","scopes":["READ"]}`, `{"name":"svc","scopes":["read","read"]}`,
		`{"name":"svc","scopes":"read"}`, `{"name":"svc","scopes":["read"],"SCOPES":["admin"]}`, `{"name":"s\u0000","scopes":["read"]}`,
		"{\"name\":\"s\xff\",\"scopes\":[\"read\"]}", `{"name":"svc","scopes":["read"],"companies":[1]}`, `{}`, `[]`, `{`, ``,
	} {
		f.Add(s, "application/json")
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body, ct string) {
		fuzzSend(t, e, "POST", withCompany(t, e, "/v1/keys"), body, ct, true)
	})
}

// withCompany is a fuzzSend target: path, with $CO in bodies standing for
// a company made for the input.
func withCompany(t *testing.T, e *env, path string) func() (string, *strings.Replacer) {
	return func() (string, *strings.Replacer) {
		co, err := e.st.CreateCompany(context.Background(), store.NewCompany{Name: "Acme"})
		if err != nil {
			t.Fatal(err)
		}
		return path, strings.NewReplacer("$CO", co.ID)
	}
}

func FuzzCreateConnection(f *testing.F) {
	for _, s := range []string{
		goodConnection,
		`{"datasource":"webportal","credentials":{"username":"u","extra":{"pin":"1"}}}`,
		`{"datasource":"nope","credentials":{"username":"u"}}`,
		`{"datasource":"sandbox","credentials":{"password":"p"}}`,
		`{"datasource":"sandbox","credentials":{"username":"u","pin":"1"}}`,
		`{"datasource":"sandbox","credentials":null}`,
		`{"datasource":"sandbox","credentials":{"username":"u"}} trailing`,
		`{"datasource":"sandbox","credentials":{"username":"u","extra":{"a":1}}}`,
		`{"datasource":"sandbox","name":"` + string(make([]byte, 300)) + `","credentials":{"username":"u"}}`,
		`{"DataSource":"sandbox","credentials":{"username":"u"}}`, `{"datasource":{"NAME":"sandbox"},"credentials":{"username":"u"}}`,
		`{"datasource":"sandbox","credentials":{"username":"u","USERNAME":"v"}}`, `{"datasource":"sandbox","datasource":"x","credentials":{"username":"u"}}`,
		`{"datasource":"sandbox","credentials":{"username":"u","extra":{"a":"1","a":"2"}}}`, `{"datasource":"sandbox","credentials":{"username":"u","extra":{"A":"1","a":"2"}}}`,
		"{\"datasource\":\"sandbox\",\"credentials\":{\"username\":\"u\xc3\",\"password\":\"p\"}}",
		`{"datasource":"sandbox","credentials":{"username":"u","password":"\udfff"}}`,
		`{}`, `[]`, `{`, ``,
	} {
		f.Add(s, "application/json")
	}
	f.Add(goodConnection, "")
	f.Add(goodConnection, "text/plain")
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body, ct string) {
		fuzzPost(t, e, func() string {
			co, err := e.st.CreateCompany(context.Background(), store.NewCompany{Name: "Acme"})
			if err != nil {
				t.Fatal(err)
			}
			return "/v1/connection/company/" + co.ID
		}, body, ct)
	})
}

// fixture makes a company with a connection that has two discovered
// accounts, and returns the connection, its first account and a fresh
// link token for it.
func fixture(t *testing.T, e *env, status checks.ConnectionStatus) (store.Connection, string, string) {
	co, err := e.st.CreateCompany(context.Background(), store.NewCompany{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	c := createConnection(t, e, co.ID, "user_good")
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "A-1"}, {Number: "A-2"}}})
	if status != checks.ConnConnected {
		recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: status})
	}
	c, err = e.st.GetConnection(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := e.links.Sign(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return c, c.Accounts[0].ID, tok
}

// fuzzPatch fuzzes a PATCH route of a fixture connection ("$ID" in path).
func fuzzPatch(f *testing.F, path string, status checks.ConnectionStatus, seeds []string) {
	for _, s := range seeds {
		f.Add(s, "application/json")
	}
	for _, s := range []string{`{}`, `[]`, `{`, ``, `null`, `"x"`, `{"a":1}`} {
		f.Add(s, "application/json")
	}
	f.Add(seeds[0], "")
	f.Add(seeds[0], "text/plain")
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body, ct string) {
		fuzzSend(t, e, "PATCH", func() (string, *strings.Replacer) {
			c, acct, tok := fixture(t, e, status)
			return strings.ReplaceAll(path, "$ID", c.ID), strings.NewReplacer("$ACCOUNT", acct, "$TOKEN", tok, "$ID", c.ID)
		}, body, ct, false)
	})
}

func FuzzPatchDetails(f *testing.F) {
	fuzzPatch(f, "/v1/connection/$ID/details", checks.ConnConnected, []string{
		`{"isActive":false}`, `{"isActive":true}`, `{"name":"Electric","startDate":"2024-01-31","occupancyMultiplier":1.5}`,
		`{"startDate":""}`, `{"startDate":"2024-02-30"}`, `{"occupancyMultiplier":-1}`, `{"occupancyMultiplier":1e400}`,
		`{"isActive":false,"startDate":"x"}`, `{"isActive":"false"}`, `{"isActive":null}`, `{"name":"` + strings.Repeat("n", 201) + `"}`,
		`{"isActive":true} {}`, `{"status":"CONNECTED"}`,
		`{"ISACTIVE":false}`, `{"IsActive":false}`, `{"isActive":true,"isActive":false}`, "{\"name\":\"E\xffx\"}", `{"name":"\ud800"}`,
	})
}

func FuzzPatchCompany(f *testing.F) {
	for _, s := range []string{`{"isActive":false}`, `{"isActive":true}`, `{"isActive":null}`, `{"isActive":0}`, `{}`, `{"name":"x"}`, `{`, ``,
		`{"ISACTIVE":false}`, `{"isactive":false}`, `{"isActive":false,"isActive":true}`} {
		f.Add(s, "application/json")
	}
	f.Add(`{"isActive":false}`, "text/plain")
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body, ct string) {
		fuzzSend(t, e, "PATCH", func() (string, *strings.Replacer) {
			c, _, _ := fixture(t, e, checks.ConnConnected)
			return "/v1/company/" + c.CompanyID, strings.NewReplacer()
		}, body, ct, false)
	})
}

func FuzzConfirmAccounts(f *testing.F) {
	fuzzPatch(f, "/v1/connection/$ID/status", checks.ConnConnected, []string{
		`{"accounts":[{"accountId":"$ACCOUNT","trackingStatus":"ENABLED"}]}`,
		`{"accounts":[{"accountId":"$ACCOUNT","trackingStatus":"disabled"}]}`,
		`{"accounts":[{"accountId":"$ACCOUNT","trackingStatus":"UNSET"}]}`,
		`{"accounts":[{"accountId":"ac_0000000000000000","trackingStatus":"ENABLED"}]}`,
		`{"accounts":[{"accountId":"$ACCOUNT","trackingStatus":"ENABLED"},{"accountId":"$ACCOUNT","trackingStatus":"DISABLED"}]}`,
		`{"accounts":[{"trackingStatus":"ENABLED"}]}`, `{"accounts":[]}`, `{"accounts":null}`, `{"accounts":[null]}`,
		`{"accounts":[{"AccountId":"$ACCOUNT","trackingStatus":"ENABLED"}]}`, `{"Accounts":[{"accountId":"$ACCOUNT","trackingStatus":"ENABLED"}]}`,
		`{"accounts":[{"accountId":"$ACCOUNT","accountId":"$ACCOUNT","trackingStatus":"ENABLED"}]}`,
	})
}

func FuzzUpdateCredentials(f *testing.F) {
	fuzzPatch(f, "/v1/connection/$ID/credentials", checks.ConnPasswordIncorrect, []string{
		`{"credentials":{"username":"user_good","password":"p"}}`, `{"credentials":{"username":"u","extra":{"pin":"1"}}}`,
		`{"credentials":{"username":" "}}`, `{"credentials":null}`, `{"credentials":{"password":"p"}}`,
		`{"credentials":{"username":"u","extra":{"a":1}}}`, `{"credentials":{"username":"` + strings.Repeat("u", 1025) + `"}}`,
		`{"Credentials":{"username":"u"}}`, `{"credentials":{"username":"u"},"credentials":{"username":"v"}}`,
		"{\"credentials\":{\"username\":\"u\",\"password\":\"\xff\"}}", `{"credentials":{"username":"\ud800\ud800"}}`,
	})
}

func FuzzLinkCredentials(f *testing.F) {
	fuzzPatch(f, "/v1/link/credentials", checks.ConnPasswordIncorrect, []string{
		`{"token":"$TOKEN","credentials":{"username":"user_good","password":"p"}}`,
		`{"token":"$TOKEN","credentials":{"username":""}}`, `{"token":"$TOKEN"}`, `{"token":"$TOKEN","credentials":null}`,
		`{"token":"$TOKENx","credentials":{"username":"u"}}`, `{"token":"x$TOKEN","credentials":{"username":"u"}}`,
		`{"token":"","credentials":{"username":"u"}}`, `{"credentials":{"username":"u"}}`,
		`{"token":"$TOKEN","connectionId":"$ID","credentials":{"username":"u"}}`,
		`{"token":"$TOKEN","credentials":{"username":"u","extra":{"a":"","b":"","c":"","d":"","e":"","f":"","g":"","h":"","i":"","j":"","k":"","l":"","m":"","n":"","o":"","p":"","q":""}}}`,
		`{"token":"$TOKEN","credentials":{"username":"u"}} trailing`,
		`{"TOKEN":"$TOKEN","credentials":{"username":"u"}}`, `{"token":"$TOKEN","token":"$TOKEN","credentials":{"username":"u"}}`,
		"{\"token\":\"$TOKEN\",\"credentials\":{\"username\":\"\xfe\"}}",
	})
}

// FuzzLinkConnection fuzzes a new-connection link's body; "$COTOKEN" is a
// fresh link of the fixture's company, "$TOKEN" a link of its connection
// (refused here).
func FuzzLinkConnection(f *testing.F) {
	for _, s := range []string{
		`{"token":"$COTOKEN","datasource":"sandbox","name":"Gas","credentials":{"username":"user_good","password":"p"}}`,
		`{"token":"$COTOKEN","datasource":"sandbox","credentials":{"username":"u"}}`,
		`{"token":"$COTOKEN","datasource":"nope","credentials":{"username":"u"}}`,
		`{"token":"$COTOKEN","credentials":{"username":"u"}}`, `{"token":"$COTOKEN","datasource":"sandbox"}`,
		`{"token":"$TOKEN","datasource":"sandbox","credentials":{"username":"u"}}`,
		`{"token":"$COTOKENx","datasource":"sandbox","credentials":{"username":"u"}}`,
		`{"token":"$COTOKEN","datasource":"sandbox","name":"a\u001bb","credentials":{"username":"u"}}`,
		`{"token":"$COTOKEN","datasource":{"name":"sandbox"},"credentials":{"username":"u"}}`,
		`{"token":"$COTOKEN","companyId":"co_x","datasource":"sandbox","credentials":{"username":"u"}}`,
		`{"Token":"$COTOKEN","datasource":"sandbox","credentials":{"username":"u"}}`,
		`{"token":"$COTOKEN","datasource":"sandbox","name":"a","name":"b","credentials":{"username":"u"}}`,
		"{\"token\":\"$COTOKEN\",\"datasource\":\"sandbox\",\"name\":\"\xc0\",\"credentials\":{\"username\":\"u\"}}",
		`{}`, `[]`, `{`, ``, `null`,
	} {
		f.Add(s, "application/json")
	}
	f.Add(`{"token":"$COTOKEN","datasource":"sandbox","credentials":{"username":"u"}}`, "text/plain")
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body, ct string) {
		fuzzSend(t, e, "POST", func() (string, *strings.Replacer) {
			c, _, tok := fixture(t, e, checks.ConnConnected)
			coTok, _, err := e.links.Sign(c.CompanyID)
			if err != nil {
				t.Fatal(err)
			}
			return "/v1/link/connection", strings.NewReplacer("$COTOKEN", coTok, "$TOKEN", tok)
		}, body, ct, false)
	})
}

// FuzzLinkInfo fuzzes the link page's read-only question: whatever the
// body, it never writes, never fails with a 5xx, and answers JSON.
func FuzzLinkInfo(f *testing.F) {
	for _, s := range []string{`{"token":"$COTOKEN"}`, `{"token":"$TOKEN"}`, `{"token":"$TOKENx"}`, `{"token":"x$COTOKEN"}`,
		`{"token":""}`, `{"token":"a.b"}`, `{"token":1}`, `{"token":"$TOKEN","x":1}`, `{}`, `[]`, `{`, ``, `null`} {
		f.Add(s, "application/json")
	}
	f.Add(`{"token":"$TOKEN"}`, "text/plain")
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body, ct string) {
		e.mr.FlushAll()
		c, _, tok := fixture(t, e, checks.ConnPasswordIncorrect)
		coTok, _, err := e.links.Sign(c.CompanyID)
		if err != nil {
			t.Fatal(err)
		}
		body = strings.NewReplacer("$COTOKEN", coTok, "$TOKEN", tok).Replace(body)
		if ct == "" {
			ct = "-"
		}
		before := e.mr.Dump()
		w := e.doAs(t, call{method: "POST", path: "/v1/link/info", body: body, ct: ct, key: "-"})
		if w.Code >= 500 {
			t.Fatalf("%q (Content-Type %q): %d %s", body, ct, w.Code, w.Body)
		}
		if after := e.mr.Dump(); after != before {
			t.Fatalf("link info wrote to Redis for body %q", body)
		}
		var raw map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
			t.Fatalf("answer %d is not a JSON object: %q", w.Code, w.Body)
		}
		if w.Code == 200 && raw["state"] != api.LinkValid {
			t.Fatalf("a fresh link is %v: %s", raw["state"], w.Body)
		}
	})
}

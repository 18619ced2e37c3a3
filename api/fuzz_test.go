package api_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/checkd/checkd/store"
)

// fuzzPost posts body with Content-Type ct ("" sends none) to a fresh
// database and checks the invariants: never 5xx, a JSON answer, nothing
// written on a non-2xx, and no credentials echoed back.
func fuzzPost(t *testing.T, e *env, path func() string, body, ct string) {
	e.mr.FlushAll()
	p := path()
	e.logs.Reset() // the hook keeps every entry: bound its memory over a long run
	before := e.mr.Dump()
	if ct == "" {
		ct = "-"
	}
	w := e.do(call{method: "POST", path: p, body: body, ct: ct})
	after := e.mr.Dump()
	if w.Code >= 500 {
		t.Fatalf("POST %s %q (Content-Type %q): %d %s", p, body, ct, w.Code, w.Body)
	}
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatalf("answer %d is not a JSON object: %q", w.Code, w.Body)
	}
	if w.Code/100 != 2 {
		if after != before {
			t.Fatalf("a %d wrote to Redis for body %q:\nbefore:\n%s\nafter:\n%s", w.Code, body, before, after)
		}
		if _, ok := raw["error"].(map[string]any); !ok {
			t.Fatalf("a %d without an error object: %s", w.Code, w.Body)
		}
		return
	}
	if after == before {
		t.Fatalf("a %d wrote nothing", w.Code)
	}
	for _, k := range []string{"credentials", "password", "username", "extra"} {
		if _, ok := raw[k]; ok {
			t.Fatalf("answer has field %q: %s", k, w.Body)
		}
	}
}

func FuzzCreateCompany(f *testing.F) {
	for _, s := range []string{`{"name":"Acme"}`, `{"name":""}`, `{"name":" "}`, `{`, `[]`, `null`, `""`, `{"name":"a"} {}`,
		`{"name":1}`, `{"nmae":"x"}`, ``, `{"name":"\u0000\ud800"}`, `{"name":"a","name":"b"}`, "{\"name\":\"a\"}\n"} {
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

package httpcheck_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/httpcheck"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/internal/testing/openapitest"
)

// protocolDocument is the checker protocol's OpenAPI document.
const protocolDocument = "openapi.json"

func loadProtocol(t *testing.T) *openapi3.T {
	t.Helper()
	b, err := os.ReadFile(protocolDocument)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapitest.Load(b)
	if err != nil {
		t.Fatalf("checks/httpcheck/%s: %v", protocolDocument, err)
	}
	return doc
}

// TestProtocolDocumentMatchesResultValidate holds the document's status
// lists to what checks.Result.Validate accepts from a checker.
func TestProtocolDocumentMatchesResultValidate(t *testing.T) {
	t.Parallel()
	doc := loadProtocol(t)
	enum := func(schema, prop string) []string {
		var out []string
		for _, v := range doc.Components.Schemas[schema].Value.Properties[prop].Value.Enum {
			out = append(out, v.(string))
		}
		return out
	}
	var conn, acct []string
	for _, s := range checks.ConnectionStatuses {
		if (checks.Result{Status: s}).Validate() == nil {
			conn = append(conn, string(s))
		}
	}
	for _, s := range checks.AccountStatuses {
		r := checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "1", Status: s}}}
		if r.Validate() == nil {
			acct = append(acct, string(s))
		}
	}
	if got := enum("CheckResult", "status"); !slices.Equal(got, conn) {
		t.Errorf("CheckResult.status enum %v; Result.Validate accepts %v", got, conn)
	}
	if got := enum("AccountResult", "status"); !slices.Equal(got, acct) {
		t.Errorf("AccountResult.status enum %v; Result.Validate accepts %v", got, acct)
	}
}

// TestProtocolDocumentDescribesTheBodies checks bodies made of the checks
// types against the document's schemas.
func TestProtocolDocumentDescribesTheBodies(t *testing.T) {
	t.Parallel()
	doc := loadProtocol(t)
	valid := func(schema string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var val any
		if err := json.Unmarshal(b, &val); err != nil {
			t.Fatal(err)
		}
		return doc.Components.Schemas[schema].Value.VisitJSON(val, openapi3.EnableJSONSchema2020())
	}
	for _, r := range []checks.Result{
		{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "100-1", Name: "Main St", Status: checks.AcctPullCompleted}, {Number: "100-2"}}},
		{Status: checks.ConnPasswordIncorrect, Detail: "the login was refused"},
	} {
		if err := valid("CheckResult", r); err != nil {
			t.Errorf("a valid result %+v: %v", r, err)
		}
	}
	if err := valid("CheckResult", checks.Result{Status: checks.ConnPending}); err == nil {
		t.Error("the document accepts PENDING, which Result.Validate refuses")
	}
	for _, c := range []checks.Credentials{{Username: "u", Password: "p"}, {Username: "u", Password: "p", Extra: map[string]string{"pin": "1"}}} {
		if err := valid("Credentials", c); err != nil {
			t.Errorf("credentials %v: %v", c, err)
		}
	}
}

// TestProtocolDocumentDescribesTheWire checks what Checker.Check sends (the
// body and the signature headers, as a checker service receives them) and
// what the Handler answers against the document.
func TestProtocolDocumentDescribesTheWire(t *testing.T) {
	t.Parallel()
	doc := loadProtocol(t)
	schema := func(name string, b []byte) error {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		return doc.Components.Schemas[name].Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
	}
	op := doc.Paths.Find("/check").Post
	got := make(chan captured, 2)
	h, err := httpcheck.NewHandler(sandbox.New(sandbox.Options{}), httpcheck.HandlerConfig{Secret: testSecret, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- captured{header: r.Header.Clone(), body: b}
		r.Body = io.NopCloser(bytes.NewReader(b))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if err := schema("CheckResult", rec.Body.Bytes()); rec.Code != http.StatusOK || err != nil {
			t.Errorf("the handler's answer %d %s: %v", rec.Code, rec.Body, err)
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	c := newChecker(t, srv.URL, nil)
	known := sandbox.AccountNumbers("cn_test1", 2)
	for _, req := range []checks.Request{
		request(sandbox.UserGood), // no accounts known, extra set
		{ConnectionID: "cn_test1", Datasource: "utility", Credentials: checks.Credentials{Username: "user_good", Password: "pw"}, // no extra
			Accounts: []checks.Account{{ID: "ac_1", Number: known[0], Pull: true}, {ID: "ac_2", Number: known[1]}}},
	} {
		if _, err := c.Check(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if err := schema("CheckRequest", r.body); err != nil {
			t.Errorf("the request body %s: %v", r.body, err)
		}
		for _, p := range op.Parameters {
			if p.Value.In != "header" {
				continue
			}
			v := r.header.Get(p.Value.Name)
			if err := p.Value.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil || (p.Value.Required && v == "") {
				t.Errorf("header %s %q: %v", p.Value.Name, v, err)
			}
		}
	}
}

package openapitest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const (
	company    = `{"id":"co_0123456789abcdef","name":"Acme","isActive":true,"createdAt":"2026-03-02T10:00:00Z"}`
	connection = `{"id":"cn_0123456789abcdef","companyId":"co_0123456789abcdef","datasource":{"name":"sandbox"},"isActive":true,` +
		`"createdAt":"2026-03-02T10:00:00Z","status":"PENDING","statusFirstSeenTime":"2026-03-02T10:00:00Z",` +
		`"statusLastUpdateTime":"2026-03-02T10:00:00Z","statusErrorDetail":"","lastCheckAt":null,"lastSuccessAt":null,` +
		`"nextCheckAt":"2026-03-02T10:00:00Z","consecutiveFailures":0,"statusDisplayName":"Pending","statusCategory":"healthy",` +
		`"statusReason":"AWAITING_FIRST_CHECK","canRefresh":true,"canReconnect":false,"siteIds":[],"accounts":[]`
	notFound = `{"error":{"code":"not_found","message":"no route"}}`
)

// TestCheck runs exchanges the document must accept and ones it must
// refuse, each refusal with the words that say what is wrong.
func TestCheck(t *testing.T) {
	t.Parallel()
	v := apiValidator(t)
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	created := http.Header{"Content-Type": {"application/json"}, "Location": {"/v1/company/co_0123456789abcdef"}}
	for _, tc := range []struct {
		name              string
		method, path, key string
		reqBody           string
		status            int
		header            http.Header
		body              string
		want              string // "" for no error, else a part of it
	}{
		{"valid answer", "GET", "/v1/company", "k", "", 200, jsonCT, `{"companies":[` + company + `]}`, ""},
		{"bearer key", "GET", "/v1/company", "bearer", "", 200, jsonCT, `{"companies":[]}`, ""},
		{"field of the wrong shape", "GET", "/v1/company", "k", "", 200, jsonCT, `{"companies":[{"id":"nope"}]}`, "does not match"},
		{"undescribed field", "GET", "/v1/company/co_0123456789abcdef", "k", "", 200, jsonCT, company[:len(company)-1] + `,"extra":1}`, `"extra" is unsupported`},
		{"undocumented status", "GET", "/v1/company", "k", "", 418, jsonCT, `{}`, "status is not supported"},
		{"error body of the wrong code", "GET", "/v1/company/co_0123456789abcdef", "k", "", 404, jsonCT, `{"error":{"code":"gone","message":"x"}}`, "does not match"},
		{"accepted request the document refuses", "POST", "/v1/company", "k", `{"name":5}`, 201, created, company, "accepted a request"},
		{"refused request: not checked", "POST", "/v1/company", "k", `{"name":5}`, 400, jsonCT, `{"error":{"code":"invalid_request","message":"x"}}`, ""},
		{"accepted request without Content-Type", "POST", "/v1/company", "k", `{"name":"Acme"}`, 201, created, company, ""},
		{"missing required header", "POST", "/v1/company", "k", `{"name":"Acme"}`, 201, jsonCT, company, "Location"},
		{"accepted without a key", "GET", "/v1/company", "", "", 200, jsonCT, `{"companies":[]}`, "security"},
		{"link route needs no key", "PATCH", "/v1/link/credentials", "", `{"token":"t","credentials":{"username":"u"}}`, 200, jsonCT,
			`{"connectionId":"cn_0123456789abcdef","status":"PENDING","statusDisplayName":"Pending","checkEnqueued":true}`, ""},
		{"connection with derived fields", "GET", "/v1/connection/cn_0123456789abcdef/details", "k", "", 200, jsonCT, connection + `}`, ""},
		{"connection change", "PATCH", "/v1/connection/cn_0123456789abcdef/details", "k", `{"name":"x"}`, 200, jsonCT, connection + `,"checkEnqueued":false}`, ""},
		{"connection change without checkEnqueued", "PATCH", "/v1/connection/cn_0123456789abcdef/details", "k", `{"name":"x"}`, 200, jsonCT, connection + `}`, "checkEnqueued"},
		{"unknown path, 404", "GET", "/v1/nope", "k", "", 404, jsonCT, notFound, ""},
		{"unknown path answered", "GET", "/v1/nope", "k", "", 200, jsonCT, `{}`, "describes no such path"},
		{"unknown path, plain-text 404", "GET", "/v1/nope", "k", "", 404, http.Header{"Content-Type": {"text/plain"}}, "404 page not found", "not the JSON error body"},
		{"method not allowed", "DELETE", "/v1/company", "k", "", 405, http.Header{"Content-Type": {"application/json"}, "Allow": {"GET, HEAD, POST"}},
			`{"error":{"code":"method_not_allowed","message":"x"}}`, ""},
		{"Allow not the documented methods", "DELETE", "/v1/company", "k", "", 405, http.Header{"Content-Type": {"application/json"}, "Allow": {"GET, HEAD"}},
			`{"error":{"code":"method_not_allowed","message":"x"}}`, "describes GET, HEAD, POST"},
		{"undocumented method answered", "DELETE", "/v1/company", "k", "", 200, jsonCT, `{}`, "document the method"},
		{"HEAD", "HEAD", "/v1/company", "k", "", 200, jsonCT, "", ""},
		{"HEAD with an undocumented status", "HEAD", "/v1/company", "k", "", 418, jsonCT, "", "does not list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			switch tc.key {
			case "k":
				req.Header.Set("X-API-Key", "key")
			case "bearer":
				req.Header.Set("Authorization", "Bearer key")
			}
			err := v.check(req, []byte(tc.reqBody), tc.status, tc.header, []byte(tc.body))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("want no error, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	v := apiValidator(t)
	hdr := http.Header{"Content-Type": {"application/json"}, "Webhook-Id": {"msg_2abc"}, "Webhook-Timestamp": {"1772445600"},
		"Webhook-Signature": {"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="}}
	data := connection + `,"sequence":1}`
	updated := connection + `,"sequence":2,"protectedChanges":["name","startDate","accounts"],"old":{"name":"Before","startDate":null,"accounts":[]}}`
	for _, tc := range []struct {
		name, event, body string
		header            http.Header
		want              string
	}{
		{"created", "connection.created.v2", `{"type":"connection.created.v2","timestamp":"2026-03-02T10:00:00Z","data":` + data + `}`, hdr, ""},
		{"validated", "connection.validated.v2", `{"type":"connection.validated.v2","timestamp":"2026-03-02T10:00:00Z","data":` + data + `}`, hdr, ""},
		{"updated", "connection.updated.v2", `{"type":"connection.updated.v2","timestamp":"2026-03-02T10:00:00Z","data":` + updated + `}`, hdr, ""},
		{"type of another event", "connection.created.v2", `{"type":"connection.updated.v2","timestamp":"2026-03-02T10:00:00Z","data":` + data + `}`, hdr, "does not match"},
		{"no sequence", "connection.created.v2", `{"type":"connection.created.v2","timestamp":"2026-03-02T10:00:00Z","data":` + connection + `}}`, hdr, "sequence"},
		{"updated without old", "connection.updated.v2", `{"type":"connection.updated.v2","timestamp":"2026-03-02T10:00:00Z","data":` + data + `}`, hdr, "old"},
		{"old credentials", "connection.updated.v2", `{"type":"connection.updated.v2","timestamp":"2026-03-02T10:00:00Z","data":` +
			strings.Replace(updated, `"old":{`, `"old":{"credentials":{},`, 1) + `}`, hdr, "does not"},
		{"unsigned", "connection.created.v2", `{"type":"connection.created.v2","timestamp":"2026-03-02T10:00:00Z","data":` + data + `}`, jsonHeader(), "webhook-"},
		{"unknown event", "connection.deleted.v2", `{}`, hdr, "has no webhooks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := v.checkWebhook(tc.event, tc.header, []byte(tc.body))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("want no error, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }

// TestHandlerAndTransportPassBodiesOn checks the wrappers hand the request
// body to the server and the response body to the client untouched.
func TestHandlerAndTransportPassBodiesOn(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) != `{"name":"Acme"}` {
			t.Errorf("the handler read %q", b)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/v1/company/co_0123456789abcdef")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, company)
	})))
	t.Cleanup(srv.Close)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/company", strings.NewReader(`{"name":"Acme"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", "key")
	resp, err := Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || string(b) != company {
		t.Errorf("the client read %d %q", resp.StatusCode, b)
	}
}

// Package openapitest holds checkd's tests to the API's OpenAPI document
// (api/openapi.json, served at GET /v1/openapi.json): Handler and Transport
// check every request a test sends and every response it receives against
// the document, Webhook checks a webhook message, and CompareRoutes checks
// the document against the routes a server registers. A mismatch fails the
// test with what to fix.
//
// Responses are always checked: their status must be documented for the
// operation, and their headers and body must match it. Requests are
// checked when the server accepted them (a 2xx answer), since tests send
// invalid requests on purpose: the document must accept everything the
// server accepts. An undocumented path must answer 404, and a method the
// path's document does not list 405 with an Allow header naming exactly the
// documented methods, each with the error body.
//
// It uses kin-openapi (openapi3filter), which validates OpenAPI 3.1
// documents with a JSON Schema 2020-12 validator.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/checkd/checkd/api"
)

// DocumentPath is where the document lives in the repository, for messages.
const DocumentPath = "api/openapi.json"

// Load parses an OpenAPI document and validates it (kin-openapi's loader
// and Validate, examples included).
func Load(data []byte) (*openapi3.T, error) {
	l := openapi3.NewLoader()
	doc, err := l.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := doc.Validate(l.Context, openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	return doc, nil
}

// validator checks exchanges against the API's document.
type validator struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	loadOnce   sync.Once
	loaded     *validator
	loadFailed error
)

// apiValidator loads the API's document once per test binary; a document
// that does not load or validate fails every test that uses it. Neither it
// nor the wrappers call tb.Helper: tb may be a fuzz test's *testing.F used
// inside its fuzz target, where any call but a report of a mismatch would
// panic.
func apiValidator(tb testing.TB) *validator {
	loadOnce.Do(func() {
		doc, err := Load(api.OpenAPI())
		if err != nil {
			loadFailed = err
			return
		}
		r, err := gorillamux.NewRouter(doc)
		if err != nil {
			loadFailed = fmt.Errorf("route: %w", err)
			return
		}
		loaded = &validator{doc: doc, router: r}
	})
	if loadFailed != nil {
		tb.Fatalf("openapitest: %s is not a valid OpenAPI document: %v", DocumentPath, loadFailed)
	}
	return loaded
}

// Document is the API's OpenAPI document, loaded and validated.
func Document(tb testing.TB) *openapi3.T {
	tb.Helper()
	return apiValidator(tb).doc
}

// Handler wraps h so every exchange it serves is checked against the
// document; a mismatch fails tb. Use it around the API's handler wherever a
// test serves it (httptest.NewServer, ServeHTTP with a recorder).
func Handler(tb testing.TB, h http.Handler) http.Handler {
	v := apiValidator(tb)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil {
			var err error
			if body, err = io.ReadAll(r.Body); err != nil {
				tb.Errorf("openapitest: read the body of %s %s: %v", r.Method, r.URL.Path, err)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if err := v.check(r, body, rec.status(), w.Header(), rec.body.Bytes()); err != nil {
			report(tb, err)
		}
	})
}

// recorder passes a response on, keeping its status and body.
type recorder struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (w *recorder) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.body.Write(p)
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *recorder) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Transport wraps base (http.DefaultTransport when nil) so every exchange
// through it is checked against the document; a mismatch fails tb. Use it
// for clients of a server a test does not build itself (the daemon's).
func Transport(tb testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{tb: tb, v: apiValidator(tb), base: base}
}

// Client is an http.Client whose exchanges are checked (Transport).
func Client(tb testing.TB) *http.Client {
	return &http.Client{Transport: Transport(tb, nil), Timeout: clientTimeout}
}

// clientTimeout bounds one exchange of Client, so a hung server fails the
// test instead of stalling it.
const clientTimeout = 30 * time.Second

type transport struct {
	tb   testing.TB
	v    *validator
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("openapitest: read the request body: %w", err)
		}
		body = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	rb, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(rb))
	if err != nil {
		return nil, fmt.Errorf("openapitest: read the response body of %s %s: %w", req.Method, req.URL.Path, err)
	}
	if err := t.v.check(req, body, resp.StatusCode, resp.Header, rb); err != nil {
		report(t.tb, err)
	}
	return resp, nil
}

// check checks one exchange: req (whose body was consumed) with reqBody,
// answered status with header and body.
func (v *validator) check(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	what := fmt.Sprintf("openapitest: %s %s answered %d", req.Method, req.URL.Path, status)
	find := req
	if req.Method == http.MethodHead {
		find = req.Clone(req.Context())
		find.Method = http.MethodGet
	}
	route, params, err := v.router.FindRoute(find)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		if status != http.StatusNotFound {
			return fmt.Errorf("%s, but %s describes no such path: describe the route under \"paths\" (the api package's TestOpenAPIDescribesEveryRoute names each route missing), or, if it is not part of the API, do not send it through openapitest", what, DocumentPath)
		}
		return v.checkError(what, req, header, body)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return v.checkMethodNotAllowed(what, find, header, body, status)
	case err != nil:
		return fmt.Errorf("%s: find its operation in %s: %w", what, DocumentPath, err)
	}
	if req.Method == http.MethodHead { // no body to check; kin-openapi skips HEAD
		if route.Operation.Responses.Status(status) == nil {
			return fmt.Errorf("%s, a status %s does not list for GET %s", what, DocumentPath, route.Path)
		}
		return nil
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    authenticate,
		SkipSettingDefaults:   true,
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	opts.WithCustomSchemaErrorFunc(schemaError)
	in := &openapi3filter.RequestValidationInput{Request: requestCopy(req, reqBody), PathParams: params, Route: route, Options: opts}
	ctx := context.Background()
	var problems []string
	if status/100 == 2 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			problems = append(problems, fmt.Sprintf("the server accepted a request that %s refuses (make the document accept it, or the server refuse it): %s", DocumentPath, tidy(err)))
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		problems = append(problems, fmt.Sprintf("the response does not match %s (fix the document or the handler): %s%s", DocumentPath, tidy(err), quoteJSON(header, body)))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s (operation %s %s):\n  %s", what, req.Method, route.Path, strings.Join(problems, "\n  "))
}

// requestCopy is req with its body again, read as JSON when it has no
// Content-Type (as the server reads it).
func requestCopy(req *http.Request, body []byte) *http.Request {
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(body))
	if len(body) > 0 && r.Header.Get("Content-Type") == "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// checkMethodNotAllowed checks a request whose path the document describes
// without its method: the server must answer 405, with the error body and
// an Allow header listing exactly the documented methods (HEAD with GET).
func (v *validator) checkMethodNotAllowed(what string, req *http.Request, header http.Header, body []byte, status int) error {
	var want []string
	for _, p := range v.doc.Paths.InMatchingOrder() {
		item := v.doc.Paths.Value(p)
		if !pathMatches(p, req.URL.Path) {
			continue
		}
		for m := range item.Operations() {
			want = append(want, m)
			if m == http.MethodGet {
				want = append(want, http.MethodHead)
			}
		}
		break
	}
	slices.Sort(want)
	if status != http.StatusMethodNotAllowed {
		return fmt.Errorf("%s, but %s describes only %s on this path: document the method, or the server should answer 405",
			what, DocumentPath, strings.Join(want, ", "))
	}
	var got []string
	for _, m := range strings.Split(header.Get("Allow"), ",") {
		if m = strings.TrimSpace(m); m != "" {
			got = append(got, m)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s with Allow %q, but %s describes %s on this path", what, header.Get("Allow"), DocumentPath, strings.Join(want, ", "))
	}
	return v.checkError(what, req, header, body)
}

// pathMatches reports whether a documented path template matches path,
// segment by segment.
func pathMatches(template, path string) bool {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i, t := range ts {
		if !(strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") && ps[i] != "") && t != ps[i] {
			return false
		}
	}
	return true
}

// checkError checks an answer that has no operation (404, 405): the
// error body as JSON.
func (v *validator) checkError(what string, req *http.Request, header http.Header, body []byte) error {
	if req.Method == http.MethodHead {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(header.Get("Content-Type")); mt != "application/json" {
		return fmt.Errorf("%s with Content-Type %q, not the JSON error body", what, header.Get("Content-Type"))
	}
	return v.checkSchema(what, "Error", body)
}

// checkSchema checks a JSON body against a schema of the document's
// components.
func (v *validator) checkSchema(what, schema string, body []byte) error {
	ref := v.doc.Components.Schemas[schema]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("%s: %s has no schema %s under components.schemas", what, DocumentPath, schema)
	}
	var val any
	if err := json.Unmarshal(body, &val); err != nil {
		return fmt.Errorf("%s with a body that is not JSON (%v): %.500s", what, err, body)
	}
	if err := ref.Value.VisitJSON(val, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("%s with a body that does not match %s's %s: %s\nbody: %.2000s", what, DocumentPath, schema, tidy(err), body)
	}
	return nil
}

// authenticate accepts a request carrying what a security scheme names;
// whether the key is right is the server's business (it answered 2xx).
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	s := in.SecurityScheme
	switch {
	case s.Type == "apiKey" && s.In == "header":
		if h.Get(s.Name) == "" {
			return fmt.Errorf("no %s header", s.Name)
		}
	case s.Type == "http" && (strings.EqualFold(s.Scheme, "bearer") || strings.EqualFold(s.Scheme, "basic")):
		scheme, tok, ok := strings.Cut(strings.TrimSpace(h.Get("Authorization")), " ")
		if !ok || !strings.EqualFold(scheme, s.Scheme) || strings.TrimSpace(tok) == "" {
			return fmt.Errorf("no Authorization: %s header", s.Scheme)
		}
	default:
		return fmt.Errorf("openapitest does not know security scheme %q (type %s): teach authenticate", in.SecuritySchemeName, s.Type)
	}
	return nil
}

// schemaError shortens kin-openapi's schema errors to their reason (which
// says where), without the dump of the schema and the value.
func schemaError(err *openapi3.SchemaError) string { return err.Reason }

// quoteJSON is a JSON body for a message (its start), "" for another type.
func quoteJSON(header http.Header, body []byte) string {
	if mt, _, _ := mime.ParseMediaType(header.Get("Content-Type")); mt != "application/json" {
		return ""
	}
	return fmt.Sprintf("\nbody: %.2000s", body)
}

// tidy words a validation error for people. JSON Schema 2020-12 reports a
// property that no schema describes (unevaluatedProperties,
// additionalProperties: false) as "false schema"; and when one schema of an
// allOf fails, every property counts as undescribed, burying the real
// problem: those lines are dropped when there is another.
func tidy(err error) string {
	const undescribed = ": false schema"
	lines := strings.Split(err.Error(), "\n")
	var other, kept []string
	for _, l := range lines {
		if !strings.Contains(l, undescribed) && strings.Contains(l, "- at ") && !strings.HasSuffix(l, "'allOf' failed") {
			other = append(other, l)
		}
	}
	dropped := 0
	for _, l := range lines {
		if strings.Contains(l, undescribed) {
			if len(other) > 0 {
				dropped++
				continue
			}
			l = strings.Replace(l, undescribed, ": a property the document does not describe", 1)
		}
		kept = append(kept, l)
	}
	if dropped > 0 {
		kept = append(kept, fmt.Sprintf("(%d \"false schema\" lines left out: they follow from the failure above)", dropped))
	}
	return strings.Join(kept, "\n")
}

// report fails tb with err. A *testing.F panics when used inside its fuzz
// target; the panic then carries err, and says what to pass instead.
func report(tb testing.TB, err error) {
	defer func() {
		if p := recover(); p != nil {
			panic(fmt.Sprintf("%v\n(%v: inside a fuzz target, wrap with the target's *testing.T)", err, p))
		}
	}()
	tb.Error(err)
}

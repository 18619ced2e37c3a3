package api_test

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/openapitest"
)

func TestOpenAPIDocumentValidates(t *testing.T) {
	t.Parallel()
	doc, err := openapitest.Load(api.OpenAPI())
	if err != nil {
		t.Fatalf("%s: %v", openapitest.DocumentPath, err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	for _, ev := range []string{"connection.created.v2", "connection.updated.v2", "connection.validated.v2"} {
		if doc.Webhooks[ev] == nil || doc.Webhooks[ev].Post == nil {
			t.Errorf("webhooks lacks %s", ev)
		}
	}
}

// TestOpenAPIDescribesEveryRoute holds the document to the routes the
// server registers: each must be described, with its authentication. (The
// daemon's test checks the other way, on the server with the daemon's
// mounts.)
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	routes := e.srv.Routes()
	if len(routes) < 20 {
		t.Fatalf("Routes() lists %d routes: %+v", len(routes), routes)
	}
	undocumented, _ := openapitest.CompareRoutes(t, routes)
	for _, m := range undocumented {
		t.Error(m)
	}
}

// TestRoutesAreWhatIsServed checks Routes against the server itself: each
// listed route answers (with a key when it needs one) something other than
// the 404 and 405 of an unknown route, and needs a key exactly when listed so.
func TestRoutesAreWhatIsServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, r := range e.srv.Routes() {
		path := fillPath(r.Path)
		if w := e.do(call{method: r.Method, path: path, key: "-"}); r.KeyRequired != (w.Code == http.StatusUnauthorized) {
			t.Errorf("%s %s without a key: %d; Routes says KeyRequired %v", r.Method, path, w.Code, r.KeyRequired)
		}
		if w := e.do(call{method: r.Method, path: path}); w.Code == http.StatusNotFound && bytes.Contains(w.Body.Bytes(), []byte("no route")) ||
			w.Code == http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d %s: Routes lists a route the server does not serve", r.Method, path, w.Code, w.Body)
		}
	}
}

// fillPath puts a value of the right shape in each {parameter}.
func fillPath(p string) string {
	r := strings.NewReplacer("{companyId}", "co_0000000000000000", "{connectionId}", "cn_0000000000000000", "{queue}", "default", "{name}", "nobody")
	return r.Replace(p)
}

func TestOpenAPIServedWithoutKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := e.do(call{method: "GET", path: "/v1/openapi.json", key: "-"})
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), api.OpenAPI()) {
		t.Fatalf("GET /v1/openapi.json: %d, %d bytes; want 200 and the document", w.Code, w.Body.Len())
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

// TestOpenAPIEnumsMatchTheCode holds the document's enumerations to the
// lists in the code they describe.
func TestOpenAPIEnumsMatchTheCode(t *testing.T) {
	t.Parallel()
	doc := openapitest.Document(t)
	enum := func(schema string) []string {
		s := doc.Components.Schemas[schema]
		if s == nil {
			t.Fatalf("%s has no schema %s", openapitest.DocumentPath, schema)
		}
		var out []string
		for _, v := range s.Value.Enum {
			out = append(out, v.(string))
		}
		return out
	}
	strs := func(vs ...string) []string { return vs }
	var conn, acct, track, cats []string
	for _, s := range checks.ConnectionStatuses {
		conn = append(conn, string(s))
	}
	for _, s := range checks.AccountStatuses {
		acct = append(acct, string(s))
	}
	for _, s := range checks.TrackingStatuses {
		track = append(track, string(s))
	}
	for _, in := range append(checks.ConnectionInfos(), checks.AccountInfos()...) {
		if !slices.Contains(cats, string(in.Category)) {
			cats = append(cats, string(in.Category))
		}
	}
	roles := strs(configs.AllRoles...)
	for _, tc := range []struct {
		schema string
		code   []string
		where  string
	}{
		{"ConnectionStatus", conn, "checks.ConnectionStatuses"},
		{"AccountStatus", acct, "checks.AccountStatuses"},
		{"TrackingStatus", track, "checks.TrackingStatuses"},
		{"QueueName", tasks.Queues, "tasks.Queues"},
	} {
		if got := enum(tc.schema); !slices.Equal(got, tc.code) {
			t.Errorf("%s's %s enum is %v; %s is %v: make the document's list the code's, in its order", openapitest.DocumentPath, tc.schema, got, tc.where, tc.code)
		}
	}
	if got := enum("StatusCategory"); !sameSet(got, cats) {
		t.Errorf("StatusCategory enum %v; the vocabulary's categories are %v", got, cats)
	}
	for _, tc := range []struct {
		prop string
		code []string
	}{
		{"state", strs(api.LinkValid, api.LinkUsed, api.LinkExpired, api.LinkSuperseded, api.LinkInactive)},
		{"kind", strs(api.LinkKindCredentials, api.LinkKindConnection)},
	} {
		var got []string
		for _, v := range doc.Components.Schemas["LinkInfo"].Value.Properties[tc.prop].Value.Enum {
			got = append(got, v.(string))
		}
		if !sameSet(got, tc.code) {
			t.Errorf("LinkInfo.%s enum %v; api's constants are %v", tc.prop, got, tc.code)
		}
	}
	rolesEnum := doc.Components.Schemas["Ready"].Value.Properties["roles"].Value.Items.Value.Enum
	var got []string
	for _, v := range rolesEnum {
		got = append(got, v.(string))
	}
	if !sameSet(got, roles) {
		t.Errorf("Ready.roles enum %v; configs.AllRoles is %v", got, roles)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestRoutesOfMountPatterns checks how Routes writes a mounted pattern:
// method, the path as OpenAPI writes it (no host, no {$}), and whether the
// handler is behind the key check.
func TestRoutesOfMountPatterns(t *testing.T) {
	t.Parallel()
	h := http.NotFoundHandler()
	for _, tc := range []struct {
		pattern    string
		requireKey bool
		want       api.Route
	}{
		{"GET /metrics", true, api.Route{Method: "GET", Path: "/metrics", KeyRequired: true, Scope: api.ScopeAdmin}},
		{"POST /hooks/{$}", false, api.Route{Method: "POST", Path: "/hooks/"}},
		{"example.com/status/{id}", false, api.Route{Path: "/status/{id}"}},
		{"/monitoring/", false, api.Route{Path: "/monitoring/"}},
		{"/prom/", false, api.Route{Path: "/prom/", KeyRequired: true, Scope: api.ScopeAdmin}}, // wrapped by api.RequireKey below
	} {
		e := newEnv(t)
		mounted := h
		if tc.want.KeyRequired && !tc.requireKey {
			mounted = api.RequireKey([]string{testKey}, h)
		}
		e.srv.Mount(tc.pattern, mounted, tc.requireKey)
		if routes := e.srv.Routes(); routes[len(routes)-1] != tc.want {
			t.Errorf("Mount(%q): Routes ends with %+v, want %+v", tc.pattern, routes[len(routes)-1], tc.want)
		}
	}
}

package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/store"
)

// newKey makes a runtime key through POST /v1/keys with the bootstrap key
// and returns its secret.
func (e *env) newKey(name string, scopes []string, companies ...string) string {
	e.t.Helper()
	body := fmt.Sprintf(`{"name":%q,"scopes":["%s"]`, name, strings.Join(scopes, `","`))
	if len(companies) > 0 {
		body += fmt.Sprintf(`,"companies":["%s"]`, strings.Join(companies, `","`))
	}
	w := e.do(call{method: "POST", path: "/v1/keys", body: body + "}"})
	if w.Code != http.StatusCreated {
		e.t.Fatalf("POST /v1/keys %s: %d %s", body, w.Code, w.Body)
	}
	return decodeAs[api.CreatedAPIKey](e.t, w).Key
}

// TestScopeMatrix: every keyed route, by family, answers a key holding
// only its scope past the key check, and 403 to a key holding any other
// one. The table is the contract; a route it lacks (a new one) fails the
// test until it is added.
func TestScopeMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	families := []struct {
		family string
		scope  api.Scope
		routes []string
	}{
		{"companies: read", api.ScopeRead, []string{"GET /v1/company", "GET /v1/company/{companyId}"}},
		{"companies: write", api.ScopeWrite, []string{"POST /v1/company", "PATCH /v1/company/{companyId}"}},
		{"connections: read", api.ScopeRead, []string{"GET /v1/connection/company/{companyId}",
			"GET /v1/connection/{connectionId}/details", "GET /v1/connection/{connectionId}/history"}},
		{"connections: write", api.ScopeWrite, []string{"POST /v1/connection/company/{companyId}",
			"PATCH /v1/connection/{connectionId}/details", "PATCH /v1/connection/{connectionId}/status",
			"PATCH /v1/connection/{connectionId}/credentials", "POST /v1/connection/{connectionId}/refresh"}},
		{"links: write", api.ScopeWrite, []string{"POST /v1/connection/{connectionId}/link", "GET /v1/connection/{connectionId}",
			"GET /v1/connection/company/{companyId}/link", "POST /v1/connection/company/{companyId}/link"}},
		{"vocabulary: read", api.ScopeRead, []string{"GET /v1/statuses"}},
		{"investigation: admin", api.ScopeAdmin, []string{"POST /v1/connection/{connectionId}/investigation",
			"DELETE /v1/connection/{connectionId}/investigation"}},
		{"datasources: read", api.ScopeRead, []string{"GET /v1/datasources"}},
		{"queues: admin", api.ScopeAdmin, []string{"GET /v1/queues", "POST /v1/queues/{queue}/pause", "POST /v1/queues/{queue}/resume"}},
		{"encryption keys: admin", api.ScopeAdmin, []string{"GET /v1/store/keys", "POST /v1/store/rekey"}},
		{"API keys: admin", api.ScopeAdmin, []string{"POST /v1/keys", "GET /v1/keys", "DELETE /v1/keys/{name}"}},
	}
	keys := map[api.Scope]string{}
	for _, sc := range api.Scopes {
		keys[sc] = e.newKey("only-"+string(sc), []string{string(sc)})
	}
	listed := map[string]bool{}
	for _, f := range families {
		for _, route := range f.routes {
			listed[route] = true
			method, path, _ := strings.Cut(route, " ")
			for _, sc := range api.Scopes {
				w := e.do(call{method: method, path: fillPath(path), key: keys[sc]})
				switch {
				case sc == f.scope && (w.Code == http.StatusForbidden || w.Code == http.StatusUnauthorized):
					t.Errorf("%s: %s with the %s scope: %d %s, want it past the key check", f.family, route, sc, w.Code, w.Body)
				case sc != f.scope && w.Code != http.StatusForbidden:
					t.Errorf("%s: %s with the %s scope: %d %s, want 403", f.family, route, sc, w.Code, w.Body)
				case sc != f.scope && !strings.Contains(w.Body.String(), "lacks the "+string(f.scope)+" scope"):
					t.Errorf("%s: %s: the 403 does not name the scope: %s", f.family, route, w.Body)
				}
			}
		}
	}
	for _, r := range e.srv.Routes() {
		if r.KeyRequired && !listed[r.Method+" "+r.Path] {
			t.Errorf("%s %s (scope %s) is in no family of the matrix: add it", r.Method, r.Path, r.Scope)
		}
	}
}

// TestCompanyLimitedKey: a key limited to a company sees only it: any
// other company, and its connections, is 404 as if it did not exist, in
// listings and by ID, and it cannot create companies.
func TestCompanyLimitedKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mine, theirs := e.company("Mine"), e.company("Theirs")
	myConn, theirConn := e.connection(mine.ID, "user_good"), e.connection(theirs.ID, "user_good")
	key := e.newKey("tenant-mine", []string{"read", "write"}, mine.ID)

	list := decodeAs[api.CompanyList](t, e.do(call{method: "GET", path: "/v1/company", key: key}))
	if len(list.Companies) != 1 || list.Companies[0].ID != mine.ID {
		t.Errorf("GET /v1/company lists %+v, want only %s", list.Companies, mine.ID)
	}
	if all := decodeAs[api.CompanyList](t, e.do(call{method: "GET", path: "/v1/company"})); len(all.Companies) != 2 {
		t.Errorf("the bootstrap key lists %d companies, want 2", len(all.Companies))
	}
	const missingConn = "cn_0000000000000000"
	for _, tc := range []struct {
		method, path, body string
		wantMine           int
	}{
		{"GET", "/v1/company/%co", "", 200},
		{"PATCH", "/v1/company/%co", `{"isActive":true}`, 200},
		{"GET", "/v1/connection/company/%co", "", 200},
		{"POST", "/v1/connection/company/%co", `{"datasource":"sandbox","credentials":{"username":"u","password":"p"}}`, 201},
		{"GET", "/v1/connection/company/%co/link", "", 200},
		{"GET", "/v1/connection/%cn/details", "", 200},
		{"GET", "/v1/connection/%cn/history", "", 200},
		{"PATCH", "/v1/connection/%cn/details", `{"name":"renamed"}`, 200},
		{"POST", "/v1/connection/%cn/refresh", "", 202},
		{"POST", "/v1/connection/%cn/link", "", 201},
		{"GET", "/v1/connection/%cn", "", 200},
	} {
		path := func(co, cn string) string {
			return strings.NewReplacer("%co", co, "%cn", cn).Replace(tc.path)
		}
		if w := e.do(call{method: tc.method, path: path(mine.ID, myConn.ID), body: tc.body, key: key}); w.Code != tc.wantMine {
			t.Errorf("%s %s on its own company: %d %s, want %d", tc.method, tc.path, w.Code, w.Body, tc.wantMine)
		}
		before := e.dump()
		other := e.do(call{method: tc.method, path: path(theirs.ID, theirConn.ID), body: tc.body, key: key})
		if other.Code != http.StatusNotFound {
			t.Errorf("%s %s on another company: %d %s, want 404", tc.method, tc.path, other.Code, other.Body)
		}
		if e.dump() != before {
			t.Errorf("%s %s on another company wrote to Redis", tc.method, tc.path)
		}
		// Indistinguishable from an ID that does not exist.
		missing := e.do(call{method: tc.method, path: path("co_0000000000000000", missingConn), body: tc.body, key: key})
		want := strings.NewReplacer(theirs.ID, "co_0000000000000000", theirConn.ID, missingConn).Replace(other.Body.String())
		if missing.Code != http.StatusNotFound || missing.Body.String() != want {
			t.Errorf("%s %s: another company's answer %s differs from a missing one's %d %s", tc.method, tc.path, other.Body, missing.Code, missing.Body)
		}
	}
	w := e.do(call{method: "POST", path: "/v1/company", body: `{"name":"New"}`, key: key})
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "limited to companies") {
		t.Errorf("a limited key creating a company: %d %s, want 403", w.Code, w.Body)
	}
}

// TestRevokedKeyRefusedAtOnce: a key deleted through one API process is
// refused by every other at the next request (keys are read from Redis on
// each request), on miniredis and on a real redis-server.
func TestRevokedKeyRefusedAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  func(testing.TB) *env
	}{
		{"miniredis", func(tb testing.TB) *env { return newEnv(tb) }},
		{"redis-server", newRealEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := tc.env(t)
			// A second API process over the same Redis.
			srv, err := api.New(a.st, testConfig())
			if err != nil {
				t.Fatal(err)
			}
			b := *a
			b.t, b.srv = t, srv
			key := a.newKey("short-lived", []string{"read"})
			for _, e := range []*env{a, &b} {
				if w := e.do(call{method: "GET", path: "/v1/statuses", key: key}); w.Code != http.StatusOK {
					t.Fatalf("before the deletion: %d %s", w.Code, w.Body)
				}
			}
			if w := b.do(call{method: "DELETE", path: "/v1/keys/short-lived"}); w.Code != http.StatusNoContent {
				t.Fatalf("DELETE: %d %s", w.Code, w.Body)
			}
			for i, e := range []*env{a, &b} {
				w := e.do(call{method: "GET", path: "/v1/statuses", key: key})
				if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "deleted") {
					t.Errorf("process %d after the deletion: %d %s, want 401", i, w.Code, w.Body)
				}
			}
			if w := a.do(call{method: "DELETE", path: "/v1/keys/short-lived"}); w.Code != http.StatusNotFound {
				t.Errorf("deleting it again: %d %s, want 404", w.Code, w.Body)
			}
		})
	}
}

// TestActorOnEveryChange: the history entries and change events of API
// writes name the key, of link writes "link", of checks "check", and of
// writes under no key "system"; a bootstrap key is named by its hash.
func TestActorOnEveryChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	ops := e.newKey("ops-team", []string{"read", "write"})
	w := e.do(call{method: "POST", path: "/v1/connection/company/" + co.ID, key: ops,
		body: `{"datasource":"sandbox","credentials":{"username":"user_good","password":"p"}}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	c := decodeAs[api.Connection](t, w)
	recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnPasswordIncorrect, Detail: "rejected"})
	// The customer fixes the password through a link.
	lk := decodeAs[api.LinkResponse](t, e.do(call{method: "POST", path: "/v1/connection/" + c.ID + "/link", key: ops}))
	e.clk.Advance(time.Second)
	if w := e.do(call{method: "PATCH", path: "/v1/link/credentials", key: "-",
		body: `{"token":"` + lk.Token + `","credentials":{"username":"user_good","password":"new"}}`}); w.Code != http.StatusOK {
		t.Fatalf("link: %d %s", w.Code, w.Body)
	}
	e.clk.Advance(time.Second)
	if w := e.do(call{method: "PATCH", path: "/v1/connection/" + c.ID + "/details", body: `{"isActive":false}`}); w.Code != http.StatusOK {
		t.Fatalf("deactivate: %d %s", w.Code, w.Body)
	}
	e.clk.Advance(time.Second)
	on := true
	if _, err := e.st.UpdateDetails(context.Background(), c.ID, store.DetailsPatch{IsActive: &on}); err != nil { // no key: checkd itself
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(testKey))
	bootstrap := api.BootstrapActor + hex.EncodeToString(sum[:4])

	h := decodeAs[api.History](t, e.do(call{method: "GET", path: "/v1/connection/" + c.ID + "/history", key: ops}))
	var got []string
	for _, en := range h.History {
		if en.AccountID == "" {
			got = append(got, en.Cause+"/"+en.Actor)
		}
	}
	want := []string{"admin:reactivate/system", "admin:deactivate/" + bootstrap, "credentials/link", "check/check", "created/ops-team"}
	if !slices.Equal(got, want) {
		t.Errorf("history cause/actor\n got %v\nwant %v", got, want)
	}
	evs, err := e.st.Events(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, ev := range evs {
		if ev.ConnectionID == c.ID {
			got = append(got, ev.Cause+"/"+ev.Actor)
		}
	}
	want = []string{"created/ops-team", "check/check", "credentials/link", "admin:deactivate/" + bootstrap, "admin:reactivate/system"}
	if !slices.Equal(got, want) {
		t.Errorf("event cause/actor\n got %v\nwant %v", got, want)
	}
}

// TestRateLimit: a key sending faster than its rate is answered 429 with
// Retry-After, alone: other keys go on; it may send again once the
// bucket refills.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.RateLimit, c.RateBurst = 0.5, 2 })
	get := func(key string) *http.Response {
		return e.do(call{method: "GET", path: "/v1/statuses", key: key}).Result()
	}
	for i := range 2 {
		if r := get(testKey); r.StatusCode != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i+1, r.StatusCode)
		}
	}
	r := get(testKey)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "2" {
		t.Fatalf("past the burst: %d, Retry-After %q; want 429 and 2 (s until a token at 0.5/s)", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if r := get(otherKey); r.StatusCode != http.StatusOK {
		t.Errorf("another key: %d, want 200 (each key has its bucket)", r.StatusCode)
	}
	if r := get("-"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("no key: %d, want 401 before any limit", r.StatusCode)
	}
	e.clk.Advance(time.Second)
	if r := get(testKey); r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "1" {
		t.Errorf("1 s later: %d, Retry-After %q; want 429 and 1 (a refused request takes no token)", r.StatusCode, r.Header.Get("Retry-After"))
	}
	e.clk.Advance(time.Second)
	if r := get(testKey); r.StatusCode != http.StatusOK {
		t.Errorf("2 s later: %d, want 200", r.StatusCode)
	}
	if _, err := api.New(e.st, testConfig(func(c *api.Config) { c.RateLimit, c.RateBurst = 1, 0 })); err == nil {
		t.Error("New took a rate without a burst")
	}
}

// TestAPIKeyRoutes: POST /v1/keys shows the key once, refuses what it
// cannot store, and GET /v1/keys lists keys without their secrets.
func TestAPIKeyRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	co := e.company("Acme")
	w := e.do(call{method: "POST", path: "/v1/keys", body: `{"name":"billing","scopes":["read","write"],"companies":["` + co.ID + `"]}`})
	if w.Code != http.StatusCreated || w.Header().Get("Location") != "/v1/keys/billing" {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	created := decodeAs[api.CreatedAPIKey](t, w)
	if !strings.HasPrefix(created.Key, store.APIKeyPrefix) || created.Name != "billing" || !created.CreatedAt.Equal(testNow) {
		t.Errorf("created %+v", created)
	}
	for _, tc := range []struct{ body, code, want string }{
		{`{"name":"billing","scopes":["read"]}`, "409", "already exists"},
		{`{"name":"x","scopes":[]}`, "400", "scopes is required"},
		{`{"name":"x","scopes":["root"]}`, "400", `unknown scope`},
		{`{"name":"x","scopes":["admin"],"companies":["` + co.ID + `"]}`, "400", "only read and write"},
		{`{"name":"x","scopes":["read"],"companies":["co_0000000000000000"]}`, "400", "existing companies"},
		{`{"name":"x","scopes":["read"],"companies":["nope"]}`, "400", "not a company ID"},
		{`{"name":"System","scopes":["read"]}`, "400", "lower-case"},
		{`{"name":"link","scopes":["read"]}`, "400", "reserved"},
	} {
		before := e.dump()
		w := e.do(call{method: "POST", path: "/v1/keys", body: tc.body})
		if fmt.Sprint(w.Code) != tc.code || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("POST /v1/keys %s: %d %s, want %s with %q", tc.body, w.Code, w.Body, tc.code, tc.want)
		}
		if e.dump() != before {
			t.Errorf("POST /v1/keys %s: a refusal wrote to Redis", tc.body)
		}
	}
	w = e.do(call{method: "GET", path: "/v1/keys"})
	list := decodeAs[api.APIKeyList](t, w)
	if len(list.Keys) != 1 || list.Keys[0].Name != "billing" || len(list.Keys[0].Companies) != 1 || strings.Contains(w.Body.String(), created.Key) {
		t.Errorf("GET /v1/keys: %s", w.Body)
	}
	if w := e.do(call{method: "GET", path: "/v1/keys", key: created.Key}); w.Code != http.StatusForbidden {
		t.Errorf("a read/write key listing keys: %d, want 403", w.Code)
	}
	for _, en := range e.logs.AllEntries() {
		if line, _ := en.String(); strings.Contains(line, created.Key) {
			t.Errorf("a log line holds the key: %s", line)
		}
	}
}

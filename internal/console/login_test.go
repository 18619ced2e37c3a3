package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/checkd/checkd/store"
)

// TestRuntimeKeyLogin: a runtime API key with the admin scope logs in (as
// Basic auth with its name, or in X-API-Key) and acts as its name; a key
// without the scope is refused with a page saying so; a deleted key's
// session ends on its next request.
func TestRuntimeKeyLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	ctx := context.Background()
	cn := e.conn("user_good")
	mk := func(name string, scopes ...string) string {
		_, secret, err := e.te.Store.CreateAPIKey(ctx, store.APIKey{Name: name, Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	ops, reader := mk("ops-oncall", "read", "write", "admin"), mk("reporting", "read", "write")
	page := "/console/connections/" + cn.ID

	basic := e.browser()
	basic.auth = func(r *http.Request) { r.SetBasicAuth("ops-oncall", ops) }
	p := basic.get("/console/")
	if p.code != http.StatusOK {
		t.Fatalf("an admin key's login = %d\n%.1000s", p.code, p.text())
	}
	p.has(t, "logged in", "ops-oncall")
	basic.redirected(t, basic.post(page, page+"/deactivate"), page)
	if h := e.lastEntry(cn.ID); h.Cause != "console:deactivate" || h.Actor != "ops-oncall" {
		t.Errorf("history: %+v, want console:deactivate by the key's name", h)
	}
	header := e.browser()
	header.auth = func(r *http.Request) { r.Header.Set("X-API-Key", ops) }
	header.redirected(t, header.post(page, page+"/reactivate"), page)
	if h := e.lastEntry(cn.ID); h.Cause != "console:reactivate" || h.Actor != "ops-oncall" {
		t.Errorf("history: %+v, want console:reactivate by the key's name", h)
	}

	for _, tc := range []struct {
		name string
		auth func(*http.Request)
		want int
		says string
	}{
		{"no admin scope", func(r *http.Request) { r.SetBasicAuth("reporting", reader) }, http.StatusForbidden,
			"The API key reporting has the scopes read, write; the console needs a key with the admin scope"},
		{"no admin scope in the header", func(r *http.Request) { r.Header.Set("X-API-Key", reader) }, http.StatusForbidden,
			"needs a key with the admin scope"},
		{"another key's name", func(r *http.Request) { r.SetBasicAuth("reporting", ops) }, http.StatusUnauthorized, "Log in required"},
		{"the dashboard's user", func(r *http.Request) { r.SetBasicAuth(user, ops) }, http.StatusUnauthorized, "runtime API key that has the admin scope"},
		{"an unknown key", func(r *http.Request) { r.Header.Set("X-API-Key", "ckd_nope") }, http.StatusUnauthorized, "Log in required"},
	} {
		b := e.browser()
		b.auth = tc.auth
		got := b.get("/console/")
		if got.code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got.code, tc.want)
		}
		got.has(t, tc.name, tc.says)
		if strings.Contains(got.body, cn.ID) || strings.Contains(got.body, e.co.Name) {
			t.Errorf("%s: the refusal shows data", tc.name)
		}
		if got := b.do("POST", page+"/deactivate", nil); got.code != tc.want {
			t.Errorf("%s: POST = %d, want %d", tc.name, got.code, tc.want)
		}
	}

	// Deleted: the open session's next page and form are refused.
	token := basic.csrf(page)
	if err := e.te.Store.DeleteAPIKey(ctx, "ops-oncall"); err != nil {
		t.Fatal(err)
	}
	if got := basic.get(page); got.code != http.StatusUnauthorized {
		t.Errorf("a deleted key's page = %d, want 401", got.code)
	}
	before := e.snapshot(cn.ID)
	if got := basic.do("POST", page+"/deactivate", map[string][]string{"csrf": {token}}); got.code != http.StatusUnauthorized {
		t.Errorf("a deleted key's form = %d, want 401", got.code)
	}
	if after := e.snapshot(cn.ID); after != before {
		t.Error("a deleted key changed the store")
	}
}

// TestRuntimeKeyLoginStoreDown: when the keys cannot be read, the login
// answers an HTML page saying so (503), not a 401 that asks for another
// password.
func TestRuntimeKeyLoginStoreDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	_, secret, err := e.te.Store.CreateAPIKey(context.Background(), store.APIKey{Name: "ops", Scopes: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	e.te.Mini.SetError("LOADING Redis is loading the dataset in memory")
	t.Cleanup(func() { e.te.Mini.SetError("") })
	b := e.browser()
	b.auth = func(r *http.Request) { r.SetBasicAuth("ops", secret) }
	got := b.get("/console/")
	if got.code != http.StatusServiceUnavailable || !strings.HasPrefix(got.hdr.Get("Content-Type"), "text/html") {
		t.Errorf("keys unreadable: %d %q, want a 503 page", got.code, got.hdr.Get("Content-Type"))
	}
	got.has(t, "store down", "The login cannot be checked now")
}

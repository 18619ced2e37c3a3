package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
)

// TestLinkInfo: POST /v1/link/info tells what a link is for and whether it
// can be used, without an API key and without spending it; used is told
// apart from superseded (a used credential link is older than the update it
// made).
func TestLinkInfo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	co := e.company("Acme")
	c := e.connection(co.ID, "user_good")
	info := func(token string) api.LinkInfo {
		t.Helper()
		before := e.dump()
		w := e.do(call{method: "POST", path: "/v1/link/info", key: "-", body: `{"token":"` + token + `"}`})
		if w.Code != http.StatusOK {
			t.Fatalf("link info: %d %s", w.Code, w.Body)
		}
		if e.dump() != before {
			t.Fatal("link info wrote to the store")
		}
		return decodeAs[api.LinkInfo](t, w)
	}
	sign := func(subject string) string {
		t.Helper()
		tok, _, err := e.links.Sign(subject)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	wantState := func(name string, got api.LinkInfo, state, msg string) {
		t.Helper()
		if got.State != state || !strings.Contains(got.Message, msg) || (state == api.LinkValid) != (got.Message == "") {
			t.Errorf("%s: state %q message %q, want %q with a message containing %q", name, got.State, got.Message, state, msg)
		}
	}

	// A credential link: its company, connection and expiry; read twice, it
	// is still valid, and it still works.
	credTok := sign(c.ID)
	for range 2 {
		got := info(credTok)
		wantState("credential link", got, api.LinkValid, "")
		if got.Kind != api.LinkKindCredentials || got.CompanyName != "Acme" || got.Connection == nil ||
			got.Connection.Datasource.Name != "sandbox" || got.Connection.Name != "conn user_good" ||
			!got.ExpiresAt.Equal(testNow.Add(linkTTL)) {
			t.Fatalf("credential link info = %+v", got)
		}
	}
	e.clk.Advance(time.Second)
	if w := e.do(call{method: "PATCH", path: "/v1/link/credentials", key: "-", body: `{"token":"` + credTok + `","credentials":{"username":"u2"}}`}); w.Code != 200 {
		t.Fatalf("use the link after reading it: %d %s", w.Code, w.Body)
	}
	wantState("used credential link", info(credTok), api.LinkUsed, "already used")

	// A link older than the credentials' last update (an operator's).
	oldTok := sign(c.ID)
	e.clk.Advance(time.Second)
	if _, err := e.st.UpdateCredentials(ctx, c.ID, checks.Credentials{Username: "u3"}); err != nil {
		t.Fatal(err)
	}
	wantState("superseded credential link", info(oldTok), api.LinkSuperseded, "replaced")

	// A new-connection link: the company, no connection; inactive while
	// its company is; used once it added a connection.
	coTok := sign(co.ID)
	got := info(coTok)
	wantState("new-connection link", got, api.LinkValid, "")
	if got.Kind != api.LinkKindConnection || got.CompanyName != "Acme" || got.Connection != nil {
		t.Fatalf("new-connection link info = %+v", got)
	}
	if _, err := e.st.SetCompanyActive(ctx, co.ID, false); err != nil {
		t.Fatal(err)
	}
	wantState("inactive company", info(coTok), api.LinkInactive, "inactive")
	if _, err := e.st.SetCompanyActive(ctx, co.ID, true); err != nil {
		t.Fatal(err)
	}
	if w := e.do(call{method: "POST", path: "/v1/link/connection", key: "-",
		body: `{"token":"` + coTok + `","datasource":"sandbox","name":"Gas","credentials":{"username":"user_good"}}`}); w.Code != 201 {
		t.Fatalf("use the new-connection link: %d %s", w.Code, w.Body)
	}
	wantState("used new-connection link", info(coTok), api.LinkUsed, "already used")

	// Expired, used or not.
	fresh := sign(co.ID)
	e.clk.Advance(linkTTL)
	for _, tok := range []string{fresh, coTok} {
		got := info(tok)
		wantState("expired link", got, api.LinkExpired, "expired at")
		if got.CompanyName != "Acme" {
			t.Errorf("expired link info = %+v, want its company", got)
		}
	}

	e.runErrorCases(t, []errorCase{
		{"no token", call{method: "POST", path: "/v1/link/info", key: "-", body: `{}`}, 401, api.CodeUnauthorized, []string{"token is required"}},
		{"tampered", call{method: "POST", path: "/v1/link/info", key: "-", body: `{"token":"` + credTok[:len(credTok)-2] + `AA"}`}, 401, api.CodeUnauthorized, []string{"not valid"}},
		{"not a link", call{method: "POST", path: "/v1/link/info", key: "-", body: `{"token":"abc.def"}`}, 401, api.CodeUnauthorized, []string{"not valid"}},
		{"unknown field", call{method: "POST", path: "/v1/link/info", key: "-", body: `{"token":"x","name":"y"}`}, 400, api.CodeInvalidRequest, []string{"name"}},
		{"GET", call{method: "GET", path: "/v1/link/info", key: "-"}, 405, api.CodeMethodNotAllowed, []string{"POST"}},
	})
	noLinks := newEnv(t, func(c *api.Config) { c.Links = nil })
	noLinks.runErrorCases(t, []errorCase{
		{"no signer", call{method: "POST", path: "/v1/link/info", key: "-", body: `{"token":"x.y"}`}, 503, api.CodeUnavailable, []string{"links are not available"}},
	})
}

package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/testing/browsertest"
	"github.com/checkd/checkd/internal/testing/openapitest"
	"github.com/checkd/checkd/store"
)

// The link pages in a real browser: Debian's chromium, headless, driven
// with chromedp. The test fills and sends each page's form and checks what
// the store then holds, and opens used, expired, superseded and broken links
// to check that each says so before showing any form. It looks at a phone's
// width (390 CSS pixels), fails on any script error or refused resource
// (a CSP that does not match the page), and saves a screenshot of every page
// it sees in $CHECKD_SCREENSHOTS, or a temporary directory it logs.

// tab is one link page in its own browser tab, at a phone's width.
type tab struct{ *browsertest.Tab }

// visit opens url in a new tab at a phone's width and waits until the page
// shows what it is: the selector ready appears.
func visit(t *testing.T, browser context.Context, name, url, ready string) *tab {
	t.Helper()
	return &tab{browsertest.Visit(t, browser, name, screenshotDir, url, ready, browsertest.Phone)}
}

// submit types values into the form's inputs (name, value, ...), sends the
// form and waits for the page to say it was saved.
func (tb *tab) submit(nameValues ...string) {
	tb.T.Helper()
	var steps []chromedp.Action[chromedp.Void]
	for i := 0; i+1 < len(nameValues); i += 2 {
		steps = append(steps, chromedp.SendKeys(chromedp.CSS(`input[name="`+nameValues[i]+`"]`), nameValues[i+1]))
	}
	tb.Do(append(steps, chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("#out.good")))...)
}

// check asserts the page's state: its heading, texts it shows, whether
// the form shows, nothing wider than the phone, and a clean console (the
// browser's own notes of an error answer, source network, are expected:
// the page reads them).
func (tb *tab) check(heading string, formShown bool, texts ...string) {
	tb.T.Helper()
	if h := tb.Text("#h"); h != heading {
		tb.T.Errorf("%s: heading %q, want %q", tb.Name, h, heading)
	}
	body := tb.Text("main")
	for _, s := range texts {
		if !strings.Contains(body, s) {
			tb.T.Errorf("%s: the page does not show %q:\n%s", tb.Name, s, body)
		}
	}
	if got := tb.Shown("f"); got != formShown {
		tb.T.Errorf("%s: form shown = %v, want %v", tb.Name, got, formShown)
	}
	if !tb.FitsWidth() {
		tb.T.Errorf("%s: the page is wider than a phone's %d pixels", tb.Name, browsertest.Phone.Width)
	}
	for _, m := range tb.ConsoleErrors() {
		tb.T.Errorf("%s: console: %s", tb.Name, m)
	}
}

// checkForm checks a page that shows its form: its heading, the company,
// the expiry, the login fields and texts, not the element with id other
// (the other kind of link's), and saves its screenshot.
func (tb *tab) checkForm(heading, other string, texts ...string) {
	tb.T.Helper()
	tb.check(heading, true, append(texts, "Company", "Acme Manufacturing", "Link valid until", "Username", "Password")...)
	if tb.Shown(other) {
		tb.T.Errorf("%s shows #%s, which is the other kind of link's", tb.Name, other)
	}
	tb.Screenshot("form")
}

// screenshotDir is where the test saves its screenshots: set by each run
// of TestLinkPagesInBrowser (a new directory on each run of -count).
var screenshotDir string

func TestLinkPagesInBrowser(t *testing.T) {
	browser := browsertest.Start(t)
	screenshotDir = browsertest.ScreenshotDir(t)

	var handler http.Handler
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(hs.Close)
	e := newEnv(t, func(c *api.Config) { c.PublicURL = hs.URL })
	handler = openapitest.Handler(t, e.srv.Handler()) // what the page sends and gets, checked against the document
	// Dates as a user would see them today.
	e.clk.Set(time.Now().UTC().Truncate(time.Minute))
	ctx := context.Background()
	co := e.company("Acme Manufacturing")
	linkURL := func(path string) string {
		t.Helper()
		var l api.LinkResponse
		w := e.do(call{method: "POST", path: path})
		if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &l) != nil || !strings.HasPrefix(l.URL, hs.URL+"/link#token=") {
			t.Fatalf("POST %s: %d %s", path, w.Code, w.Body)
		}
		return l.URL
	}

	t.Run("new connection", func(t *testing.T) {
		url := linkURL("/v1/connection/company/" + co.ID + "/link")
		p := visit(t, browser, "new-connection", url, "#f")
		p.checkForm("Add a connection", "connection-row", "Provider")
		p.Do(chromedp.SetValue(chromedp.CSS(`select[name="datasource"]`), "sandbox"))
		p.submit("connectionName", "Electricity", "username", "user_good", "password", "pw-typed-in-browser")
		p.check("Connection added", false, "Saved. “Electricity” will be checked shortly")
		p.Screenshot("saved")

		page, err := e.st.ListConnections(ctx, co.ID, nil, "", 10)
		if err != nil || len(page.Connections) != 1 {
			t.Fatalf("the company's connections: %+v %v; want the one added", page, err)
		}
		c := page.Connections[0]
		if c.Name != "Electricity" || c.Datasource.Name != "sandbox" || c.Status != checks.ConnPending {
			t.Errorf("added connection = %+v", c)
		}
		if tg, err := e.st.LoadCheck(ctx, c.ID); err != nil || tg.Request.Credentials.Username != "user_good" || tg.Request.Credentials.Password != "pw-typed-in-browser" {
			t.Errorf("added connection's credentials: %+v %v", tg.Request.Credentials, err)
		}

		used := visit(t, browser, "new-connection-used", url, "#out.bad")
		used.check("This link was already used", false, "used already", "Acme Manufacturing")
		if used.Shown("expires-row") {
			t.Error("a used link shows until when it is valid")
		}
		used.Screenshot("message")
	})

	t.Run("credentials", func(t *testing.T) {
		c, err := e.st.CreateConnection(ctx, store.NewConnection{CompanyID: co.ID, Datasource: "sandbox", Name: "Gas, main office",
			Credentials: checks.Credentials{Username: "old_user", Password: "old-pw"}})
		if err != nil {
			t.Fatal(err)
		}
		recordCheck(t, e.st, e.clk, c.ID, checks.Result{Status: checks.ConnPasswordIncorrect, Detail: "the website refused the password"})
		url := linkURL("/v1/connection/" + c.ID + "/link")
		p := visit(t, browser, "credentials", url, "#f")
		p.checkForm("Update your login", "add", "Gas, main office", "sandbox")
		p.submit("username", "new_user", "password", "new-pw-typed")
		p.check("Login updated", false, "checked with the new login shortly")
		p.Screenshot("saved")
		got, err := e.st.GetConnection(ctx, c.ID)
		if err != nil || got.Status != checks.ConnPending || got.CredentialsUpdatedAt == nil {
			t.Errorf("after the page's update: %+v %v; want PENDING with new credentials", got, err)
		}
		if tg, err := e.st.LoadCheck(ctx, c.ID); err != nil || tg.Request.Credentials.Username != "new_user" || tg.Request.Credentials.Password != "new-pw-typed" {
			t.Errorf("credentials after the page's update: %+v %v", tg.Request.Credentials, err)
		}

		used := visit(t, browser, "credentials-used", url, "#out.bad")
		used.check("This link was already used", false, "used already", "Gas, main office")
		used.Screenshot("message")

		// A link older than the credentials' last update: replaced.
		old := linkURL("/v1/connection/" + c.ID + "/link")
		e.clk.Advance(time.Second)
		if _, err := e.st.UpdateCredentials(ctx, c.ID, checks.Credentials{Username: "by_operator"}); err != nil {
			t.Fatal(err)
		}
		sup := visit(t, browser, "credentials-superseded", old, "#out.bad")
		sup.check("This link was replaced", false, "changed after the link was sent", "Gas, main office")
		sup.Screenshot("message")

		// A link past its expiry.
		late := linkURL("/v1/connection/" + c.ID + "/link")
		e.clk.Advance(linkTTL + time.Second)
		exp := visit(t, browser, "credentials-expired", late, "#out.bad")
		exp.check("This link has expired", false, "Link expired", "limited time", "Gas, main office")
		exp.Screenshot("message")

		if tg, err := e.st.LoadCheck(ctx, c.ID); err != nil || tg.Request.Credentials.Username != "by_operator" {
			t.Errorf("a refused link changed the credentials: %+v %v", tg.Request.Credentials, err)
		}
	})

	t.Run("broken links", func(t *testing.T) {
		bad := visit(t, browser, "link-not-valid", hs.URL+"/link#token=AAAA.BBBB", "#out.bad")
		bad.check("This link is not valid", false, "exactly as you received it")
		bad.Screenshot("message")
		none := visit(t, browser, "link-missing-token", hs.URL+"/link", "#out.bad")
		none.check("This link is incomplete", false, "needs the link you were sent")
		none.Screenshot("message")
	})
}

package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/daemon"
	"github.com/checkd/checkd/internal/testing/browsertest"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/internal/testing/testenv"
	"github.com/checkd/checkd/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// checkd is one daemon with every role on a real Redis, seeded with the
// demo's companies, each connection checked once.
type checkd struct {
	base string
}

// startCheckd runs the demo of make run on a real Redis, with a week's
// check interval (so the forecast spreads over the week) and a writable
// console, and checks every demo connection once.
func startCheckd(t *testing.T) *checkd {
	t.Helper()
	cfg := testenv.DemoConfig(t)
	o := redistest.Start(t).Client(t).Options()
	cfg.RedisURL = fmt.Sprintf("redis://%s/%d", o.Addr, o.DB)
	cfg.EncryptionKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	cfg.APIKeys = []string{apiKey}
	cfg.APIRateLimit.PerSecond = 0 // the test polls the API in loops
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.CheckInterval = 7 * 24 * time.Hour
	cfg.Tick = "@every 1h" // the test ticks by hand
	cfg.Sandbox.Latency = 0
	cfg.Dashboard.User, cfg.Dashboard.Password, cfg.Dashboard.Writable = user, password, true
	d, err := daemon.New(cfg, testenv.QuietLogger(), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), d.StopTimeout())
		defer cancel()
		if err := d.Stop(sctx); err != nil {
			t.Errorf("stop checkd: %v", err)
		}
	})
	if _, err := d.Scheduler().Tick(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	poll.WaitFor(t, 2*time.Minute, "every demo connection checked once", func() bool {
		n, err := d.Store().StatusCounts(ctx)
		return err == nil && n[checks.ConnPending] == 0
	})
	return &checkd{base: "http://" + d.API().Addr()}
}

// api reads an API route into out, failing t on error.
func (c *checkd) api(t *testing.T, path string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	req.Header.Set("X-API-Key", apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// counts are the connections per status as the API lists them: every
// company's connections, page by page.
func (c *checkd) counts(t *testing.T) (map[string]int, map[string]store.Company) {
	t.Helper()
	var cos api.CompanyList
	c.api(t, "/v1/company", &cos)
	out, byName := map[string]int{}, map[string]store.Company{}
	for _, co := range cos.Companies {
		byName[co.Name] = co
		for cursor := "first"; cursor != ""; {
			var page api.ConnectionPage
			path := "/v1/connection/company/" + co.ID + "?limit=1000"
			if cursor != "first" {
				path += "&cursor=" + cursor
			}
			c.api(t, path, &page)
			for _, cn := range page.Connections {
				out[string(cn.Status)]++
			}
			cursor = page.NextCursor
		}
	}
	return out, byName
}

// page is one console page in a tab, logged in.
type consoleTab struct {
	*browsertest.Tab
}

func openConsole(t *testing.T, browser context.Context, name, dir string, v browsertest.Viewport) consoleTab {
	t.Helper()
	tb := browsertest.Open(t, browser, name, dir, v)
	tb.Login(user, password)
	return consoleTab{tb}
}

// look checks the page as a user sees it: nothing wider than the window,
// a clean console (no CSP refusal, no script error), and every control
// named; then saves its screenshot.
func (tb consoleTab) look(shot string) {
	tb.T.Helper()
	if !tb.FitsWidth() {
		tb.T.Errorf("%s %s: the page is wider than %d pixels", tb.Name, shot, tb.View.Width)
	}
	for _, m := range tb.ConsoleErrors() {
		tb.T.Errorf("%s %s: console: %s", tb.Name, shot, m)
	}
	unnamed := browsertest.Eval[[]string](tb.Tab, `[...document.querySelectorAll('a, button, input:not([type=hidden]), select, svg[role=img]')]
		.filter(e => !(e.getAttribute('aria-label') || (e.labels && e.labels.length) || e.getAttribute('aria-labelledby') || e.textContent.trim()))
		.map(e => e.outerHTML.slice(0, 120))`)
	for _, u := range unnamed {
		tb.T.Errorf("%s %s: a control without an accessible name: %s", tb.Name, shot, u)
	}
	tb.Screenshot(shot)
}

// click clicks sel, which loads a page, and waits for ready on the new
// page (not on the one clicked: a page's notice may be the last one's).
func (tb consoleTab) click(sel, ready string) {
	tb.T.Helper()
	tb.Do(chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.left = "1"`),
		chromedp.Click(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS("html:not([data-left]) "+ready)))
}

// path is the page's URL path.
func (tb consoleTab) path() string {
	tb.T.Helper()
	return browsertest.Eval[string](tb.Tab, `location.pathname`)
}

// TestConsoleInBrowser drives the console in chromium over checkd with the
// demo's data on a real Redis: the overview's counts and forecast, then a
// company and a connection, deactivated by clicking its button and checked
// through the API; each page at 1280×800 and at a phone's width.
func TestConsoleInBrowser(t *testing.T) {
	browser := browsertest.Start(t)
	dir := browsertest.ScreenshotDir(t)
	c := startCheckd(t)
	apiCounts, companies := c.counts(t)

	t.Run("overview", func(t *testing.T) {
		for _, v := range []struct {
			name string
			view browsertest.Viewport
		}{{"desktop", browsertest.Desktop}, {"phone", browsertest.Phone}} {
			tb := openConsole(t, browser, "overview", dir, v.view)
			tb.Go(c.base+"/console/", "#forecast")
			if n := browsertest.Eval[int](tb.Tab, `document.querySelectorAll('#forecast rect.bar').length`); n != 168 {
				t.Errorf("%s: the forecast has %d bars, want 168 (an hour each, 7 days)", v.name, n)
			}
			if h := tb.Text("#health-sandbox"); h != "HEALTHY" {
				t.Errorf("%s: the sandbox's health %q, want HEALTHY", v.name, h)
			}
			if !tb.Shown("h-webhooks") || !tb.Shown("webhooks-none") { // the demo has no endpoint
				t.Errorf("%s: the overview has no Webhooks panel saying there is no endpoint", v.name)
			}
			if b := tb.Text("#busiest"); !strings.HasPrefix(b, "Busiest hour: ") {
				t.Errorf("%s: busiest hour %q", v.name, b)
			}
			shown := browsertest.Eval[map[string]int](tb.Tab,
				`Object.fromEntries([...document.querySelectorAll('[id^="n-"]')].map(e => [e.id.slice(2), +e.dataset.count]))`)
			for _, st := range checks.ConnectionStatuses {
				if shown[string(st)] != apiCounts[string(st)] {
					t.Errorf("%s: the overview shows %d %s, the API lists %d", v.name, shown[string(st)], st, apiCounts[string(st)])
				}
			}
			if len(shown) != len(checks.ConnectionStatuses) {
				t.Errorf("%s: the overview counts %d statuses, want %d", v.name, len(shown), len(checks.ConnectionStatuses))
			}
			tb.look(v.name)
		}
	})

	t.Run("company and connection", func(t *testing.T) {
		tb := openConsole(t, browser, "company", dir, browsertest.Desktop)
		tb.Go(c.base+"/console/", "#forecast")
		tb.click(`nav a[href="/console/companies"]`, "#companies")
		tb.Name = "companies"
		tb.look("desktop")
		acme := companies["Acme Manufacturing"]
		tb.click(`#companies a[href="/console/companies/`+acme.ID+`"]`, "#connections")
		tb.Name = "company"
		tb.look("desktop")
		// The Connected filter, then its first connection.
		tb.click(`.chips a[href$="status=CONNECTED"]`, `.chips a[aria-current="true"][href$="status=CONNECTED"]`)
		tb.click(`#connections tbody a`, "#fields")
		id := strings.TrimPrefix(tb.path(), "/console/connections/")
		tb.Name = "connection"
		tb.look("desktop")

		tb.click("#deactivate", ".notice.good")
		if n := tb.Text(".notice.good"); !strings.Contains(n, "Connection deactivated") {
			t.Errorf("after clicking Deactivate: %q", n)
		}
		tb.look("deactivated")
		var got api.Connection
		c.api(t, "/v1/connection/"+id+"/details", &got)
		if got.Status != checks.ConnDeactivated || got.IsActive {
			t.Errorf("through the API after the click: %s isActive=%v, want DEACTIVATED", got.Status, got.IsActive)
		}
		var h api.History
		c.api(t, "/v1/connection/"+id+"/history?limit=1", &h)
		if len(h.History) != 1 || h.History[0].Cause != "console:deactivate" || h.History[0].Actor != user {
			t.Errorf("history through the API: %+v, want console:deactivate by %s", h.History, user)
		}

		// Check now on a deactivated connection: refused, saying why, as
		// the API's 409.
		tb.click("#refresh", "#problem")
		if p := tb.Text("#problem"); !strings.Contains(p, "cannot be refreshed") {
			t.Errorf("Check now on a deactivated connection: %q, want the refusal's reason", p)
		}
		tb.look("refused")

		// The last check before the reactivation: its check may have run
		// before the page after the click is read, so the wait below
		// starts from here, not from a read after the click.
		var lastBefore time.Time
		if got.LastCheckAt != nil {
			lastBefore = *got.LastCheckAt
		}
		tb.click("#reactivate", ".notice.good")
		if n := tb.Text(".notice.good"); !strings.Contains(n, "Connection reactivated") || !strings.Contains(n, "A check is enqueued") {
			t.Fatalf("after clicking Reactivate: %q, want the connection reactivated and a check enqueued", n)
		}
		c.api(t, "/v1/connection/"+id+"/details", &got)
		if got.Status != checks.ConnConnected || !got.IsActive {
			t.Errorf("through the API after Reactivate: %s isActive=%v, want CONNECTED and active", got.Status, got.IsActive)
		}
		// The reactivation enqueued a check, then Check now enqueues one:
		// each is run, as the connection's last check time says.
		c.checkedAfter(t, id, lastBefore, "the check the reactivation enqueued")
		c.api(t, "/v1/connection/"+id+"/details", &got)
		tb.click("#refresh", ".notice.good")
		if n := tb.Text(".notice.good"); !strings.Contains(n, "Check enqueued on the critical queue") {
			t.Errorf("after clicking Check now: %q", n)
		}
		tb.look("refreshed")
		c.checkedAfter(t, id, *got.LastCheckAt, "the check Check now enqueued")

		tb.click("#make-link", "#link-url")
		if u := browsertest.Eval[string](tb.Tab, `document.getElementById('link-url').value`); !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/link#token=\S+$`).MatchString(u) {
			t.Errorf("credential-update link %q", u)
		}
		tb.Do(chromedp.Click(chromedp.CSS(`button[data-copy="link-url"]`)), chromedp.WaitVisible(chromedp.CSS("#copied:not(:empty)")))
		tb.look("link")

		for _, p := range []struct{ name, path, ready string }{
			{"companies", "/console/companies", "#companies"},
			{"company", "/console/companies/" + acme.ID, "#connections"},
			{"connection", "/console/connections/" + id, "#fields"},
		} {
			ph := openConsole(t, browser, p.name, dir, browsertest.Phone)
			ph.Go(c.base+p.path, p.ready)
			ph.look("phone")
		}
	})

	t.Run("confirm an account", func(t *testing.T) {
		// Hooli Facilities leaves discovered accounts to confirm.
		hooli := companies["Hooli Facilities"]
		var page api.ConnectionPage
		c.api(t, "/v1/connection/company/"+hooli.ID+"?status=CONNECTED&limit=1", &page)
		if len(page.Connections) != 1 || len(page.Connections[0].Accounts) == 0 {
			t.Fatalf("Hooli's connections: %+v", page)
		}
		cn := page.Connections[0]
		tb := openConsole(t, browser, "accounts", dir, browsertest.Desktop)
		tb.Go(c.base+"/console/find?id="+cn.ID, "#accounts")
		tb.look("detected")
		tb.click(`#accounts button[aria-label="Confirm account `+cn.Accounts[0].AccountNumber+`"]`, ".notice.good")
		tb.look("confirmed")
		var got api.Connection
		c.api(t, "/v1/connection/"+cn.ID+"/details", &got)
		if got.Accounts[0].Status != checks.AcctOnboarded || got.Accounts[0].TrackingStatus != checks.TrackingEnabled {
			t.Errorf("after Confirm: %+v", got.Accounts[0])
		}
		last := cn.Accounts[len(cn.Accounts)-1]
		tb.click(`#accounts button[aria-label="Reject account `+last.AccountNumber+`"]`, ".notice.good")
		if n := tb.Text(".notice.good"); !strings.Contains(n, "Account "+last.AccountNumber+" rejected") {
			t.Errorf("after Reject: %q", n)
		}
		tb.look("rejected")
		c.api(t, "/v1/connection/"+cn.ID+"/details", &got)
		if a := got.Accounts[len(got.Accounts)-1]; a.ID != last.ID || a.TrackingStatus != checks.TrackingDisabled {
			t.Errorf("after Reject through the API: %+v, want %s DISABLED", a, last.ID)
		}
	})

	t.Run("operations", func(t *testing.T) { operations(t, c, browser, dir, companies) })
	t.Run("runtime key login", func(t *testing.T) { runtimeKeyLogin(t, c, browser, dir, companies) })

	t.Run("deactivate a company", func(t *testing.T) {
		globex := companies["Globex Retail"]
		tb := openConsole(t, browser, "company-deactivate", dir, browsertest.Desktop)
		tb.Go(c.base+"/console/companies/"+globex.ID, "#connections")
		tb.click("#company-deactivate", "#confirm")
		if a := tb.Text("#affects"); !strings.Contains(a, fmt.Sprintf("This changes %d of the company's", sumCounts(t, c, globex.ID))) {
			t.Errorf("confirmation: %q", a)
		}
		tb.look("confirm")
		tb.click("#confirm", ".notice.good")
		tb.look("done")
		var co store.Company
		c.api(t, "/v1/company/"+globex.ID, &co)
		if co.IsActive {
			t.Error("Globex is still active after the confirmation")
		}

		tb.click("#company-reactivate", "#confirm")
		if a := tb.Text("#affects"); !strings.Contains(a, fmt.Sprintf("This gives %d of the company's", sumCounts(t, c, globex.ID))) {
			t.Errorf("reactivation's confirmation: %q", a)
		}
		tb.click("#confirm", ".notice.good")
		if n := tb.Text(".notice.good"); !strings.Contains(n, "Globex Retail reactivated") {
			t.Errorf("after confirming the reactivation: %q", n)
		}
		c.api(t, "/v1/company/"+globex.ID, &co)
		if !co.IsActive {
			t.Error("Globex is still inactive after the reactivation")
		}
		var page api.ConnectionPage
		c.api(t, "/v1/connection/company/"+globex.ID+"?status=COMPANY_INACTIVE&limit=1", &page)
		if len(page.Connections) != 0 {
			t.Errorf("after the reactivation %s is still COMPANY_INACTIVE", page.Connections[0].ID)
		}
	})
}

// operations drives issue 20's operations in the browser (a connection's
// investigation, its accounts' flags, a company's site filter) and reads
// each result back through the API.
func operations(t *testing.T, c *checkd, browser context.Context, dir string, companies map[string]store.Company) {
	// A connection of Acme's with two accounts at least.
	acme := companies["Acme Manufacturing"]
	var page api.ConnectionPage
	c.api(t, "/v1/connection/company/"+acme.ID+"?status=CONNECTED&limit=100", &page)
	var cn api.Connection
	for _, x := range page.Connections {
		if len(x.Accounts) >= 2 {
			cn = x
			break
		}
	}
	if cn.ID == "" {
		t.Fatalf("no CONNECTED Acme connection with two accounts: %+v", page)
	}
	tb := openConsole(t, browser, "operations", dir, browsertest.Desktop)
	tb.Go(c.base+"/console/connections/"+cn.ID, "#fields")
	// details reads the connection through the API (into a new value:
	// JSON leaves out what is absent, such as a cleared investigation).
	details := func() api.Connection {
		t.Helper()
		var got api.Connection
		c.api(t, "/v1/connection/"+cn.ID+"/details", &got)
		return got
	}
	lastCause := func(want string) {
		t.Helper()
		var h api.History
		c.api(t, "/v1/connection/"+cn.ID+"/history?limit=1", &h)
		if len(h.History) != 1 || h.History[0].Cause != want || h.History[0].Actor != user {
			t.Errorf("history through the API: %+v, want %s by %s", h.History, want, user)
		}
	}

	tb.Do(chromedp.SendKeys(chromedp.CSS("#investigation-note"), "portal redesign; OPS-7"))
	tb.click("#investigate", ".notice.good")
	if n := tb.Text(".notice.good"); !strings.Contains(n, "Connection under investigation") {
		t.Errorf("after Flag under investigation: %q", n)
	}
	tb.Name = "investigation"
	tb.look("flagged")
	got := details()
	if got.Status != checks.ConnUnderInvestigation || got.Investigation == nil || got.Investigation.Note != "portal redesign; OPS-7" {
		t.Errorf("through the API after the flag: %s %+v", got.Status, got.Investigation)
	}
	lastCause("console:investigate")
	checked := *got.LastCheckAt
	tb.click("#clear-investigation", ".notice.good")
	if n := tb.Text(".notice.good"); !strings.Contains(n, "Investigation cleared") || !strings.Contains(n, "A check is enqueued") {
		t.Errorf("after Clear investigation: %q", n)
	}
	got = details()
	if got.Status == checks.ConnUnderInvestigation || got.Investigation != nil {
		t.Errorf("through the API after the clear: %s %+v", got.Status, got.Investigation)
	}
	lastCause("console:investigate-clear")
	c.checkedAfter(t, cn.ID, checked, "the check the clear enqueued") // before the flags: its accounts then stay

	got = details()
	a0, a1 := got.Accounts[0], got.Accounts[1]
	tb.Go(c.base+"/console/connections/"+cn.ID, "#accounts")
	tb.click(`#accounts button[aria-label="Flag account `+a0.AccountNumber+`"]`, ".notice.good")
	tb.Do(chromedp.SetValue(chromedp.CSS(`#accounts select[aria-label="Flag for account `+a1.AccountNumber+`"]`), "DUPLICATE"),
		chromedp.SendKeys(chromedp.CSS(`#accounts input[aria-label="Account that account `+a1.AccountNumber+` duplicates"]`), a0.ID))
	tb.click(`#accounts button[aria-label="Flag account `+a1.AccountNumber+`"]`, ".notice.good")
	if n := tb.Text(".notice.good"); !strings.Contains(n, "Account "+a1.AccountNumber+" flagged Duplicate of "+a0.ID) {
		t.Errorf("after flagging a duplicate: %q", n)
	}
	tb.Name = "account-flags"
	tb.look("flagged")
	after := details()
	if after.Accounts[0].Status != checks.AcctOldAccount || after.Accounts[1].Status != checks.AcctDuplicate || after.Accounts[1].DuplicateOf != a0.ID {
		t.Errorf("through the API after the flags: %+v", after.Accounts[:2])
	}
	lastCause("console:account-flag")
	tb.click(`#accounts button[aria-label="Undo the flag of account `+a0.AccountNumber+`"]`, ".notice.good")
	after = details()
	if after.Accounts[0].Status != a0.Status {
		t.Errorf("through the API after Undo: %s, want %s back", after.Accounts[0].Status, a0.Status)
	}
	lastCause("console:account-flag")

	// Sites assigned through the API, filtered in the console.
	c.send(t, http.MethodPatch, "/v1/connection/"+cn.ID+"/details", `{"siteIds": ["site-hq", "site-plant-2"]}`)
	tb.Go(c.base+"/console/companies/"+acme.ID, "#connections")
	tb.Do(chromedp.SendKeys(chromedp.CSS("#site-id"), "site-plant-2"))
	tb.click("#site-filter", "#connections")
	shown := browsertest.Eval[[]string](tb.Tab, `[...document.querySelectorAll('#connections tbody a')].map(a => a.getAttribute('href').split('/').pop())`)
	c.api(t, "/v1/connection/company/"+acme.ID+"?siteId=site-plant-2", &page)
	var want []string
	for _, x := range page.Connections {
		want = append(want, x.ID)
	}
	if fmt.Sprint(shown) != fmt.Sprint(want) || len(want) != 1 {
		t.Errorf("site-plant-2: the console lists %v, the API %v", shown, want)
	}
	tb.Name = "company-site"
	tb.look("desktop")
	ph := openConsole(t, browser, "operations", dir, browsertest.Phone)
	ph.Go(c.base+"/console/connections/"+cn.ID, "#accounts")
	ph.look("phone")
}

// runtimeKeyLogin logs in with a runtime API key made through POST
// /v1/keys and acts: the API's history names the key.
func runtimeKeyLogin(t *testing.T, c *checkd, browser context.Context, dir string, companies map[string]store.Company) {
	var k api.CreatedAPIKey
	c.sendInto(t, http.MethodPost, "/v1/keys", `{"name": "oncall-console", "scopes": ["admin"]}`, &k)
	var page api.ConnectionPage
	c.api(t, "/v1/connection/company/"+companies["Acme Manufacturing"].ID+"?status=CONNECTED&limit=1", &page)
	id := page.Connections[0].ID
	// A browser context of its own: the others' tabs logged in as the
	// dashboard's user, and Chromium reuses a login across its tabs.
	own, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(own); err != nil {
		t.Fatalf("a new browser context: %v", err)
	}
	tb := browsertest.Open(t, own, "runtime-key", dir, browsertest.Desktop)
	tb.Login(k.Name, k.Key)
	ctb := consoleTab{tb}
	ctb.Go(c.base+"/console/connections/"+id, "#fields")
	if who := ctb.Text(".who"); !strings.Contains(who, "oncall-console") {
		t.Errorf("logged in as %q, want the key's name", who)
	}
	ctb.click("#deactivate", ".notice.good")
	ctb.look("deactivated")
	var h api.History
	c.api(t, "/v1/connection/"+id+"/history?limit=1", &h)
	if len(h.History) != 1 || h.History[0].Cause != "console:deactivate" || h.History[0].Actor != "oncall-console" {
		t.Errorf("history through the API: %+v, want console:deactivate by oncall-console", h.History)
	}
	ctb.click("#reactivate", ".notice.good")
	// Deleted: the next request with it is refused.
	c.send(t, http.MethodDelete, "/v1/keys/oncall-console", "")
	req, _ := http.NewRequest(http.MethodGet, c.base+"/console/", nil)
	req.SetBasicAuth(k.Name, k.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the deleted key's login = %d, want 401", resp.StatusCode)
	}
}

// send sends a JSON body to an API route, failing t unless it answers 2xx.
func (c *checkd) send(t *testing.T, method, path, body string) {
	t.Helper()
	c.sendInto(t, method, path, body, nil)
}

// sendInto is send reading the answer into out (nil: ignored).
func (c *checkd) sendInto(t *testing.T, method, path, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	req.Header.Set("X-API-Key", apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// checkedAfter waits until the API says the connection was checked after
// since.
func (c *checkd) checkedAfter(t *testing.T, id string, since time.Time, what string) {
	t.Helper()
	poll.WaitFor(t, 2*time.Minute, what+", seen through the API", func() bool {
		var got api.Connection
		c.api(t, "/v1/connection/"+id+"/details", &got)
		return got.LastCheckAt != nil && got.LastCheckAt.After(since)
	})
}

// sumCounts is how many connections the API lists for a company.
func sumCounts(t *testing.T, c *checkd, companyID string) int {
	t.Helper()
	var page api.ConnectionPage
	c.api(t, "/v1/connection/company/"+companyID+"?limit=1000", &page)
	return len(page.Connections)
}

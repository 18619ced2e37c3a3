package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
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

// phoneWidth and phoneHeight are the viewport: a common phone's, in CSS pixels.
const phoneWidth, phoneHeight = 390, 844

// pageTimeout bounds one page's load or form submission (a shared machine
// starts chromium slowly).
const pageTimeout = time.Minute

// chromiumPath finds the browser: chromium on PATH, or Debian's.
func chromiumPath() (string, error) {
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	const debian = "/usr/bin/chromium"
	if _, err := os.Stat(debian); err != nil {
		return "", errors.New("chromium is not installed (apt-get install -y chromium)")
	}
	return debian, nil
}

// skipOrFail skips a test that lacks chromium locally, and fails it in CI,
// where the browser tests must run.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format+" (skipped locally; CI fails instead)", args...)
}

// newBrowser starts one headless chromium for the test; its tabs are the
// contexts newTab derives from the returned one.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := chromiumPath()
	if err != nil {
		skipOrFail(t, "browser test: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.DisableGPU,
		// Chromium refuses to start its sandbox as root (CI containers);
		// the test opens only its own local pages.
		chromedp.NoSandbox,
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(phoneWidth, phoneHeight),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		skipOrFail(t, "browser test: start %s: %v", path, err)
	}
	return bctx
}

// tab is one page visit in its own browser tab.
type tab struct {
	t    *testing.T
	ctx  context.Context
	name string // of its screenshots

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// visit opens url in a new tab at a phone's width and waits until the page
// shows what it is: the selector ready appears.
func visit(t *testing.T, browser context.Context, name, url, ready string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx, name: name}
	// Subscribing creates the tab; a timeout on that first call would end it.
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	tb.do(chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateScale(2)), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(ready)))
	return tb
}

// do runs steps within pageTimeout.
func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, pageTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.screenshot("failed")
		tb.t.Fatalf("%s: %v\nconsole: %v", tb.name, err, tb.messages())
	}
}

// submit types values into the form's inputs (name, value, ...), sends the
// form and waits for the page to say it was saved.
func (tb *tab) submit(nameValues ...string) {
	tb.t.Helper()
	var steps []chromedp.Action[chromedp.Void]
	for i := 0; i+1 < len(nameValues); i += 2 {
		steps = append(steps, chromedp.SendKeys(chromedp.CSS(`input[name="`+nameValues[i]+`"]`), nameValues[i+1]))
	}
	tb.do(append(steps, chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("#out.good")))...)
}

func run[T any](tb *tab, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, pageTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("%s: %v", tb.name, err)
	}
	return v
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return strings.TrimSpace(run(tb, chromedp.Text(chromedp.CSS(sel), chromedp.NodeReady)))
}

// shown reports whether the element with id is displayed.
func (tb *tab) shown(id string) bool {
	tb.t.Helper()
	return run(tb, chromedp.Evaluate[bool](`(() => { const e = document.getElementById(`+jsString(id)+`); return !!e && e.offsetParent !== null; })()`))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (tb *tab) messages() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	out := make([]string, len(tb.console))
	for i, m := range tb.console {
		out[i] = m.Source + " " + m.String()
	}
	return out
}

// check asserts the page's state: its heading, texts it shows, whether
// the form shows, nothing wider than the phone, and a clean console (the
// browser's own notes of an error answer, source network, are expected:
// the page reads them).
func (tb *tab) check(heading string, formShown bool, texts ...string) {
	tb.t.Helper()
	if h := tb.text("#h"); h != heading {
		tb.t.Errorf("%s: heading %q, want %q", tb.name, h, heading)
	}
	body := tb.text("main")
	for _, s := range texts {
		if !strings.Contains(body, s) {
			tb.t.Errorf("%s: the page does not show %q:\n%s", tb.name, s, body)
		}
	}
	if got := tb.shown("f"); got != formShown {
		tb.t.Errorf("%s: form shown = %v, want %v", tb.name, got, formShown)
	}
	if !run(tb, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`)) {
		tb.t.Errorf("%s: the page is wider than a phone's %d pixels", tb.name, phoneWidth)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, m := range tb.console {
		if (m.Type == chromedp.ConsoleError || m.IsException() || m.Source == "security") && m.Source != "network" {
			tb.t.Errorf("%s: console: %s %s", tb.name, m.Source, m)
		}
	}
}

// checkForm checks a page that shows its form: its heading, the company,
// the expiry, the login fields and texts, not the element with id other
// (the other kind of link's), and saves its screenshot.
func (tb *tab) checkForm(heading, other string, texts ...string) {
	tb.t.Helper()
	tb.check(heading, true, append(texts, "Company", "Acme Manufacturing", "Link valid until", "Username", "Password")...)
	if tb.shown(other) {
		tb.t.Errorf("%s shows #%s, which is the other kind of link's", tb.name, other)
	}
	tb.screenshot("form")
}

// screenshotDir is where screenshots go ("": nowhere). Read on every use:
// TestLinkPagesInBrowser points it at its own TempDir, a new one on each
// run of -count.
func screenshotDir() string { return os.Getenv("CHECKD_SCREENSHOTS") }

// screenshot saves the whole page as <dir>/<tab name>-<suffix>.png.
func (tb *tab) screenshot(suffix string) {
	tb.t.Helper()
	dir := screenshotDir()
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(tb.ctx, pageTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Errorf("%s: screenshot: %v", tb.name, err)
		return
	}
	p := filepath.Join(dir, tb.name+"-"+suffix+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.t.Errorf("save screenshot: %v", err)
	}
}

func TestLinkPagesInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: -short")
	}
	browser := newBrowser(t)
	if os.Getenv("CHECKD_SCREENSHOTS") == "" {
		t.Setenv("CHECKD_SCREENSHOTS", t.TempDir())
	} else if err := os.MkdirAll(os.Getenv("CHECKD_SCREENSHOTS"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", screenshotDir())

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
		p.do(chromedp.SetValue(chromedp.CSS(`select[name="datasource"]`), "sandbox"))
		p.submit("connectionName", "Electricity", "username", "user_good", "password", "pw-typed-in-browser")
		p.check("Connection added", false, "Saved. “Electricity” will be checked shortly")
		p.screenshot("saved")

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
		if used.shown("expires-row") {
			t.Error("a used link shows until when it is valid")
		}
		used.screenshot("message")
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
		p.screenshot("saved")
		got, err := e.st.GetConnection(ctx, c.ID)
		if err != nil || got.Status != checks.ConnPending || got.CredentialsUpdatedAt == nil {
			t.Errorf("after the page's update: %+v %v; want PENDING with new credentials", got, err)
		}
		if tg, err := e.st.LoadCheck(ctx, c.ID); err != nil || tg.Request.Credentials.Username != "new_user" || tg.Request.Credentials.Password != "new-pw-typed" {
			t.Errorf("credentials after the page's update: %+v %v", tg.Request.Credentials, err)
		}

		used := visit(t, browser, "credentials-used", url, "#out.bad")
		used.check("This link was already used", false, "used already", "Gas, main office")
		used.screenshot("message")

		// A link older than the credentials' last update: replaced.
		old := linkURL("/v1/connection/" + c.ID + "/link")
		e.clk.Advance(time.Second)
		if _, err := e.st.UpdateCredentials(ctx, c.ID, checks.Credentials{Username: "by_operator"}); err != nil {
			t.Fatal(err)
		}
		sup := visit(t, browser, "credentials-superseded", old, "#out.bad")
		sup.check("This link was replaced", false, "changed after the link was sent", "Gas, main office")
		sup.screenshot("message")

		// A link past its expiry.
		late := linkURL("/v1/connection/" + c.ID + "/link")
		e.clk.Advance(linkTTL + time.Second)
		exp := visit(t, browser, "credentials-expired", late, "#out.bad")
		exp.check("This link has expired", false, "Link expired", "limited time", "Gas, main office")
		exp.screenshot("message")

		if tg, err := e.st.LoadCheck(ctx, c.ID); err != nil || tg.Request.Credentials.Username != "by_operator" {
			t.Errorf("a refused link changed the credentials: %+v %v", tg.Request.Credentials, err)
		}
	})

	t.Run("broken links", func(t *testing.T) {
		bad := visit(t, browser, "link-not-valid", hs.URL+"/link#token=AAAA.BBBB", "#out.bad")
		bad.check("This link is not valid", false, "exactly as you received it")
		bad.screenshot("message")
		none := visit(t, browser, "link-missing-token", hs.URL+"/link", "#out.bad")
		none.check("This link is incomplete", false, "needs the link you were sent")
		none.screenshot("message")
	})
}

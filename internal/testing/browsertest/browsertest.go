// Package browsertest drives checkd's web pages in a real browser for
// tests: Debian's chromium, headless, through chromedp. A test starts one
// browser (Start), opens each page in a tab of its own at a given viewport
// (Open, Visit), acts and reads through chromedp, fails on script errors
// and on resources the page's Content-Security-Policy refused
// (Tab.ConsoleErrors), and saves screenshots in $CHECKD_SCREENSHOTS or a
// temporary directory (ScreenshotDir).
//
// Without chromium a test skips locally and fails in CI (CI set), where
// .ci/run installs it: browser tests must run there.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkd/checkd/internal/testing/ci"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
)

// Viewport is a window size in CSS pixels.
type Viewport struct{ Width, Height int }

// The viewports checkd's pages are checked at.
var (
	// Phone is a common phone's.
	Phone = Viewport{390, 844}
	// Desktop is a laptop's.
	Desktop = Viewport{1280, 800}
)

// PageTimeout bounds one step: a page's load, a click and what it waits
// for (a shared machine starts chromium slowly).
const PageTimeout = time.Minute

// ChromiumPath finds the browser: chromium on PATH, or Debian's.
func ChromiumPath() (string, error) {
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	const debian = "/usr/bin/chromium"
	if _, err := os.Stat(debian); err != nil {
		return "", errors.New("chromium is not installed (apt-get install -y chromium)")
	}
	return debian, nil
}

// Start starts one headless chromium for the test; its tabs are the
// contexts Open derives from the returned one. It skips (locally) or fails
// (CI) without chromium, and under -short.
func Start(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: -short")
	}
	path, err := ChromiumPath()
	if err != nil {
		ci.SkipOrFail(t, "browser test: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.DisableGPU,
		// Chromium refuses to start its sandbox as root (CI containers);
		// the test opens only its own local pages.
		chromedp.NoSandbox,
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(Desktop.Width, Desktop.Height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		ci.SkipOrFail(t, "browser test: start %s: %v", path, err)
	}
	return bctx
}

// ScreenshotDir is where screenshots go: $CHECKD_SCREENSHOTS (created if
// needed), else a temporary directory of the test, which it logs.
func ScreenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CHECKD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// Tab is one browser tab.
type Tab struct {
	T    *testing.T
	Ctx  context.Context
	Name string // of its screenshots
	// Dir is where Screenshot saves ("": nowhere).
	Dir  string
	View Viewport

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// Open opens a new tab at viewport v, recording its console. Name names
// its screenshots, saved in dir ("" saves none).
func Open(t *testing.T, browser context.Context, name, dir string, v Viewport) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	tb := &Tab{T: t, Ctx: ctx, Name: name, Dir: dir, View: v}
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
	tb.Do(chromedp.EmulateViewport(int64(v.Width), int64(v.Height), chromedp.EmulateScale(2)))
	return tb
}

// Login makes the tab answer the server's Basic-auth challenges with user
// and password, as a person does in the browser's login prompt: each 401
// with a challenge is sent again with the credentials. Call it before the
// first page that needs them.
func (tb *Tab) Login(user, password string) {
	tb.T.Helper()
	paused := chromedp.Events(tb.Ctx, fetch.RequestPaused)
	challenges := chromedp.Events(tb.Ctx, fetch.AuthRequired)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(tb.Ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range challenges {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(tb.Ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials,
					Username: user, Password: password}})
		}
	}()
	yes := true
	ctx, cancel := context.WithTimeout(tb.Ctx, PageTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &yes}); err != nil {
		tb.T.Fatalf("%s: answer logins: %v", tb.Name, err)
	}
}

// Visit opens url in new tab at viewport v and waits until the selector
// ready shows.
func Visit(t *testing.T, browser context.Context, name, dir, url, ready string, v Viewport) *Tab {
	t.Helper()
	tb := Open(t, browser, name, dir, v)
	tb.Go(url, ready)
	return tb
}

// Go navigates the tab to url and waits until the selector ready shows.
func (tb *Tab) Go(url, ready string) {
	tb.T.Helper()
	tb.Do(chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(ready)))
}

// Do runs steps within PageTimeout; on failure it saves a screenshot and
// fails the test with the console's messages.
func (tb *Tab) Do(steps ...chromedp.Action[chromedp.Void]) {
	tb.T.Helper()
	ctx, cancel := context.WithTimeout(tb.Ctx, PageTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.Screenshot("failed")
		tb.T.Fatalf("%s: %v\nconsole: %v", tb.Name, err, tb.Messages())
	}
}

// Run runs one action within PageTimeout and returns its value, failing
// the test on error.
func Run[T any](tb *Tab, a chromedp.Action[T]) T {
	tb.T.Helper()
	ctx, cancel := context.WithTimeout(tb.Ctx, PageTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.T.Fatalf("%s: %v", tb.Name, err)
	}
	return v
}

// Eval evaluates a JavaScript expression and returns its value.
func Eval[T any](tb *Tab, js string) T {
	tb.T.Helper()
	return Run(tb, chromedp.Evaluate[T](js))
}

// Text is the text of the first element sel matches, trimmed.
func (tb *Tab) Text(sel string) string {
	tb.T.Helper()
	return strings.TrimSpace(Run(tb, chromedp.Text(chromedp.CSS(sel), chromedp.NodeReady)))
}

// Shown reports whether the element with id is displayed.
func (tb *Tab) Shown(id string) bool {
	tb.T.Helper()
	return Eval[bool](tb, `(() => { const e = document.getElementById(`+JSString(id)+`); return !!e && e.offsetParent !== null; })()`)
}

// FitsWidth reports whether nothing makes the page wider than its window
// (no sideways scrolling).
func (tb *Tab) FitsWidth() bool {
	tb.T.Helper()
	return Eval[bool](tb, `document.documentElement.scrollWidth <= window.innerWidth`)
}

// JSString is s as a JavaScript string literal.
func JSString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Messages is what the tab's console received.
func (tb *Tab) Messages() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	out := make([]string, len(tb.console))
	for i, m := range tb.console {
		out[i] = m.Source + " " + m.String()
	}
	return out
}

// ConsoleErrors are the script errors, exceptions and security messages
// (a resource the CSP refused) in the console. The browser's notes of an
// error answer (source network) are left out: pages read those.
func (tb *Tab) ConsoleErrors() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
	for _, m := range tb.console {
		if (m.Type == chromedp.ConsoleError || m.IsException() || m.Source == "security") && m.Source != "network" {
			out = append(out, m.Source+" "+m.String())
		}
	}
	return out
}

// Screenshot saves the whole page as <Dir>/<Name>-<suffix>.png, when the
// tab has a directory.
func (tb *Tab) Screenshot(suffix string) {
	tb.T.Helper()
	if tb.Dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(tb.Ctx, PageTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.T.Errorf("%s: screenshot: %v", tb.Name, err)
		return
	}
	p := filepath.Join(tb.Dir, tb.Name+"-"+suffix+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.T.Errorf("save screenshot: %v", err)
	}
}

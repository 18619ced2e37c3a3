package console_test

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/console"
	"github.com/checkd/checkd/internal/dashboard"
	"github.com/checkd/checkd/internal/link"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/testenv"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
)

const (
	user     = "admin"
	password = "dash-pass-0123456789"
	apiKey   = "api-key-0123456789abc"
)

// fakeQueues answers the queue panel.
type fakeQueues struct{ err error }

func (f fakeQueues) Queues() ([]string, error) { return []string{tasks.QueueDefault}, f.err }

func (f fakeQueues) GetQueueInfo(q string) (*asynq.QueueInfo, error) {
	return &asynq.QueueInfo{Queue: q, Size: 12, Pending: 7, Active: 5, Latency: 1500 * time.Millisecond}, nil
}

type env struct {
	t     *testing.T
	te    *testenv.Env
	srv   *httptest.Server
	enq   *testenv.Enqueuer
	links *link.Signer
	co    store.Company
	// console is the console under test.
	console *console.Console
}

type options struct {
	readOnly  bool
	noQueue   bool
	queuesErr error
	// background, when set, is Config.Background; it gets the cancel of
	// the request that started the work (the deadline it may outlast).
	background func(endRequest context.CancelFunc, fn func(context.Context))
}

func newEnv(t *testing.T, o options) *env {
	t.Helper()
	te := testenv.New(t, testenv.Options{})
	e := &env{t: t, te: te, enq: &testenv.Enqueuer{}}
	login, err := dashboard.NewLogin(dashboard.Options{User: user, Password: password, APIKeys: []string{apiKey}})
	if err != nil {
		t.Fatal(err)
	}
	if e.links, err = link.NewSigner(link.DeriveKey([]byte("master-key-for-the-tests-0123456")), time.Hour, te.Clock); err != nil {
		t.Fatal(err)
	}
	cfg := console.Config{Store: te.Store, Login: login, Writable: !o.readOnly, Secret: console.DeriveKey([]byte("another master key")),
		Queues: fakeQueues{err: o.queuesErr}, Links: e.links, PublicURL: "https://checkd.example.com", Clock: te.Clock,
		Datasources: func() []string { return []string{"sandbox"} }, DatasourceRules: defaultRules, Logger: testenv.QuietLogger()}
	if !o.noQueue {
		if cfg.OnDemand, err = scheduler.NewOnDemand(te.Store, e.enq, te.Clock); err != nil {
			t.Fatal(err)
		}
	}
	var endRequest context.CancelFunc // the request being served's; the tests send one at a time
	if o.background != nil {
		cfg.Background = func(fn func(context.Context)) { o.background(endRequest, fn) }
	}
	c, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.console = c
	mux := http.NewServeMux()
	mux.Handle(console.RootPath+"/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		endRequest = cancel
		c.ServeHTTP(w, r.WithContext(ctx)) // as the daemon mounts it
	}))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.co = te.Company(t, "Acme Manufacturing")
	return e
}

// defaultRules are checkd's default health rules and caps.
func defaultRules(ds string) (store.HealthRules, int) {
	d := configs.Default()
	return d.HealthRules(ds), d.MaxConcurrent(ds)
}

// browser is a logged-in browser: Basic auth on every request, cookies
// kept, redirects not followed (the tests look at them).
type browser struct {
	e      *env
	client *http.Client
	auth   func(*http.Request)
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		auth: func(r *http.Request) { r.SetBasicAuth(user, password) }}
}

type page struct {
	code int
	body string
	hdr  http.Header
}

func (b *browser) do(method, path string, form url.Values, hdr ...string) page {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.auth != nil {
		b.auth(req)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return page{code: resp.StatusCode, body: string(raw), hdr: resp.Header}
}

func (b *browser) get(path string) page { b.e.t.Helper(); return b.do("GET", path, nil) }

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf opens path and returns its forms' token.
func (b *browser) csrf(path string) string {
	b.e.t.Helper()
	p := b.get(path)
	m := csrfRe.FindStringSubmatch(p.body)
	if p.code != http.StatusOK || m == nil {
		b.e.t.Fatalf("GET %s: %d, no CSRF token\n%s", path, p.code, p.body)
	}
	return html.UnescapeString(m[1])
}

// post sends a form from page from (whose token it carries) to path.
func (b *browser) post(from, path string, fields ...string) page {
	b.e.t.Helper()
	form := url.Values{"csrf": {b.csrf(from)}}
	for i := 0; i+1 < len(fields); i += 2 {
		form.Set(fields[i], fields[i+1])
	}
	return b.do("POST", path, form)
}

// text is the page's text without tags, spaces collapsed.
func (p page) text() string {
	s := regexp.MustCompile(`(?s)<[^>]*>`).ReplaceAllString(p.body, " ")
	return strings.Join(strings.Fields(html.UnescapeString(s)), " ")
}

func (p page) has(t *testing.T, what string, want ...string) {
	t.Helper()
	txt := p.text()
	for _, w := range want {
		if !strings.Contains(txt, w) {
			t.Errorf("%s: the page does not say %q:\n%.3000s", what, w, txt)
		}
	}
}

func (e *env) conn(username string) store.Connection {
	return e.te.Connection(e.t, store.NewConnection{CompanyID: e.co.ID, Datasource: "sandbox", Name: "Electricity " + username,
		Credentials: checks.Credentials{Username: username, Password: "pw"}})
}

// record records a check result on the connection, as a worker does.
func (e *env) record(id string, res checks.Result) {
	e.t.Helper()
	ctx := context.Background()
	tg, err := e.te.Store.LoadCheck(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.te.Clock.Now()
	if _, err := e.te.Store.RecordCheck(ctx, tg, store.CheckResult{Attempt: "a-" + now.String(), StartedAt: now, FinishedAt: now.Add(time.Second), Result: res}); err != nil {
		e.t.Fatal(err)
	}
	e.te.Clock.Advance(time.Minute)
}

func connected(accts ...string) checks.Result {
	r := checks.Result{Status: checks.ConnConnected}
	for _, a := range accts {
		r.Accounts = append(r.Accounts, checks.AccountResult{Number: a})
	}
	return r
}

func (e *env) history(id string) []store.HistoryEntry {
	e.t.Helper()
	h, err := e.te.Store.History(context.Background(), id, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	t.Parallel()
	te := testenv.New(t, testenv.Options{})
	login, err := dashboard.NewLogin(dashboard.Options{User: user, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	full := console.Config{Store: te.Store, Login: login, Secret: console.DeriveKey([]byte("k"))}
	for name, mod := range map[string]func(*console.Config){
		"no store":      func(c *console.Config) { c.Store = nil },
		"no login":      func(c *console.Config) { c.Login = nil },
		"short secret":  func(c *console.Config) { c.Secret = []byte("short") },
		"bad PublicURL": func(c *console.Config) { c.PublicURL = "ftp:/x" },
	} {
		cfg := full
		mod(&cfg)
		if _, err := console.New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	if _, err := console.New(full); err != nil {
		t.Errorf("complete config: %v", err)
	}
}

// TestLogin: every page and action needs the dashboard's login.
func TestLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	cn := e.conn("user_good")
	paths := []string{"/console/", "/console/companies", "/console/companies/" + e.co.ID, "/console/connections/" + cn.ID,
		"/console/static/console.css", "/console/nowhere", "/console/find?id=" + cn.ID}
	cases := []struct {
		name string
		auth func(*http.Request)
		want int
	}{
		{"no login", nil, http.StatusUnauthorized},
		{"wrong password", func(r *http.Request) { r.SetBasicAuth(user, "wrong") }, http.StatusUnauthorized},
		{"wrong user", func(r *http.Request) { r.SetBasicAuth("root", password) }, http.StatusUnauthorized},
		{"wrong key", func(r *http.Request) { r.Header.Set("X-API-Key", "nope") }, http.StatusUnauthorized},
		{"dashboard password", func(r *http.Request) { r.SetBasicAuth(user, password) }, 0},
		{"API key as password", func(r *http.Request) { r.SetBasicAuth(user, apiKey) }, 0},
		{"API key header", func(r *http.Request) { r.Header.Set("X-API-Key", apiKey) }, 0},
	}
	for _, tc := range cases {
		b := e.browser()
		b.auth = tc.auth
		for _, p := range paths {
			got := b.get(p)
			if tc.want == http.StatusUnauthorized {
				if got.code != tc.want || !strings.Contains(got.hdr.Get("WWW-Authenticate"), `Basic realm="`+dashboard.Realm+`"`) {
					t.Errorf("%s: GET %s = %d %q, want 401 with the dashboard's challenge", tc.name, p, got.code, got.hdr.Get("WWW-Authenticate"))
				}
				if strings.Contains(got.body, cn.ID) && !strings.HasSuffix(p, cn.ID) {
					t.Errorf("%s: GET %s shows data before the login", tc.name, p)
				}
				continue
			}
			if got.code == http.StatusUnauthorized {
				t.Errorf("%s: GET %s = 401", tc.name, p)
			}
		}
		if tc.want == http.StatusUnauthorized {
			got := b.do("POST", "/console/connections/"+cn.ID+"/deactivate", url.Values{"csrf": {"x"}})
			if got.code != http.StatusUnauthorized {
				t.Errorf("%s: POST deactivate = %d, want 401", tc.name, got.code)
			}
		}
	}
	if c := e.te.Get(t, cn.ID); !c.IsActive {
		t.Error("a refused request deactivated the connection")
	}
}

// TestSecurityHeaders: a strict CSP, no framing, and pages with no inline
// script, style or event handler the CSP would block.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	cn := e.conn("user_good")
	e.record(cn.ID, connected("111"))
	b := e.browser()
	for _, p := range []string{"/console/", "/console/companies", "/console/companies/" + e.co.ID, "/console/companies/" + e.co.ID + "/deactivate",
		"/console/connections/" + cn.ID, "/console/nowhere"} {
		got := b.get(p)
		csp := got.hdr.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", p, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP %q allows unsafe sources", p, csp)
		}
		if got.hdr.Get("X-Frame-Options") != "DENY" || got.hdr.Get("X-Content-Type-Options") != "nosniff" || got.hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: headers %v", p, got.hdr)
		}
		for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(got.body, -1) {
			if !strings.Contains(tag, ` src="`) {
				t.Errorf("GET %s: inline script %q, which the CSP blocks", p, tag)
			}
		}
		if m := regexp.MustCompile(`\sstyle=|\son[a-z]+=|<style`).FindString(got.body); m != "" {
			t.Errorf("GET %s: inline style or handler %q, which the CSP blocks", p, m)
		}
	}
	for _, ck := range b.client.Jar.Cookies(mustURL(t, e.srv.URL+"/console/")) {
		if ck.Name == "" {
			t.Error("empty cookie")
		}
	}
	got := b.get("/console/")
	for _, c := range got.hdr.Values("Set-Cookie") {
		if !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Strict") || !strings.Contains(c, "Path=/console/") {
			t.Errorf("cookie %q: want HttpOnly, SameSite=Strict, Path=/console/", c)
		}
	}
	css := b.get("/console/static/console.css")
	if css.code != http.StatusOK || !strings.HasPrefix(css.hdr.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %s", css.code, css.hdr.Get("Content-Type"))
	}
	if js := b.get("/console/static/console.js"); js.code != http.StatusOK || !strings.Contains(js.hdr.Get("Content-Type"), "javascript") {
		t.Errorf("script: %d %s", js.code, js.hdr.Get("Content-Type"))
	}
	if nf := b.get("/console/static/layout.html"); nf.code != http.StatusNotFound {
		t.Errorf("a template is served as a static file: %d", nf.code)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

var barRe = regexp.MustCompile(`<rect class="bar( busiest)?"[^>]*data-count="(\d+)"`)

func TestOverview(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	cs := e.te.Connections(t, e.co.ID, 30)
	e.record(cs[0].ID, connected("1"))
	e.record(cs[1].ID, checks.Result{Status: checks.ConnPasswordIncorrect})
	e.record(cs[2].ID, checks.Result{Status: checks.ConnWebsiteDown, Detail: "503"})
	off := false
	if _, err := e.te.Store.UpdateDetails(context.Background(), cs[3].ID, store.DetailsPatch{IsActive: &off}); err != nil {
		t.Fatal(err)
	}
	p := e.browser().get("/console/")
	if p.code != http.StatusOK {
		t.Fatalf("overview: %d\n%s", p.code, p.body)
	}
	counts, err := e.te.Store.StatusCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for st, n := range counts {
		if !strings.Contains(p.body, fmt.Sprintf(`id="n-%s" data-count="%d"`, st, n)) {
			t.Errorf("overview does not show %d %s", n, st)
		}
	}
	p.has(t, "overview", "30 connections across all companies", "Healthy 27", "Provider errors 1", "Need the customer 1", "Paused by an admin 1")
	bars := barRe.FindAllStringSubmatch(p.body, -1)
	if len(bars) != 7*24 {
		t.Fatalf("forecast: %d bars, want 168", len(bars))
	}
	var total, most int
	busiest := 0
	for _, b := range bars {
		var n int
		fmt.Sscan(b[2], &n)
		total += n
		most = max(most, n)
		if b[1] != "" {
			busiest++
			if n < most {
				t.Errorf("the busiest bar has %d checks, another %d", n, most)
			}
		}
	}
	forecast, err := e.te.Store.DueForecast(context.Background(), []time.Time{e.te.Clock.Now(), e.te.Clock.Now().Truncate(time.Hour).Add(7 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if busiest != 1 || int64(total) != forecast[0].Total() || total == 0 {
		t.Errorf("forecast: %d checks in %d busiest bars; want %d in one", total, busiest, forecast[0].Total())
	}
	p.has(t, "overview", "Busiest hour:", fmt.Sprintf("%d checks in the week", total))
	p.has(t, "overview queues", "default 12 7 5", "1.5s", "critical 0")
	p.has(t, "overview datasources", "Datasources", "sandbox HEALTHY closed 0 in")

	// Panels that cannot be read say so; the rest of the page shows.
	broken := newEnv(t, options{queuesErr: errors.New("redis is down")})
	bp := broken.browser().get("/console/")
	if bp.code != http.StatusOK {
		t.Fatalf("overview with a broken queue panel: %d", bp.code)
	}
	bp.has(t, "broken queues", "Could not list the task queues: redis is down", "Load forecast", "0 connections across all companies")

	empty := newEnv(t, options{}).browser().get("/console/")
	empty.has(t, "empty store", "0 connections", "None yet", "No check comes due in the next 7 days")
}

func TestCompanies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	b := e.browser()
	p := b.get("/console/companies")
	p.has(t, "companies", "Acme Manufacturing", e.co.ID, "Active")
	other := e.te.Company(t, "Globex Retail")
	cs := e.te.Connections(t, e.co.ID, 3)
	e.record(cs[0].ID, checks.Result{Status: checks.ConnMFATokenExpired})
	if _, err := e.te.Store.SetCompanyActive(context.Background(), other.ID, false); err != nil {
		t.Fatal(err)
	}
	p = b.get("/console/companies")
	p.has(t, "companies", "Acme Manufacturing "+e.co.ID+" Active 3 2 0 1 0", "Globex Retail "+other.ID+" Inactive 0 0 0 0 0")
}

func TestCompanyPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	b := e.browser()
	empty := b.get("/console/companies/" + e.co.ID)
	empty.has(t, "no connections", "This company has no connections yet")
	cs := e.te.Connections(t, e.co.ID, 120)
	e.record(cs[7].ID, checks.Result{Status: checks.ConnWebsiteDown, Detail: "503 from the portal"})

	p := b.get("/console/companies/" + e.co.ID)
	if p.code != http.StatusOK {
		t.Fatalf("company: %d", p.code)
	}
	p.has(t, "company", "All 120", "Pending 119", "Website Down 1", "Deactivate company")
	if n := strings.Count(p.body, `href="/console/connections/cn_`); n != 50 {
		t.Errorf("first page: %d connections, want 50", n)
	}
	// Every connection once over the pages, by the store's cursor.
	seen := map[string]bool{}
	next := "/console/companies/" + e.co.ID
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("more pages than 120 connections need")
		}
		pg := b.get(next)
		for _, m := range regexp.MustCompile(`href="/console/connections/(cn_[0-9a-z]+)"`).FindAllStringSubmatch(pg.body, -1) {
			if seen[m[1]] {
				t.Errorf("%s listed twice", m[1])
			}
			seen[m[1]] = true
		}
		next = ""
		if m := regexp.MustCompile(`id="next-page" href="([^"]+)"`).FindStringSubmatch(pg.body); m != nil {
			next = html.UnescapeString(m[1])
		}
	}
	if len(seen) != 120 {
		t.Errorf("pages listed %d connections, want 120", len(seen))
	}
	f := b.get("/console/companies/" + e.co.ID + "?status=WEBSITE_DOWN")
	f.has(t, "filtered", "Website Down 1", "503 from the portal")
	if n := strings.Count(f.body, `href="/console/connections/cn_`); n != 1 || !strings.Contains(f.body, cs[7].ID) {
		t.Errorf("filter WEBSITE_DOWN lists %d connections", n)
	}
	none := b.get("/console/companies/" + e.co.ID + "?status=DEACTIVATED")
	none.has(t, "empty filter", "No connection is Deactivated", "Show all connections")

	for _, tc := range []struct {
		path string
		code int
		says string
	}{
		{"/console/companies/" + e.co.ID + "?status=NOPE", http.StatusBadRequest, "Unknown status filter"},
		{"/console/companies/" + e.co.ID + "?cursor=garbage", http.StatusBadRequest, "start again from the first page"},
		{"/console/companies/co_0000000000000000", http.StatusNotFound, "Company not found"},
		{"/console/companies/" + e.co.ID + "/explode", http.StatusNotFound, "Page not found"},
	} {
		got := b.get(tc.path)
		if got.code != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.path, got.code, tc.code)
		}
		if tc.says != "" {
			got.has(t, tc.path, tc.says)
		}
	}
}

func TestConnectionPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	cn := e.conn("user_good")
	e.record(cn.ID, connected("1001", "1002"))
	e.record(cn.ID, checks.Result{Status: checks.ConnWebsiteDown, Detail: "the portal answered 503"})
	b := e.browser()
	p := b.get("/console/connections/" + cn.ID)
	if p.code != http.StatusOK {
		t.Fatalf("connection: %d", p.code)
	}
	p.has(t, "connection", "Electricity user_good", "Website Down", "WEBSITE_DOWN", "INSTITUTION_CURRENTLY_UNAVAILABLE",
		"the portal answered 503", "Can refresh yes", "Can reconnect yes", "Checked yes, on schedule", "Failures in a row 1",
		"1001", "1002", "Workflow Not Accessible", "Check now", "Deactivate", "Create credential-update link",
		"Connection : CONNECTED → WEBSITE_DOWN", "Account 1001 : DETECTED → WORKFLOW_NOT_ACCESSIBLE", "Connection : PENDING → CONNECTED",
		"Connection : PENDING created by system", "Acme Manufacturing", "Last check's outcome WEBSITE_DOWN the portal answered 503", "Sites —")
	if strings.Contains(p.text(), "check by check") { // a check's actor is its cause: said once
		t.Error("the history says a check was made by check")
	}
	if strings.Contains(p.body, "pw") && strings.Contains(p.text(), `"pw"`) {
		t.Error("the page shows the credentials")
	}
	for _, tc := range []struct{ path, says string }{
		{"/console/connections/cn_0000000000000000", "Connection not found"},
		{"/console/connections/nope", "Connection not found"},
	} {
		got := b.get(tc.path)
		if got.code != http.StatusNotFound {
			t.Errorf("GET %s = %d", tc.path, got.code)
		}
		got.has(t, tc.path, tc.says)
	}
}

func TestFind(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	cn := e.conn("user_good")
	b := e.browser()
	for _, tc := range []struct {
		id       string
		code     int
		location string
	}{
		{cn.ID, http.StatusSeeOther, "/console/connections/" + cn.ID},
		{" " + e.co.ID + " ", http.StatusSeeOther, "/console/companies/" + e.co.ID},
		{"cn_0000000000000000", http.StatusNotFound, ""},
		{"co_x", http.StatusNotFound, ""},
		{"hello", http.StatusNotFound, ""},
		{"", http.StatusBadRequest, ""},
	} {
		got := b.get("/console/find?id=" + url.QueryEscape(tc.id))
		if got.code != tc.code || got.hdr.Get("Location") != tc.location {
			t.Errorf("find %q = %d %q, want %d %q", tc.id, got.code, got.hdr.Get("Location"), tc.code, tc.location)
		}
	}
}

package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/dashboard"
	"github.com/checkd/checkd/store"
)

//go:embed assets
var assets embed.FS

// pageNames are the page templates; each is parsed with the layout.
var pageNames = []string{"overview", "companies", "company", "confirm", "connection", "error"}

// staticFiles are the files served under /console/static/.
var staticFiles = []string{"console.css", "console.js"}

type pages struct {
	byName map[string]*template.Template
}

func parsePages() (*pages, error) {
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// view is what every page template gets: the layout's fields and the
// page's own Data.
type view struct {
	Title    string
	Nav      string // the menu entry to mark current
	Root     string
	User     string
	Writable bool
	CSRF     string
	Notice   *notice
	// Problem is a refused action's reason, shown above the page.
	Problem string
	Now     time.Time
	// Monitoring is the asynqmon dashboard's path.
	Monitoring string
	Data       any
}

// request is one request the console serves, after the login.
type request struct {
	w    http.ResponseWriter
	r    *http.Request
	user string
	// problem, when set, is shown above the page a refused action renders.
	problem string
}

// serve adapts a page or action to net/http.
func (c *Console) serve(h func(*request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h(&request{w: w, r: r, user: userOf(r.Context())})
	}
}

// action guards a state-changing request: a writable console, the same
// origin and the session's CSRF token, in that order.
func (c *Console) action(h func(*request)) func(*request) {
	return func(q *request) {
		if !c.cfg.Writable {
			q.w.Header().Set("Allow", "GET, HEAD")
			c.errorPage(q, http.StatusMethodNotAllowed, "The console is read-only",
				"Changes are turned off: the operator can allow them with dashboard.writable: true in the configuration.")
			return
		}
		q.r.Body = http.MaxBytesReader(q.w, q.r.Body, maxFormBytes)
		if !dashboard.SameOrigin(q.r) || !c.csrfOK(q.r) {
			c.errorPage(q, http.StatusForbidden, "This form has expired",
				"The change was not made: the form did not come from this console in this browser session. Go back, reload the page and try again.")
			return
		}
		h(q)
	}
}

// maxFormBytes bounds an action's form.
const maxFormBytes = 16 << 10

// render writes page name with data, or an error page when it fails.
func (c *Console) render(q *request, status int, name, title, nav string, data any) {
	v := view{Title: title, Nav: nav, Root: RootPath, User: q.user, Writable: c.cfg.Writable, Problem: q.problem,
		Now: c.now(), Monitoring: dashboard.RootPath + "/", Data: data}
	if q.user != "" { // logged in: a session for the forms, and the notice an action left
		v.CSRF, v.Notice = c.csrfToken(c.session(q.w, q.r), q.user), c.takeNotice(q.w, q.r)
	}
	var b bytes.Buffer
	if err := c.pages.byName[name].ExecuteTemplate(&b, "layout", v); err != nil {
		c.log.WithError(err).WithField("page", name).Error("console: render page")
		http.Error(q.w, "the console could not draw this page; the error is in checkd's log", http.StatusInternalServerError)
		return
	}
	h := q.w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	q.w.WriteHeader(status)
	_, _ = q.w.Write(b.Bytes())
}

// dbDownHeading heads the page of a request Redis did not answer.
const dbDownHeading = "checkd's database is not answering"

// errorPage answers status with a page saying what happened and what to
// do.
type errorData struct {
	Heading, Message string
	Status           int
}

func (c *Console) errorPage(q *request, status int, heading, msg string) {
	c.render(q, status, "error", heading, "", errorData{Heading: heading, Message: msg, Status: status})
}

// plainError is errorPage before the login: no session, no user.
func (c *Console) plainError(w http.ResponseWriter, r *http.Request, status int, heading, msg string) {
	c.errorPage(&request{w: w, r: r}, status, heading, msg)
}

// serverError logs err and answers a 500 page, or a 503 page saying to
// retry when Redis is unreachable or slow (as the API's 503), which does
// not show the error (it may name the Redis address).
func (c *Console) serverError(q *request, err error, what string) {
	c.log.WithError(err).WithField("path", q.r.URL.Path).Error("console: " + what)
	if api.Unreachable(err) {
		q.w.Header().Set("Retry-After", "5")
		c.errorPage(q, http.StatusServiceUnavailable, dbDownHeading,
			"checkd could not "+what+": its Redis is slow or unreachable. Reload in a few seconds (GET /readyz says when it is back).")
		return
	}
	c.errorPage(q, http.StatusInternalServerError, "Something went wrong",
		"checkd could not "+what+": "+err.Error()+". Try again in a moment; if it persists, checkd's log has the details.")
}

func (c *Console) notFound(q *request) {
	c.errorPage(q, http.StatusNotFound, "Page not found",
		fmt.Sprintf("There is no console page at %s. Start from the overview or the companies.", q.r.URL.Path))
}

func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if !slices.Contains(staticFiles, name) {
		c.plainError(w, r, http.StatusNotFound, "Not found", "No such file.")
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	sub, _ := fs.Sub(assets, "assets")
	http.ServeFileFS(w, r, sub, name)
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"time":  fmtTime,
	"timep": func(t *time.Time) string { return fmtTimeP(t) },
	"rel":   relTime,
	"relp": func(now time.Time, t *time.Time) string {
		if t == nil {
			return ""
		}
		return relTime(now, *t)
	},
	"num":      num,
	"add":      func(a, b int) int { return a + b },
	"sub":      func(a, b int) int { return a - b },
	"connInfo": func(s checks.ConnectionStatus) checks.Info { in, _ := s.Info(); return in },
	"acctInfo": func(s checks.AccountStatus) checks.Info { in, _ := s.Info(); return in },
	"catClass": func(c checks.Category) string { return "cat-" + strings.ReplaceAll(string(c), "_", "-") },
	// healthClass colours a datasource's health as the status categories.
	"healthClass": func(h string) string {
		switch h {
		case store.HealthHealthy:
			return "cat-healthy"
		case store.HealthDegraded:
			return "cat-provider-error"
		}
		return "cat-credential"
	},
	"pct": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return strconv.FormatFloat(*f*100, 'f', 0, 64) + "%"
	},
	"yesno": func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	},
}

// fmtTime is a time as the console shows it: UTC, to the minute.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func fmtTimeP(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return fmtTime(*t)
}

// relTime says how long before or after now t is, roughly: "3 h ago",
// "in 2 d".
func relTime(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	future := d > 0
	if !future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		return "now"
	case d < time.Hour:
		s = strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		s = strconv.Itoa(int(d/time.Hour)) + " h"
	default:
		s = strconv.Itoa(int(d/(24*time.Hour))) + " d"
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// num writes an integer with thousands separators.
func num(v any) string {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	default:
		return fmt.Sprint(v)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Package console is checkd's admin console: web pages where an admin sees
// the health of collection at a glance and acts on companies and
// connections. The api role serves it at RootPath + "/" (the daemon mounts
// it next to the asynqmon dashboard), behind the dashboard's login
// (dashboard.Login: Basic auth with the dashboard password or an API key).
//
// Pages (GET):
//
//	/console/                        overview: connections by status and category (the store's
//	                                 counters), queues, the checks due now, and the load forecast:
//	                                 checks due per hour over the next 7 days (DueForecast), an SVG
//	                                 drawn here with the busiest hour named; and the webhook
//	                                 endpoints disabled or failing: URL, since when, why, and
//	                                 the checkctl commands that recover them
//	/console/companies               every company, its active flag and its connections by category
//	/console/companies/{id}          one company: its connections filtered by status and site
//	                                 (?siteId=), paged with the API's cursor
//	/console/companies/{id}/deactivate|reactivate
//	                                 the confirmation step, naming how many connections it changes
//	/console/connections/{id}        one connection: every status field and what it means, its
//	                                 accounts, its history, and the actions
//	/console/find?id=                a company or connection by ID
//
// Actions (POST, only when Config.Writable, each with the session's CSRF
// token): a company's deactivate and reactivate; a connection's refresh,
// deactivate, reactivate, link (a credential-update link, shown once to
// copy), accounts (confirm or reject one account), investigation (flag it
// under investigation with a note), investigation/clear (and enqueue its
// check) and account-flag (OLD_ACCOUNT, DUPLICATE of another account, or
// undo). Each calls the store
// (and scheduler.OnDemand for checks) exactly as the REST API's route does,
// under store.WithOrigin: history and events record the cause
// "console:<action>" and history the logged-in user. A refused action
// answers its page with the reason and the status the API would (409 for a
// refresh the status forbids, 400 for a bad account decision).
//
// Login: the dashboard's (its user and password, or a configured API key),
// or a runtime API key (POST /v1/keys) with the admin scope, as Basic auth
// with the key's name as the user or in the X-API-Key header; the key is
// read from the store on every request, as the API reads it, so a deleted
// key is refused at once. A key without the admin scope is refused (403)
// with a page that says so. The actor recorded is the key's name, as the
// API records it.
//
// Security: every page needs the login (401 with the Basic challenge
// otherwise); a change needs a writable console (405 otherwise, like the
// dashboard), the same origin (Fetch metadata, Origin) and a token bound to
// the browser's session cookie and the user (403 otherwise). Cookies are
// HttpOnly and SameSite=Strict. The Content-Security-Policy allows only the
// console's own stylesheet and script (embedded, no CDN, no inline script
// or style); pages are html/template, rendered on the server, and usable
// without JavaScript (the script only copies a link).
package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/dashboard"
	"github.com/checkd/checkd/internal/link"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
)

// RootPath is where checkd mounts the console: the handler at RootPath +
// "/".
const RootPath = "/console"

// Channel is the origin channel of the console's writes: their causes are
// "console:<action>" (store.WithOrigin).
const Channel = "console"

// MinSecretLen is the shortest Config.Secret.
const MinSecretLen = 32

// Config configures the console. New refuses a missing required field.
type Config struct {
	// Store is checkd's store. Required.
	Store *store.Store
	// Login authenticates every request: the dashboard's. Required.
	Login *dashboard.Login
	// Writable allows the actions (dashboard.writable); false: the console
	// only shows.
	Writable bool
	// Secret keys the session's CSRF tokens and the notices shown after an
	// action, at least MinSecretLen bytes, the same in every process that
	// serves the console (DeriveKey of the encryption key). Required.
	Secret []byte
	// Queues reads the task queues: an *asynq.Inspector. Optional: without
	// it the overview says the queues cannot be read here.
	Queues QueueReader
	// OnDemand enqueues the check of a refresh, and of a reactivation at
	// once (the scheduler's next tick checks it otherwise). Optional:
	// without it refresh is unavailable.
	OnDemand *scheduler.OnDemand
	// DatasourceRules gives a datasource's health rules and concurrency cap
	// (api.Config.DatasourceRules), for the overview's datasource health.
	// Optional: without it the overview has no datasource panel.
	DatasourceRules func(ds string) (store.HealthRules, int)
	// Datasources lists the datasources checkd checks (the checker
	// registry's Names); the panel adds any seen in checks. Optional.
	Datasources func() []string
	// Links signs credential-update links. Optional: without it the link
	// action is unavailable.
	Links *link.Signer
	// PublicURL is the base of the links handed out (api.Config.PublicURL);
	// "": the URL the console was opened at.
	PublicURL string
	// Background runs work that may outlast its request (a company's
	// conversion) under a context its owner cancels on stop: the API
	// server's RunJob. nil: a goroutine of its own, bounded by
	// actionTimeout.
	Background func(func(context.Context))
	// Clock is the time pages show and the forecast starts at. nil: the
	// real clock.
	Clock clock.Clock
	// Logger receives the errors a page could not show in full. nil:
	// logrus's standard logger.
	Logger logrus.FieldLogger
}

// QueueReader reads asynq's queues; *asynq.Inspector implements it.
type QueueReader interface {
	// Queues lists the queues that exist.
	Queues() ([]string, error)
	// GetQueueInfo reads one existing queue.
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

// DeriveKey derives the console's secret from a master secret (the
// credential encryption key), so one configured secret serves it without
// sharing a key with another use.
func DeriveKey(master []byte) []byte { return store.DeriveKey(master, "checkd console v1") }

// Console serves the console's pages and actions.
type Console struct {
	cfg   Config
	log   logrus.FieldLogger
	mux   *http.ServeMux
	pages *pages
}

// New returns the console, or an error naming the missing or invalid
// field.
func New(cfg Config) (*Console, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("console: Config.Store is required")
	case cfg.Login == nil:
		return nil, errors.New("console: Config.Login is required: the console is never served without the dashboard's login")
	case len(cfg.Secret) < MinSecretLen:
		return nil, fmt.Errorf("console: Config.Secret has %d bytes; give at least %d (console.DeriveKey of the encryption key)", len(cfg.Secret), MinSecretLen)
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("console: PublicURL %q is not a base URL such as https://checkd.example.com", cfg.PublicURL)
		}
		cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	if cfg.Background == nil {
		cfg.Background = func(fn func(context.Context)) {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), actionTimeout)
				defer cancel()
				fn(ctx)
			}()
		}
	}
	p, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c := &Console{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), pages: p}
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	get := func(path string, h func(*request)) { c.mux.HandleFunc("GET "+RootPath+path, c.serve(h)) }
	post := func(path string, h func(*request)) { c.mux.HandleFunc("POST "+RootPath+path, c.serve(c.action(h))) }
	get("/{$}", c.overview)
	get("/companies", c.companies)
	get("/companies/{id}", c.company)
	get("/companies/{id}/{action}", c.confirmCompany)
	post("/companies/{id}/{action}", c.setCompany)
	get("/connections/{id}", c.connection)
	post("/connections/{id}/refresh", c.refresh)
	post("/connections/{id}/deactivate", c.deactivate)
	post("/connections/{id}/reactivate", c.reactivate)
	post("/connections/{id}/link", c.createLink)
	post("/connections/{id}/accounts", c.decideAccount)
	post("/connections/{id}/investigation", c.investigate)
	post("/connections/{id}/investigation/clear", c.clearInvestigation)
	post("/connections/{id}/account-flag", c.flagAccount)
	get("/find", c.find)
	c.mux.HandleFunc("GET "+RootPath+"/static/{file}", c.static)
	c.mux.HandleFunc(RootPath+"/", c.serve(c.notFound))
}

// ServeHTTP authenticates every request, sets the security headers and
// serves the page or action.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secure(w.Header())
	user, ok := c.cfg.Login.Check(r)
	if !ok {
		var refused *loginError
		if user, refused = c.runtimeKeyUser(r); refused != nil {
			if refused.status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "5")
			}
			c.plainError(w, r, refused.status, refused.heading, refused.message)
			return
		}
		ok = user != ""
	}
	if !ok {
		c.cfg.Login.Challenge(w)
		c.plainError(w, r, http.StatusUnauthorized, "Log in required",
			"Log in with the dashboard's user and password (the dashboard password or a configured API key), "+
				"or with a runtime API key that has the admin scope: the key's name as the user and the key as the password.")
		return
	}
	c.mux.ServeHTTP(w, r.WithContext(withUser(r.Context(), user)))
}

// AnswerUnavailable answers a request the API server gave up waiting for
// (api.UnavailableAnswerer: a page stuck on a hanging Redis) with an HTML
// page rather than the API's JSON 503. It reads nothing from Redis.
func (c *Console) AnswerUnavailable(w http.ResponseWriter, r *http.Request, bound time.Duration) {
	secure(w.Header())
	c.plainError(w, r, http.StatusServiceUnavailable, dbDownHeading,
		fmt.Sprintf("This page did not load within %s: checkd's Redis is slow or unreachable. Reload in a few seconds (GET /readyz says when it is back). "+
			"If you had sent a change, it may or may not have been made: look at the page again before repeating it.", bound))
}

// secure sets the console's security headers.
func secure(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

// contentSecurityPolicy allows the console's own stylesheet, script and
// forms, and nothing else: no inline script or style, no frames.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// now is the console's time, to the second.
func (c *Console) now() time.Time { return c.cfg.Clock.Now().UTC().Truncate(time.Second) }

// Package api is checkd's HTTP surface: the REST API under /v1 (companies,
// connections, a connection's details and history, the status vocabulary,
// admin actions, credential-update links, queue controls), GET /healthz, the
// credential-update page, and Mount for the daemon's own handlers
// (asynqmon, metrics, readiness). Routing uses net/http's patterns only.
//
// Routes:
//
//	GET  /healthz                                   {"status":"ok"}, no key needed
//	GET  /v1/openapi.json                           the OpenAPI 3.1 document of all this (openapi.json), no key needed
//	POST /v1/company                                {"name","autoTrack"} → 201 company
//	GET  /v1/company                                {"companies":[...]}
//	GET  /v1/company/{companyId}                    company
//	POST /v1/connection/company/{companyId}         {"datasource","name","credentials":{"username","password","extra"}} → 201 connection (PENDING)
//	GET  /v1/connection/company/{companyId}         ?status=A,B&cursor=&limit= → {"connections":[...],"nextCursor"}
//	GET  /v1/connection/{connectionId}/details      connection with accounts, status fields and derived fields
//	GET  /v1/connection/{connectionId}/history      ?limit= → {"history":[...]}, newest first
//	GET  /v1/statuses                               the status vocabulary and datasources
//
// Admin and operator routes (every admin write is one of the store's atomic
// writes; "check" below means a check enqueued at once on the critical
// queue, unless one is already queued or running):
//
//	PATCH /v1/company/{companyId}                   {"isActive"} → {"company","connectionsUpdated"}, or 202 {"company","inProgress"}
//	                                                when the conversion outlasts the request (it goes on in the background)
//	PATCH /v1/connection/{connectionId}/details     {"isActive","name","startDate","occupancyMultiplier"} → connection + "checkEnqueued"
//	                                                (isActive false: DEACTIVATED; true: restored, and checked when checkable)
//	PATCH /v1/connection/{connectionId}/status      {"accounts":[{"accountId","trackingStatus":"ENABLED"|"DISABLED"}]} → connection,
//	                                                or {"accountId","status":"OLD_ACCOUNT"|"DUPLICATE"|null,"duplicateOf"}: an account flag
//	POST  /v1/connection/{connectionId}/investigation {"note"} → connection (UNDER_INVESTIGATION, an operator's flag)
//	DELETE /v1/connection/{connectionId}/investigation → connection + "checkEnqueued" (back to the last check's outcome)
//	                                                (all or nothing; a refusal names each account in error.accounts)
//	PATCH /v1/connection/{connectionId}/credentials {"credentials":{...}} → connection + "checkEnqueued" (a blocked one becomes PENDING and is checked)
//	POST  /v1/connection/{connectionId}/refresh     → 202 {"enqueued","taskId"|"reason"}; 409 when the status forbids a refresh
//	POST  /v1/connection/{connectionId}/link        → 201 {"url","token","expiresAt"}: a single-use credential-update link
//	GET   /v1/connection/{connectionId}             → 200 the same link (the reference's "magic link for editing")
//	PATCH /v1/link/credentials                      {"token","credentials"} → 200; NO API key: the token authorizes one update
//	                                                (410 once the credentials were replaced after the link was issued)
//	GET|POST /v1/connection/company/{companyId}/link → 200|201 {"companyId","url","token","expiresAt"}: a single-use new-connection link
//	POST  /v1/link/connection                       {"token","datasource","name","credentials"} → 201; NO API key: one new connection
//	                                                (409 while the company is inactive, as for minting its link)
//	POST  /v1/link/info                             {"token"} → 200 LinkInfo: what a link is for and whether it can be used
//	                                                (valid, used, expired, superseded, inactive), read without spending it; NO API key
//	GET   /link                                     the page a link opens (token in the URL fragment); no key. It asks
//	                                                /v1/link/info about the link, then shows the form or why not
//	GET   /v1/datasources                           {"datasources":[{"name","health","checks",...,"breaker","running"}]}
//	GET   /v1/queues                                {"queues":[{"queue","size","pending",...,"paused"}]}
//	POST  /v1/queues/{queue}/pause|resume           → 200 the queue
//	POST  /v1/keys                                  {"name","scopes","companies"} → 201 the API key with its secret, shown once
//	GET   /v1/keys                                  {"keys":[...]}: the runtime API keys, without secrets
//	DELETE /v1/keys/{name}                          → 204: every API process refuses the key from its next request
//	GET   /v1/store/keys                            {"primary","inUse":[...],"rekey":{...}}: the encryption keys in use
//	POST  /v1/store/rekey                           → 202 {"started",...}: re-encrypt every credential under the primary key
//
// Webhook routes (package webhook; docs/webhooks.md):
//
//	POST   /v1/webhooks/endpoints                   {"url","description","filterTypes","companyIds","disabled"} → 201 endpoint + "secret"
//	GET    /v1/webhooks/endpoints                   ?limit=&cursor= → {"endpoints":[...],"nextCursor"}
//	GET|PATCH|DELETE /v1/webhooks/endpoints/{endpointId}
//	GET    /v1/webhooks/endpoints/{endpointId}/secret         → {"secret"}
//	POST   /v1/webhooks/endpoints/{endpointId}/secret/rotate  → {"secret","previousValidUntil"}
//	POST   /v1/webhooks/endpoints/{endpointId}/test           {"eventType"} → 202 {"msgId"}: an example message now
//	POST   /v1/webhooks/endpoints/{endpointId}/recover        {"since","until"} → 202: failed messages sent again
//	GET    /v1/webhooks/endpoints/{endpointId}/attempts       ?limit=&cursor= → {"attempts":[...],"nextCursor"}
//	GET    /v1/webhooks/event-types                 {"eventTypes":[{"name","description","example"}]}
//	GET    /v1/webhooks/messages                    ?eventType=&connectionId=&limit=&cursor= → {"messages":[...],"nextCursor"}
//	GET    /v1/webhooks/messages/{msgId}            a message: payload, deliveries
//	GET    /v1/webhooks/messages/{msgId}/attempts   {"attempts":[...]}
//	POST   /v1/webhooks/messages/{msgId}/endpoints/{endpointId}/resend → 202: one more attempt now
//
// The OpenAPI document (openapi.json, embedded and served) describes every
// route Server.Routes lists, with its parameters, bodies, answers and
// errors; the tests hold it to the code and validate every exchange of the
// API's tests against it (internal/testing/openapitest).
//
// Contract:
//   - Every route except /healthz, /v1/openapi.json, /link, PATCH
//     /v1/link/credentials, POST /v1/link/connection and POST /v1/link/info
//     requires an X-API-Key header holding a bootstrap key (Config.APIKeys,
//     compared in constant time, every scope) or a key made with POST
//     /v1/keys (read from Redis on every request), with the route's scope
//     (read, write, admin, webhooks: auth.go; 403 without it), within the
//     key's rate (429 with Retry-After); a key limited to companies gets
//     404 for any other company and its connections. The store records the
//     key's name as the actor of every change it makes. The link routes take a signed, expiring,
//     single-use token (package link) in the body or the URL fragment, never
//     in a path, so it never reaches the access log.
//   - Routes that need an optional dependency (Config.Enqueuer, Inspector,
//     Links) answer 503 saying so when it is not configured.
//   - Bodies and responses are JSON, camelCase, with the reference's field
//     names. A request body must be one JSON object with known fields only,
//     sent as Content-Type application/json (parameters such as charset are
//     allowed). A request without a Content-Type is read as JSON too, so a
//     bare `curl -d '{...}'` works; any other media type is 415. Field
//     names must match exactly (not in another case), no field may appear
//     twice, and text must be valid UTF-8 without unpaired surrogate
//     escapes: each is a 400 naming the field (strict.go).
//   - Every request answers within AnswerBound of Config.RequestTimeout
//     whatever Redis does (deadline.go); a 503 after a deadline leaves a
//     write's outcome unknown.
//   - Errors are {"error":{"code":"...","message":"..."}}; the message says
//     what to fix. A request answered with a 4xx has written nothing, with
//     one exception: a company (de)activation overtaken by a later one (409,
//     store.CompanyToggledError) stops where it is and the later finishes.
//   - Credentials are accepted when a connection is created or its
//     credentials are updated, and never appear in a response or a log line.
//   - Every response carries X-Request-ID (the caller's, when it sent a sane
//     one); the access log records method, path, status, duration and that
//     ID, never headers or bodies.
package api

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"
	"golang.org/x/time/rate"

	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/link"
	"github.com/checkd/checkd/internal/startstop"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/webhook"
)

// Config configures a Server. It has no defaults: New refuses a zero
// field unless its comment says what zero means. ConfigFrom builds one
// from checkd's configuration (whose defaults are configs/checkd.yaml's).
type Config struct {
	// Addr is the TCP address to listen on (httpAddr); "127.0.0.1:0" picks
	// a free port, which Server.Addr reports after Start.
	Addr string
	// APIKeys are the bootstrap keys: accepted in X-API-Key with every
	// scope, beside the keys made at runtime (POST /v1/keys). At least
	// one, none empty.
	APIKeys []string
	// RateLimit is the requests a second each key may send to this server
	// (apiRateLimit.perSecond); 0: no limit. Over it a request is answered
	// 429 with Retry-After.
	RateLimit float64
	// RateBurst is how many requests a key may send at once above
	// RateLimit (apiRateLimit.burst); at least 1 when RateLimit is set.
	RateBurst int
	// MaxBodyBytes bounds a request body; larger ones get 413
	// (maxBodyBytes).
	MaxBodyBytes int64
	// Datasources returns the valid datasources (the checker registry's
	// Names). Required: a connection of an unknown datasource could never be
	// checked, so creating one is refused with the valid names.
	Datasources func() []string
	// Logger receives the access log and request errors. nil: logrus's
	// standard logger.
	Logger logrus.FieldLogger
	// Clock times requests for the access log and stamps the slots of
	// checks the API enqueues. nil: the real clock.
	Clock clock.Clock
	// Enqueuer enqueues the checks of refreshes, reactivations and
	// credential updates on the critical queue: an *asynq.Client. Optional:
	// without it refresh answers 503, and reactivated or updated
	// connections wait for the scheduler's next tick (they are due at once).
	Enqueuer Enqueuer
	// TaskOptions are added to every check the API enqueues (asynq.Timeout,
	// asynq.MaxRetry, ...); the queue is always tasks.QueueCritical (see
	// scheduler.OnDemand).
	TaskOptions []asynq.Option
	// Inspector reads and pauses the task queues: an *asynq.Inspector.
	// Optional: without it the queue routes answer 503.
	Inspector QueueInspector
	// Links signs and verifies credential-update link tokens. Optional:
	// without it the link routes answer 503.
	Links *link.Signer
	// Webhooks does what the webhook routes need beyond the store (the
	// address policy of endpoint URLs, secrets, test messages, resends,
	// recoveries). Optional: without it the webhook routes answer 503.
	Webhooks *webhook.Admin
	// OnRekeyStart, when set, is called after POST /v1/store/rekey started
	// a run (the daemon wakes its re-encryption runner).
	OnRekeyStart func()
	// RequestTimeout is the deadline of each request (requestTimeout); a
	// handler still running a moment after it is answered 503 (see
	// withDeadline, and AnswerBound).
	RequestTimeout time.Duration
	// PublicURL is the base of the link URLs handed out
	// (https://checkd.example.com); links point at PublicURL + "/link".
	// Empty: "http://" + the listen address (publicURL).
	PublicURL string
	// DatasourceRules gives a datasource's health rules and concurrency
	// cap, for GET /v1/datasources. nil: checkd's defaults' (health and
	// datasources in configs).
	DatasourceRules func(ds string) (store.HealthRules, int)
}

// ConfigFrom returns the API's settings in a checkd configuration: its
// listen address, keys, rate limit, body limit, request deadline and
// public URL, the scheduler section's task timeout and retries
// (tasks.AsynqMaxRetry) for the checks it enqueues, and each datasource's
// health rules and cap. The caller adds Datasources, Logger, Clock,
// Enqueuer, Inspector and Links.
func ConfigFrom(c configs.Config) Config {
	return Config{Addr: c.HTTPAddr, APIKeys: c.APIKeys, MaxBodyBytes: c.MaxBodyBytes, PublicURL: c.PublicURL, RequestTimeout: c.RequestTimeout,
		RateLimit: c.APIRateLimit.PerSecond, RateBurst: c.APIRateLimit.Burst,
		TaskOptions:     []asynq.Option{asynq.Timeout(c.Scheduler.TaskTimeout), asynq.MaxRetry(tasks.AsynqMaxRetry(c.Scheduler.MaxRetry))},
		DatasourceRules: func(ds string) (store.HealthRules, int) { return c.HealthRules(ds), c.MaxConcurrent(ds) }}
}

// Enqueuer enqueues asynq tasks; *asynq.Client implements it.
type Enqueuer = scheduler.Enqueuer

// QueueInspector reads and controls asynq queues; *asynq.Inspector
// implements it.
type QueueInspector interface {
	// Queues lists the queues that exist in Redis (asynq creates a queue
	// with its first task).
	Queues() ([]string, error)
	// GetQueueInfo reads one existing queue's counts and pause flag.
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
	// PauseQueue stops the workers taking tasks from a queue.
	PauseQueue(queue string) error
	// UnpauseQueue lets the workers take tasks from a queue again.
	UnpauseQueue(queue string) error
}

// Server serves the API. Build it with New, add handlers with Mount, then
// Start and Stop it, or use Handler with a server of your own.
type Server struct {
	st      *store.Store
	cfg     Config
	log     logrus.FieldLogger
	keys    []bootstrapKey
	limits  *limiters
	mux     *routeMux
	handler http.Handler
	// connRoutes maps a /v1/connection/{id}/{view} view to its handler by
	// method (see connectionRoute).
	connRoutes map[string]map[string]connRoute
	// onDemand enqueues the checks of refreshes and admin changes; nil
	// without Config.Enqueuer.
	onDemand *scheduler.OnDemand

	// jobs are work that outlives its request (a large company's
	// conversion); Stop waits for them, then cancels jobCtx.
	jobs    sync.WaitGroup
	jobCtx  context.Context
	jobStop context.CancelFunc

	life startstop.Lifecycle
	srv  *http.Server  // set by Start
	done chan struct{} // closed when srv stops serving
	mu   sync.Mutex    // guards addr
	addr string
}

// New returns a server over st. It fails, naming the field, on an
// incomplete Config.
func New(st *store.Store, cfg Config) (*Server, error) {
	if st == nil {
		return nil, errors.New("api: a store is required")
	}
	if len(cfg.APIKeys) == 0 {
		return nil, errors.New("api: at least one API key is required: set CHECKD_API_KEYS (comma-separated)")
	}
	for i, k := range cfg.APIKeys {
		if strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("api: API key %d of %d is empty: remove it or give it a value", i+1, len(cfg.APIKeys))
		}
	}
	if cfg.RateLimit < 0 || cfg.RateLimit > 0 && cfg.RateBurst < 1 {
		return nil, fmt.Errorf("api: RateLimit %g with RateBurst %d: give a rate ≥ 0 (0: none) and, with a rate, a burst ≥ 1 (configs: apiRateLimit)", cfg.RateLimit, cfg.RateBurst)
	}
	if cfg.DatasourceRules == nil {
		d := configs.Default()
		cfg.DatasourceRules = func(ds string) (store.HealthRules, int) { return d.HealthRules(ds), d.MaxConcurrent(ds) }
	}
	if cfg.Datasources == nil {
		return nil, errors.New("api: Config.Datasources is required: pass the checker registry's Names")
	}
	if cfg.Addr == "" {
		return nil, errors.New("api: Config.Addr is empty; give the address to listen on, e.g. 127.0.0.1:8080 (configs: httpAddr)")
	}
	if cfg.MaxBodyBytes <= 0 {
		return nil, fmt.Errorf("api: Config.MaxBodyBytes is %d; it must be positive (configs: maxBodyBytes)", cfg.MaxBodyBytes)
	}
	if cfg.RequestTimeout <= 0 {
		return nil, fmt.Errorf("api: Config.RequestTimeout is %s; it must be positive (configs: requestTimeout)", cfg.RequestTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("api: PublicURL %q is not a base URL: give scheme and host, optionally a path, e.g. https://checkd.example.com", cfg.PublicURL)
		}
		cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	}
	s := &Server{st: st, cfg: cfg, log: cfg.Logger, keys: newBootstrapKeys(cfg.APIKeys), mux: newRouteMux(), addr: cfg.Addr,
		limits: &limiters{limit: rate.Limit(cfg.RateLimit), burst: cfg.RateBurst}}
	s.jobCtx, s.jobStop = context.WithCancel(context.Background())
	if cfg.Enqueuer != nil {
		var err error
		if s.onDemand, err = scheduler.NewOnDemand(st, cfg.Enqueuer, cfg.Clock, cfg.TaskOptions...); err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
	}
	s.routes()
	s.handler = s.withRequestID(s.withAccessLog(s.withDeadline(s.withRecovery(http.HandlerFunc(s.dispatch)))))
	return s, nil
}

// Handler returns the whole API, /healthz and mounted handlers included,
// wrapped in the request-ID, access-log and panic-recovery middleware.
func (s *Server) Handler() http.Handler { return s.handler }

// Mount adds h at a net/http ServeMux pattern ("/monitoring/", "GET
// /metrics", ...), behind the API-key check when requireKey is set (a key
// with the admin scope: see requireScope). Call it
// before Start. Like ServeMux.Handle, it panics on an invalid pattern or one
// that conflicts with a registered route: a programming error at startup.
func (s *Server) Mount(pattern string, h http.Handler, requireKey bool) {
	if requireKey {
		h = s.requireScope(ScopeAdmin, h)
	}
	s.mux.Handle(pattern, h)
}

// Start listens on Config.Addr, failing at once when the address is taken,
// and serves in the background until Stop. ctx bounds only the listen. A
// server starts once (startstop.Lifecycle).
func (s *Server) Start(ctx context.Context) error {
	return s.life.Start("api", func() error { return s.start(ctx) })
}

func (s *Server) start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w (is another process using it? pick another address with CHECKD_HTTP_ADDR)", s.cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(errorLogWriter{s.log}, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.WithError(err).Error("api: server stopped serving")
		}
	}()
	s.srv, s.done = srv, done
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	s.log.WithField("addr", ln.Addr().String()).Info("api: listening")
	return nil
}

// Addr is the address the server listens on: the bound one (with the real
// port) after Start, Config.Addr before.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Stop shuts the server down gracefully, waiting for requests in flight
// until ctx ends (then it closes the remaining connections), and for work
// they left running (a company's conversion), cancelled when ctx ends. It
// is safe to call twice and before Start (startstop.Lifecycle); a stopped
// server cannot be started again.
func (s *Server) Stop(ctx context.Context) error {
	err := s.life.Stop(ctx, "api", s.stop)
	s.stopJobs(ctx) // also for a server used through Handler alone
	return err
}

// RunJob runs fn in the background under a context Stop cancels (after
// waiting for it as long as Stop's context allows): work a request starts
// and may outlast, such as a company's conversion, by the API or by a
// handler mounted beside it (the admin console).
func (s *Server) RunJob(fn func(ctx context.Context)) {
	s.jobs.Add(1)
	go func() {
		defer s.jobs.Done()
		fn(s.jobCtx)
	}()
}

// stopJobs waits for the running jobs until ctx ends, then cancels them
// (each stops at its next Redis call).
func (s *Server) stopJobs(ctx context.Context) {
	finished := make(chan struct{})
	go func() {
		s.jobs.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		s.log.Warn("api: stopping: cancelled work still running (a company conversion; repeat its PATCH to finish it)")
	}
	s.jobStop()
}

func (s *Server) stop(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("api: graceful shutdown: %w (remaining connections were closed)", err)
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("api: waiting for the server to stop: %w", ctx.Err())
	}
}

// errorLogWriter sends net/http's own error log (TLS, protocol errors) to
// logrus.
type errorLogWriter struct{ log logrus.FieldLogger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	w.log.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Package daemon wires checkd's parts into one process according to its
// configuration: Redis, the store, the checker registry, and the roles it
// plays (worker, scheduler, api), plus demo data.
//
// Start order (each step needs the ones before it):
//
//  1. Redis: CHECKD_REDIS_URL, or an embedded in-memory miniredis when it is
//     empty (data lost on exit, and said so loudly); then a ping, and
//     asynq's list of queues gets every queue (tasks.RegisterQueues). A
//     redis+sentinel:// URL gets a go-redis failover client, shared by the
//     store and asynq, which follows the primary the sentinels name. The
//     client honours context deadlines on the socket, so an API request's
//     deadline holds whatever Redis does.
//  2. The store, with the credential cipher from encryptionKey (and
//     encryptionOldKeys, during a rotation). The embedded Redis without a
//     key gets a throwaway key; an external Redis without one is refused,
//     since credentials would be unreadable after a restart. Keys that
//     cannot open what the store holds are refused too (store.EnsureKeys).
//  3. The checker registry: the sandbox datasource and each configured
//     checker service (checks/httpcheck).
//  4. The worker, if the role is on: it serves tasks before any are made;
//     then the webhook deliverer (an asynq server of its own on the
//     webhooks queue).
//  5. The scheduler, if the role is on, enqueueing through an asynq client
//     sharing the Redis connection; then the webhook dispatcher (the
//     change-event stream into delivery tasks).
//  6. The re-encryption runner (package rekey), if old keys are
//     configured: it does a rotation's re-encryption once one is started.
//  7. The API, if the role is on. It needs an API key; the embedded demo
//     without one generates a key and prints it once. Beside the REST API it
//     serves /metrics (an API key, or the dashboard's login), /readyz, the
//     asynqmon dashboard at /monitoring/ and the admin console at /console/
//     (both behind the dashboard's basic auth, read-only unless configured
//     otherwise).
//  8. The ops listener, if metricsAddr is set: /metrics, /healthz and
//     /readyz for processes without the api role (worker-only machines).
//  9. Demo data, if enabled and the store has no company yet.
//
// Each part comes from its section of the configuration (configs, the
// one source of defaults) through the part's own mapping: cfg.StoreConfig,
// worker.ConfigFrom, scheduler.ConfigFrom, api.ConfigFrom,
// dashboard.OptionsFrom, webhook.DelivererConfigFrom and its kin. The daemon adds only what it owns (the clock,
// loggers, the shared Redis client, metrics hooks).
//
// Lifecycle (package startstop): a daemon starts once; Stop is safe before
// Start and twice. Every part that starts pushes its stop on a stack, and
// Stop runs the stack in reverse: the ops listener and the API (no new
// requests), the re-encryption runner (its run goes on from its cursor next
// time), the webhook dispatcher and the scheduler (no new tasks), the
// deliverer and the worker (in-flight attempts and checks drain or are
// requeued), then Redis. A failed Start stops what it had
// started. StopTimeout bounds a graceful stop: the worker's shutdown
// timeout plus a margin.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/httpcheck"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/console"
	"github.com/checkd/checkd/internal/dashboard"
	"github.com/checkd/checkd/internal/demo"
	"github.com/checkd/checkd/internal/link"
	"github.com/checkd/checkd/internal/metrics"
	"github.com/checkd/checkd/internal/rekey"
	"github.com/checkd/checkd/internal/startstop"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/webhook"
	"github.com/checkd/checkd/worker"
)

// RedisProtocol is the RESP version checkd speaks: 2, since it uses no RESP3
// feature and go-redis's RESP3 push handling costs a share of every check's
// CPU (BENCHMARKS.md, "Changes made from these measurements": Worker).
const RedisProtocol = 2

// maxPool caps the Redis connection pool. A check holds a connection only
// around its two store calls, so a pool far smaller than the worker
// concurrency serves it, while each connection's buffers cost memory: at
// high concurrency an uncapped pool dominated the process's memory, for
// no throughput (BENCHMARKS.md, "Changes made from these measurements":
// Worker).
const maxPool = 128

// RedisPoolSize is the connection pool of a process with the given worker
// and enqueue concurrency (the benchmark harness uses it too).
func RedisPoolSize(workerConcurrency, enqueueConcurrency int) int {
	return min(workerConcurrency+enqueueConcurrency+16, maxPool)
}

// Options are the parts of a daemon that tests replace.
type Options struct {
	// Clock is shared by the store, the worker, the scheduler and the API.
	// Default: the real clock.
	Clock clock.Clock
	// Out receives the one-time notice with a generated API key (embedded
	// demo only). Default: os.Stderr.
	Out io.Writer
}

// failedStartTimeout bounds the cleanup of a Start that failed half-way.
const failedStartTimeout = 10 * time.Second

// Daemon is one checkd process. Build it with New, then Start and Stop it.
type Daemon struct {
	cfg  configs.Config
	log  *logrus.Logger
	opts Options

	life startstop.Lifecycle
	// parts holds the stop of every part Start brought up, in start order;
	// Stop runs them in reverse.
	parts startstop.Stack

	mu      sync.Mutex // guards the parts below; held by Start and Stop
	mr      *miniredis.Miniredis
	rdb     *redis.Client
	st      *store.Store
	reg     *checks.Registry
	wk      *worker.Worker
	dlv     *webhook.Deliverer
	sch     *scheduler.Scheduler
	dsp     *webhook.Dispatcher
	rek     *rekey.Runner
	srv     *api.Server
	opsAddr string
	enq     *asynq.Client
	insp    *asynq.Inspector
	met     *metrics.Metrics
	encKey  []byte
	oldKeys [][]byte
	ready   atomic.Bool // readyz reads it without d.mu, which Stop holds while draining requests
	genKey  bool
	seeded  demo.Summary
	apiKeys []string
}

// New checks that cfg can run and returns a daemon that has not started:
// it touches neither Redis nor the network until Start. log may be nil
// (logrus's standard logger).
func New(cfg configs.Config, log *logrus.Logger, opts Options) (*Daemon, error) {
	// Validate lists every problem at once, the keys an external Redis
	// requires included.
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if log == nil {
		log = logrus.StandardLogger()
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Out == nil {
		opts.Out = os.Stderr
	}
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
	if cfg.Webhooks.AllowPrivate {
		log.Warn("webhooks.allowPrivate is on (" + configs.EnvWebhookPrivate + "): webhook endpoints may be plain http and reach " +
			"loopback, private and link-local addresses; for development only, never in production")
	}
	return &Daemon{cfg: cfg, log: log, opts: opts, apiKeys: cfg.APIKeys}, nil
}

// Start brings the process up in the documented order and returns once
// every role is running; it does not block. ctx bounds the startup (Redis
// ping, listen, demo seeding). A daemon starts once (startstop.Lifecycle);
// a Start that failed has stopped what it started.
func (d *Daemon) Start(ctx context.Context) error {
	return d.life.Start("daemon", func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		if err := d.start(ctx); err != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failedStartTimeout)
			defer cancel()
			if serr := d.stop(sctx); serr != nil {
				d.log.WithError(serr).Warn("cleaning up after a failed start")
			}
			return err
		}
		return nil
	})
}

// start runs the start steps in the package's documented order; each step
// that brings up a running part starts it through d.parts, or pushes its
// stop there.
func (d *Daemon) start(ctx context.Context) error {
	cfg := d.cfg
	steps := []struct {
		on  bool
		run func(context.Context) error
	}{
		{true, d.startRedis},
		{true, d.registerQueues},
		{true, d.openStore},
		{true, d.registerCheckers},
		{cfg.Has(configs.RoleWorker), d.startWorker},
		{cfg.Has(configs.RoleWorker), d.startDeliverer},
		{cfg.Has(configs.RoleScheduler), d.startScheduler},
		{cfg.Has(configs.RoleScheduler), d.startDispatcher},
		{len(cfg.EncryptionOldKeys) > 0, d.startRekey},
		{cfg.Has(configs.RoleAPI), d.startAPI},
		{cfg.MetricsAddr != "", d.startOps},
		{cfg.Demo.Enabled, d.seedDemo},
	}
	for _, step := range steps {
		if !step.on {
			continue
		}
		if err := step.run(ctx); err != nil {
			return err
		}
	}
	d.ready.Store(true)
	d.log.WithFields(logrus.Fields{"roles": cfg.Roles, "checkInterval": cfg.CheckInterval.String(),
		"tick": cfg.Tick, "embeddedRedis": cfg.Embedded()}).Info("checkd started")
	return nil
}

// registerQueues lists every queue in asynq's set of queues, so each shows
// (empty) in the dashboard, the queue routes and the asynq_* metrics from
// the first start, whichever roles run here.
func (d *Daemon) registerQueues(ctx context.Context) error {
	if err := tasks.RegisterQueues(ctx, d.rdb); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	return nil
}

// openStore builds the store over d.rdb, with the credential cipher
// (refusing keys that cannot open what the store holds), and the asynq
// client, inspector and metrics that share it.
func (d *Daemon) openStore(ctx context.Context) error {
	cfg := d.cfg
	key, err := d.encryptionKey()
	if err != nil {
		return err
	}
	d.encKey = key
	for i, k := range cfg.EncryptionOldKeys {
		old, err := store.ParseKey(k)
		if err != nil {
			return fmt.Errorf("daemon: %s entry %d: %w", configs.EnvEncryptionOld, i+1, err)
		}
		d.oldKeys = append(d.oldKeys, old)
	}
	cipher, err := store.NewCipher(key, d.oldKeys...)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	stCfg := cfg.StoreConfig()
	stCfg.Cipher, stCfg.Clock = cipher, d.opts.Clock
	if d.st, err = store.New(d.rdb, stCfg); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if err := d.st.EnsureKeys(ctx); err != nil {
		return fmt.Errorf("daemon: %s: %w", configs.EnvEncryptionKey, err)
	}
	// One asynq client and inspector share d.rdb (asynq refuses to close a
	// shared client, so they are dropped, not closed, on stop). The client's
	// enqueues go through the store's group commit: a sweep's concurrent
	// enqueues share round trips.
	d.enq = asynq.NewClientFromRedisClient(d.st.SharedClient())
	d.insp = asynq.NewInspectorFromRedisClient(d.rdb)
	d.met = metrics.New(d.st, d.insp, d.opts.Clock)
	return nil
}

// registerCheckers builds the checker registry: the built-in sandbox and
// each configured checker service, whose kept connections are closed on
// stop (after the worker's).
func (d *Daemon) registerCheckers(context.Context) error {
	cfg := d.cfg
	d.reg = checks.NewRegistry()
	if err := d.reg.Register(sandbox.Datasource, sandbox.New(sandbox.Options{Latency: cfg.Sandbox.Latency})); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if cfg.Checkers.AllowHTTP && len(cfg.DatasourceNames()) > 0 {
		d.log.Warn("plain http:// checker URLs are allowed (" + configs.EnvCheckerAllowHTTP + "): credentials may travel unencrypted; for development only")
	}
	for _, name := range cfg.DatasourceNames() {
		ds := cfg.Datasources[name]
		// One kept connection per concurrent check, so every check reuses one.
		c, err := httpcheck.New(httpcheck.Config{URL: ds.URL, Secret: ds.Secret, Timeout: ds.Timeout,
			AllowHTTP: cfg.Checkers.AllowHTTP, MaxIdleConns: cfg.Worker.Concurrency})
		if err != nil {
			return fmt.Errorf("daemon: datasource %s: %w", name, err)
		}
		if err := d.reg.Register(name, c); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		d.parts.Push("checker "+name, func(context.Context) error { c.CloseIdleConnections(); return nil })
		d.log.WithFields(logrus.Fields{"datasource": name, "timeout": ds.Timeout.String()}).Info("datasource checked by a checker service over HTTP")
	}
	// The datasource gauges: the registry's datasources, under their rules.
	d.met.WatchDatasources(d.st, d.opts.Clock, d.reg.Names, func(ds string) (store.HealthRules, int) {
		return cfg.HealthRules(ds), cfg.MaxConcurrent(ds)
	})
	return nil
}

func (d *Daemon) startWorker(ctx context.Context) error {
	wc := worker.ConfigFrom(d.cfg)
	wc.Clock, wc.Logger, wc.OnCheck = d.opts.Clock, d.log.WithField("component", "worker"), d.met.ObserveCheck
	wk, err := worker.New(d.rdb, d.st, d.reg, wc)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if err := d.parts.Start(ctx, "worker", wk); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	d.wk = wk
	return nil
}

func (d *Daemon) startScheduler(ctx context.Context) error {
	sc := scheduler.ConfigFrom(d.cfg)
	sc.Clock, sc.Logger, sc.OnTick = d.opts.Clock, d.log, d.met.ObserveTick
	sch, err := scheduler.New(d.st, d.enq, sc)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if err := d.parts.Start(ctx, "scheduler", sch); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	d.sch = sch
	return nil
}

func (d *Daemon) startDeliverer(ctx context.Context) error {
	dc := webhook.DelivererConfigFrom(d.cfg)
	dc.Clock, dc.Logger = d.opts.Clock, d.log.WithField("component", "webhooks")
	dc.OnAttempt, dc.OnDisabled = d.met.ObserveWebhookAttempt, d.met.ObserveWebhookDisabled
	dlv, err := webhook.NewDeliverer(d.rdb, d.st, d.enq, dc)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if err := d.parts.Start(ctx, "webhook deliverer", dlv); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	d.dlv = dlv
	return nil
}

func (d *Daemon) startDispatcher(ctx context.Context) error {
	dc := webhook.DispatcherConfigFrom(d.cfg)
	dc.Clock, dc.Logger, dc.OnDispatch = d.opts.Clock, d.log.WithField("component", "webhooks"), d.met.ObserveWebhookDispatch
	dsp, err := webhook.NewDispatcher(d.st, d.enq, dc)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if err := d.parts.Start(ctx, "webhook dispatcher", dsp); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	d.dsp = dsp
	return nil
}

// startRekey starts the re-encryption runner of a process holding old
// keys: it does a rotation's run once one is started.
func (d *Daemon) startRekey(ctx context.Context) error {
	rek, err := rekey.New(d.st, rekey.Config{Logger: d.log})
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if err := d.parts.Start(ctx, "re-encryption", rek); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	d.rek = rek
	d.log.WithField("keys", len(d.oldKeys)+1).Info("old encryption keys configured: this process re-encrypts credentials once a re-encryption is started (checkctl store rekey)")
	return nil
}

// seedDemo seeds the demo data into a store without companies.
func (d *Daemon) seedDemo(ctx context.Context) error {
	sum, err := demo.Seed(ctx, d.st, d.cfg.Demo)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	d.seeded = sum
	if sum.Skipped {
		d.log.Info("demo data not seeded: the store already has companies")
	} else {
		d.log.WithFields(logrus.Fields{"companies": sum.Companies, "connections": sum.Connections}).
			Info("demo data seeded: sandbox connections are PENDING and checked on the next tick")
	}
	return nil
}

func (d *Daemon) startRedis(ctx context.Context) error {
	u := configs.RedisURL{}
	if d.cfg.Embedded() {
		mr, err := miniredis.Run()
		if err != nil {
			return fmt.Errorf("daemon: start the embedded Redis: %w", err)
		}
		d.mr = mr
		d.parts.Push("embedded redis", func(context.Context) error { mr.Close(); return nil })
		u.Single = &redis.Options{Addr: mr.Addr()}
		d.log.WithField("addr", mr.Addr()).Warn("no Redis configured: using an EMBEDDED IN-MEMORY Redis; all data is LOST ON EXIT. Set " +
			configs.EnvRedisURL + " (e.g. redis://127.0.0.1:6379/0) to keep it")
	} else {
		var err error
		if u, err = configs.ParseRedisURL(d.cfg.RedisURL); err != nil {
			return fmt.Errorf("daemon: %s is not a Redis URL: %w", configs.EnvRedisURL, err)
		}
	}
	pool := RedisPoolSize(d.cfg.Worker.Concurrency, d.cfg.Scheduler.EnqueueConcurrency)
	var rdb *redis.Client
	if u.Sentinel != nil {
		// One failover client serves the store and asynq alike (asynq is
		// handed the client, not connection options): every part follows
		// the primary the sentinels name.
		o := u.Sentinel
		o.Protocol, o.ContextTimeoutEnabled, o.PoolSize = RedisProtocol, true, pool
		rdb = redis.NewFailoverClient(o)
	} else {
		o := u.Single
		if o.Protocol == 0 {
			o.Protocol = RedisProtocol
		}
		// Context deadlines bound the socket reads and writes too (go-redis
		// otherwise waits out ReadTimeout on every try, and retries): an
		// API request's deadline holds whatever Redis does.
		o.ContextTimeoutEnabled = true
		if o.PoolSize == 0 {
			o.PoolSize = pool
		}
		rdb = redis.NewClient(o)
	}
	d.rdb = rdb
	d.parts.Push("redis client", func(context.Context) error {
		if err := rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			return err
		}
		return nil
	})
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.rdb.Ping(pctx).Err(); err != nil {
		// u.Addr only: the URL may hold a password.
		return fmt.Errorf("daemon: cannot reach Redis at %s (%s): %w; is it running and reachable?", u.Addr(), configs.EnvRedisURL, err)
	}
	d.log.WithField("redis", u.Addr()).Info("connected to Redis")
	return nil
}

// encryptionKey is the configured key, or a throwaway one on the embedded
// Redis (New refused an external Redis without a key).
func (d *Daemon) encryptionKey() ([]byte, error) {
	if d.cfg.EncryptionKey != "" {
		k, err := store.ParseKey(d.cfg.EncryptionKey)
		if err != nil {
			return nil, fmt.Errorf("daemon: %s: %w", configs.EnvEncryptionKey, err)
		}
		return k, nil
	}
	k, err := store.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	d.log.Warn("no " + configs.EnvEncryptionKey + " set: credentials are encrypted with a throwaway key for this run only")
	return k, nil
}

func (d *Daemon) startAPI(ctx context.Context) error {
	if len(d.apiKeys) == 0 {
		// Only reachable on the embedded Redis: New refuses otherwise.
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("daemon: generate an API key: %w", err)
		}
		d.apiKeys, d.genKey = []string{hex.EncodeToString(b[:])}, true
	}
	oldLinkKeys := make([][]byte, len(d.oldKeys))
	for i, k := range d.oldKeys {
		oldLinkKeys[i] = link.DeriveKey(k)
	}
	signer, err := link.NewSigner(link.DeriveKey(d.encKey), d.cfg.LinkTTL, d.opts.Clock, oldLinkKeys...)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	ac := api.ConfigFrom(d.cfg)
	ac.APIKeys, ac.Datasources, ac.Logger, ac.Clock = d.apiKeys, d.reg.Names, d.log.WithField("component", "api"), d.opts.Clock
	ac.Enqueuer, ac.Inspector, ac.Links = d.enq, d.insp, signer
	wc := webhook.AdminConfigFrom(d.cfg)
	wc.Clock = d.opts.Clock
	if ac.Webhooks, err = webhook.NewAdmin(d.st, d.enq, wc); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if d.rek != nil {
		ac.OnRekeyStart = d.rek.Wake
	}
	srv, err := api.New(d.st, ac)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	dc := dashboard.OptionsFrom(d.cfg)
	dc.APIKeys, dc.Logger = d.apiKeys, d.log.WithField("component", "dashboard")
	dash, err := dashboard.New(d.rdb, dc)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	srv.Mount(dc.RootPath+"/", dash, false) // it does its own (browser-friendly) auth
	con, err := d.console(dc, ac, srv.RunJob)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	srv.Mount(console.RootPath+"/", con, false) // behind the dashboard's login
	srv.Mount("GET /metrics", api.RequireKeyOrLogin(dc.User, d.apiKeys, d.met.Handler()), false)
	srv.Mount("GET /readyz", http.HandlerFunc(d.readyz), false)
	if err := d.parts.Start(ctx, "api", srv); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	d.srv = srv
	if d.genKey {
		// Printed once, on Out and never in the log, so the user can curl.
		k := d.apiKeys[0]
		fmt.Fprintf(d.opts.Out, "\ncheckd: no API key configured; this run's generated key is\n\n    %s\n\n"+
			"  try: curl -H 'X-API-Key: %s' http://%s/v1/company\n  (set %s to choose your own)\n\n",
			k, k, srv.Addr(), configs.EnvAPIKeys)
		d.log.Warn("no API key configured: generated one for this run and printed it once on stderr")
	}
	return nil
}

// console builds the admin console: the dashboard's login and writable
// flag; the API's link signer, datasources and their rules; checks
// enqueued as the API enqueues them (on the critical queue, with the
// scheduler's task options); and its long work (a company's conversion)
// run as the API server's, which its Stop waits for.
func (d *Daemon) console(dc dashboard.Options, ac api.Config, background func(func(context.Context))) (*console.Console, error) {
	login, err := dashboard.NewLogin(dc)
	if err != nil {
		return nil, err
	}
	od, err := scheduler.NewOnDemand(d.st, d.enq, d.opts.Clock, ac.TaskOptions...)
	if err != nil {
		return nil, err
	}
	return console.New(console.Config{Store: d.st, Login: login, Writable: dc.Writable, Secret: console.DeriveKey(d.encKey),
		Queues: d.insp, OnDemand: od, Links: ac.Links, PublicURL: d.cfg.PublicURL, Clock: d.opts.Clock, Background: background,
		Datasources: ac.Datasources, DatasourceRules: ac.DatasourceRules, Logger: d.log.WithField("component", "console")})
}

// Stop stops the process in reverse start order, bounded by ctx, and
// reports every failure. It is safe to call twice and before Start.
func (d *Daemon) Stop(ctx context.Context) error {
	return d.life.Stop(ctx, "daemon", func(ctx context.Context) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		err := d.stop(ctx)
		if err == nil {
			d.log.Info("checkd stopped")
		}
		return err
	})
}

// stop stops whatever was started, last started first.
func (d *Daemon) stop(ctx context.Context) error {
	d.ready.Store(false)
	if err := d.parts.Stop(ctx); err != nil {
		return fmt.Errorf("daemon: stop: %w", err)
	}
	return nil
}

// stopMargin is what a graceful stop allows beyond the worker's shutdown
// timeout: for the API's requests in flight, a running tick and closing
// Redis.
const stopMargin = 15 * time.Second

// StopTimeout is how long a graceful Stop may take: the worker's shutdown
// timeout (worker.shutdownTimeout), in which in-flight checks finish or go
// back to their queue, plus a margin for the rest of the process.
func (d *Daemon) StopTimeout() time.Duration { return d.cfg.Worker.ShutdownTimeout + stopMargin }

// Config returns the configuration the daemon runs.
func (d *Daemon) Config() configs.Config { return d.cfg }

// Store returns the store, nil before Start.
func (d *Daemon) Store() *store.Store {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st
}

// Scheduler returns the scheduler, nil before Start or without the role.
func (d *Daemon) Scheduler() *scheduler.Scheduler {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sch
}

// Worker returns the worker, nil before Start or without the role.
func (d *Daemon) Worker() *worker.Worker {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.wk
}

// API returns the API server (its Addr is the bound address), nil before
// Start or without the role.
func (d *Daemon) API() *api.Server {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.srv
}

// Demo returns what demo seeding did at Start (zero when disabled).
func (d *Daemon) Demo() demo.Summary {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seeded
}

// readyz answers 200 when the process is started and Redis answers, 503
// otherwise: what a load balancer or orchestrator should route by.
func (d *Daemon) readyz(w http.ResponseWriter, r *http.Request) {
	rdb := d.rdb // set before any listener starts, closed only after they stop
	w.Header().Set("Content-Type", "application/json")
	if !d.ready.Load() || rdb == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status":"starting or stopping"}`)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyPingTimeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status":"redis unreachable"}`)
		d.log.WithError(err).Warn("readyz: redis unreachable")
		return
	}
	_ = json.NewEncoder(w).Encode(struct {
		Status string   `json:"status"`
		Roles  []string `json:"roles"`
	}{"ready", d.cfg.Roles})
}

// startOps serves /metrics, /healthz and /readyz on metricsAddr: how a
// process without the api role is scraped and probed. /metrics needs an API
// key (or the dashboard's login) when keys are configured.
func (d *Daemon) startOps(ctx context.Context) error {
	mux := http.NewServeMux()
	var m http.Handler = d.met.Handler()
	if len(d.apiKeys) > 0 {
		m = api.RequireKeyOrLogin(dashboard.OptionsFrom(d.cfg).User, d.apiKeys, m)
	} else {
		d.log.Warn("no API keys configured: /metrics on " + d.cfg.MetricsAddr + " is open; bind it to a private address")
	}
	// The API's answer bound holds here too: asynq's queue statistics read
	// Redis without a deadline of their own.
	mux.Handle("GET /metrics", http.TimeoutHandler(m, api.AnswerBound(d.cfg.RequestTimeout),
		`{"error":{"code":"unavailable","message":"metrics could not be read in time (is Redis reachable?)"}}`))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", d.readyz)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", d.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("daemon: listen on metricsAddr %s: %w (pick another with %s)", d.cfg.MetricsAddr, err, configs.EnvMetricsAddr)
	}
	ops := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.opsAddr = ln.Addr().String()
	go func() {
		if err := ops.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.WithError(err).Error("ops listener failed")
		}
	}()
	d.parts.Push("ops listener", ops.Shutdown)
	d.log.WithField("addr", d.opsAddr).Info("serving /metrics, /healthz and /readyz")
	return nil
}

// OpsAddr is the bound address of the ops listener ("" without one).
func (d *Daemon) OpsAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opsAddr
}

// ReadyBound is the longest /readyz takes to answer, whatever Redis does:
// its ping gives up after readyPingTimeout, and a Redis that has not
// answered by then is reported unreachable.
const ReadyBound = time.Second

const readyPingTimeout = 500 * time.Millisecond

// Package daemon wires checkd's parts into one process according to its
// configuration: Redis, the store, the checker registry, and the roles it
// plays (worker, scheduler, api), plus demo data.
//
// Start order (each step needs the ones before it):
//
//  1. Redis: CHECKD_REDIS_URL, or an embedded in-memory miniredis when it is
//     empty (data lost on exit, and said so loudly); then a ping.
//  2. The store, with the credential cipher from encryptionKey. The embedded
//     Redis without a key gets a throwaway key; an external Redis without
//     one is refused, since credentials would be unreadable after a restart.
//  3. The checker registry: the sandbox datasource and each configured
//     checker service (checks/httpcheck).
//  4. The worker, if the role is on: it serves tasks before any are made.
//  5. The scheduler, if the role is on, enqueueing through an asynq client
//     sharing the Redis connection.
//  6. The API, if the role is on. It needs an API key; the embedded demo
//     without one generates a key and prints it once. Beside the REST API it
//     serves /metrics (key required), /readyz, and the asynqmon dashboard at
//     /monitoring/ (basic auth, read-only unless configured otherwise).
//  7. The ops listener, if metricsAddr is set: /metrics, /healthz and
//     /readyz for processes without the api role (worker-only machines).
//  8. Demo data, if enabled and the store has no company yet.
//
// Stop runs in reverse: the ops listener and the API (no new requests), the
// scheduler (no new tasks), the worker (in-flight checks drain or are
// requeued), then Redis.
// A failed Start stops what it had started.
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
	"github.com/checkd/checkd/internal/dashboard"
	"github.com/checkd/checkd/internal/demo"
	"github.com/checkd/checkd/internal/link"
	"github.com/checkd/checkd/internal/metrics"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/worker"
)

// RedisProtocol is the RESP version checkd speaks: 2, since it uses no RESP3
// feature and go-redis's RESP3 push handling costs ~5% of a check's CPU.
const RedisProtocol = 2

// maxPool caps the Redis connection pool. A check holds a connection only
// around its two store calls, so a pool far smaller than the worker
// concurrency serves it; each connection's buffers cost ~64 KiB, which at
// 2,000 concurrent checks dominated the process's memory (measured: peak
// RSS 199 MB uncapped, 73 MB at 128, same throughput).
const maxPool = 128

// RedisPoolSize is the connection pool of a process with the given worker
// and enqueue concurrency (the benchmark harness uses it too).
func RedisPoolSize(workerConcurrency, enqueueConcurrency int) int {
	return min(workerConcurrency+enqueueConcurrency+16, maxPool)
}

// emptyQueueRecheck maps worker.emptyQueueRecheck (0: off) to
// worker.Config's (0: default, negative: off).
func emptyQueueRecheck(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
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

const (
	stateNew = iota
	stateStarted
	stateStopped
)

// Daemon is one checkd process. Build it with New, then Start and Stop it.
type Daemon struct {
	cfg  configs.Config
	log  *logrus.Logger
	opts Options

	mu      sync.Mutex
	state   int
	mr      *miniredis.Miniredis
	rdb     *redis.Client
	st      *store.Store
	reg     *checks.Registry
	wk      *worker.Worker
	sch     *scheduler.Scheduler
	srv     *api.Server
	ops     *http.Server
	opsAddr string
	enq     *asynq.Client
	insp    *asynq.Inspector
	met     *metrics.Metrics
	encKey  []byte
	ready   atomic.Bool // readyz reads it without d.mu, which Stop holds while draining requests
	genKey  bool
	seeded  demo.Summary
	apiKeys []string

	// httpCheckers are the registry's checker services, whose kept
	// connections are closed on stop.
	httpCheckers []*httpcheck.Checker
}

// New checks that cfg can run and returns a daemon that has not started:
// it touches neither Redis nor the network until Start. log may be nil
// (logrus's standard logger).
func New(cfg configs.Config, log *logrus.Logger, opts Options) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if !cfg.Embedded() && cfg.EncryptionKey == "" {
		return nil, fmt.Errorf("daemon: %s is required with an external Redis (%s): credentials encrypted with a throwaway key could not be decrypted after a restart; generate a key with: openssl rand -hex 32",
			configs.EnvEncryptionKey, configs.EnvRedisURL)
	}
	if cfg.Has(configs.RoleAPI) && len(cfg.APIKeys) == 0 && !cfg.Embedded() {
		return nil, fmt.Errorf("daemon: the api role needs at least one API key: set %s (comma-separated; generate one with: openssl rand -hex 16)",
			configs.EnvAPIKeys)
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
	return &Daemon{cfg: cfg, log: log, opts: opts, apiKeys: cfg.APIKeys}, nil
}

// Start brings the process up in the documented order and returns once
// every role is running; it does not block. ctx bounds the startup (Redis
// ping, listen, demo seeding). A daemon starts once.
func (d *Daemon) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.state {
	case stateStarted:
		return errors.New("daemon: already started")
	case stateStopped:
		return errors.New("daemon: stopped; create a new daemon to start again")
	}
	d.state = stateStarted
	if err := d.start(ctx); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failedStartTimeout)
		defer cancel()
		if serr := d.stop(sctx); serr != nil {
			d.log.WithError(serr).Warn("cleaning up after a failed start")
		}
		return err
	}
	return nil
}

func (d *Daemon) start(ctx context.Context) error {
	cfg := d.cfg
	if err := d.startRedis(ctx); err != nil {
		return err
	}

	key, err := d.encryptionKey()
	if err != nil {
		return err
	}
	d.encKey = key
	cipher, err := store.NewCipher(key)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	d.st, err = store.New(d.rdb, store.Config{Cipher: cipher, Clock: d.opts.Clock, Interval: cfg.CheckInterval,
		HistoryLimit: cfg.Store.HistoryLimit, EventsMaxLen: cfg.Store.EventsMaxLen, AutoTrack: cfg.Store.AutoTrack})
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}

	// One asynq client and inspector share d.rdb (asynq refuses to close a
	// shared client, so they are dropped, not closed, on stop). The client's
	// enqueues go through the store's group commit: a sweep's concurrent
	// enqueues share round trips.
	d.enq = asynq.NewClientFromRedisClient(d.st.SharedClient())
	d.insp = asynq.NewInspectorFromRedisClient(d.rdb)
	d.met = metrics.New(d.st, d.insp, d.opts.Clock)

	if err := d.buildRegistry(); err != nil {
		return err
	}

	if cfg.Has(configs.RoleWorker) {
		wk, err := worker.New(d.rdb, d.st, d.reg, worker.Config{
			Concurrency: cfg.Worker.Concurrency, Queues: cfg.Worker.Queues,
			CheckTimeout: cfg.Worker.CheckTimeout, ShutdownTimeout: cfg.Worker.ShutdownTimeout,
			EmptyQueueRecheck: emptyQueueRecheck(cfg.Worker.EmptyQueueRecheck), Clock: d.opts.Clock,
			Logger: d.log.WithField("component", "worker"), OnCheck: d.met.ObserveCheck,
		})
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		if err := wk.Start(ctx); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		d.wk = wk
	}

	if cfg.Has(configs.RoleScheduler) {
		// At least 1 (the retry kept for Retry-After), so the scheduler's
		// "0 means default" never applies.
		maxRetry := tasks.AsynqMaxRetry(cfg.Scheduler.MaxRetry)
		sch, err := scheduler.New(d.st, d.enq, scheduler.Config{
			Spec: cfg.Tick, BatchSize: cfg.Scheduler.BatchSize, MaxPerTick: cfg.Scheduler.MaxPerTick,
			Lease: cfg.Scheduler.Lease, EnqueueConcurrency: cfg.Scheduler.EnqueueConcurrency,
			TaskTimeout: cfg.Scheduler.TaskTimeout, MaxRetry: maxRetry,
			Clock: d.opts.Clock, Logger: d.log, OnTick: d.met.ObserveTick,
		})
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		if err := sch.Start(ctx); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		d.sch = sch
	}

	if cfg.Has(configs.RoleAPI) {
		if err := d.startAPI(ctx); err != nil {
			return err
		}
	}

	if cfg.MetricsAddr != "" {
		if err := d.startOps(ctx); err != nil {
			return err
		}
	}

	if cfg.Demo.Enabled {
		sum, err := demo.Seed(ctx, d.st, cfg.Demo)
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
	}

	d.ready.Store(true)
	d.log.WithFields(logrus.Fields{"roles": cfg.Roles, "checkInterval": cfg.CheckInterval.String(),
		"tick": cfg.Tick, "embeddedRedis": cfg.Embedded()}).Info("checkd started")
	return nil
}

// buildRegistry registers the checker of every datasource: the built-in
// sandbox and each configured checker service.
func (d *Daemon) buildRegistry() error {
	cfg := d.cfg
	d.reg = checks.NewRegistry()
	if err := d.reg.Register(sandbox.Datasource, sandbox.New(sandbox.Options{Latency: cfg.Sandbox.Latency})); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if cfg.Checkers.AllowHTTP && len(cfg.Datasources) > 0 {
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
		d.httpCheckers = append(d.httpCheckers, c)
		d.log.WithFields(logrus.Fields{"datasource": name, "timeout": ds.Timeout.String()}).Info("datasource checked by a checker service over HTTP")
	}
	return nil
}

func (d *Daemon) startRedis(ctx context.Context) error {
	var opt *redis.Options
	if d.cfg.Embedded() {
		mr, err := miniredis.Run()
		if err != nil {
			return fmt.Errorf("daemon: start the embedded Redis: %w", err)
		}
		d.mr = mr
		opt = &redis.Options{Addr: mr.Addr()}
		d.log.WithField("addr", mr.Addr()).Warn("no Redis configured: using an EMBEDDED IN-MEMORY Redis; all data is LOST ON EXIT. Set " +
			configs.EnvRedisURL + " (e.g. redis://127.0.0.1:6379/0) to keep it")
	} else {
		var err error
		if opt, err = redis.ParseURL(d.cfg.RedisURL); err != nil {
			return fmt.Errorf("daemon: %s is not a Redis URL (want redis://[user:password@]host:port/db): %w", configs.EnvRedisURL, err)
		}
	}
	if opt.Protocol == 0 {
		opt.Protocol = RedisProtocol
	}
	if opt.PoolSize == 0 {
		opt.PoolSize = RedisPoolSize(d.cfg.Worker.Concurrency, d.cfg.Scheduler.EnqueueConcurrency)
	}
	d.rdb = redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.rdb.Ping(pctx).Err(); err != nil {
		// opt.Addr only: the URL may hold a password.
		return fmt.Errorf("daemon: cannot reach Redis at %s (%s): %w; is it running and reachable?", opt.Addr, configs.EnvRedisURL, err)
	}
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
	signer, err := link.NewSigner(link.DeriveKey(d.encKey), d.cfg.LinkTTL, d.opts.Clock)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	maxRetry := tasks.AsynqMaxRetry(d.cfg.Scheduler.MaxRetry)
	srv, err := api.New(d.st, api.Config{Addr: d.cfg.HTTPAddr, APIKeys: d.apiKeys, Datasources: d.reg.Names,
		Logger: d.log.WithField("component", "api"), Clock: d.opts.Clock,
		Enqueuer: d.enq, Inspector: d.insp, Links: signer, PublicURL: d.cfg.PublicURL,
		TaskOptions: []asynq.Option{asynq.Timeout(d.cfg.Scheduler.TaskTimeout), asynq.MaxRetry(maxRetry)}})
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	readOnly := !d.cfg.Dashboard.Writable
	dash, err := dashboard.New(d.rdb, dashboard.Options{User: d.cfg.Dashboard.User, Password: d.cfg.Dashboard.Password,
		APIKeys: d.apiKeys, ReadOnly: &readOnly})
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	srv.Mount(dashboard.DefaultRootPath+"/", dash, false) // it does its own (browser-friendly) auth
	srv.Mount("GET /metrics", d.met.Handler(), true)
	srv.Mount("GET /readyz", http.HandlerFunc(d.readyz), false)
	if err := srv.Start(ctx); err != nil {
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

// Stop stops the process in reverse start order, bounded by ctx, and
// reports every failure. It is safe to call twice and before Start.
func (d *Daemon) Stop(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateStarted {
		d.state = stateStopped
		return nil
	}
	d.state = stateStopped
	err := d.stop(ctx)
	if err == nil {
		d.log.Info("checkd stopped")
	}
	return err
}

// stop stops whatever was started; each part's Stop is safe to repeat.
func (d *Daemon) stop(ctx context.Context) error {
	var errs []error
	d.ready.Store(false)
	if d.ops != nil {
		if err := d.ops.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop ops listener: %w", err))
		}
	}
	if d.srv != nil {
		if err := d.srv.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop api: %w", err))
		}
	}
	if d.sch != nil {
		if err := d.sch.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop scheduler: %w", err))
		}
	}
	if d.wk != nil {
		if err := d.wk.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop worker: %w", err))
		}
	}
	for _, c := range d.httpCheckers {
		c.CloseIdleConnections()
	}
	if d.rdb != nil {
		if err := d.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			errs = append(errs, fmt.Errorf("close redis client: %w", err))
		}
	}
	if d.mr != nil {
		d.mr.Close()
	}
	if len(errs) > 0 {
		return fmt.Errorf("daemon: stop: %w", errors.Join(errs...))
	}
	return nil
}

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
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
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
// key when keys are configured.
func (d *Daemon) startOps(ctx context.Context) error {
	mux := http.NewServeMux()
	var m http.Handler = d.met.Handler()
	if len(d.apiKeys) > 0 {
		m = api.RequireKey(d.apiKeys, m)
	} else {
		d.log.Warn("no API keys configured: /metrics on " + d.cfg.MetricsAddr + " is open; bind it to a private address")
	}
	mux.Handle("GET /metrics", m)
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
	d.ops = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.opsAddr = ln.Addr().String()
	go func() {
		if err := d.ops.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.WithError(err).Error("ops listener failed")
		}
	}()
	d.log.WithField("addr", d.opsAddr).Info("serving /metrics, /healthz and /readyz")
	return nil
}

// OpsAddr is the bound address of the ops listener ("" without one).
func (d *Daemon) OpsAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opsAddr
}

// Package configs loads and validates checkd's configuration.
//
// A configuration is built in three layers, each overriding the one before:
//
//  1. the production defaults, configs/checkd.yaml, embedded in the binary;
//  2. the file given to Load (or named by CHECKD_CONFIG), if any: only the
//     fields it sets change (maps merge key by key, lists replace);
//  3. the environment: CHECKD_REDIS_URL, CHECKD_HTTP_ADDR, CHECKD_API_KEYS
//     (comma-separated), CHECKD_ENCRYPTION_KEY, CHECKD_ENCRYPTION_OLD_KEYS
//     (comma-separated), CHECKD_CHECK_INTERVAL,
//     CHECKD_TICK, CHECKD_ROLES (comma-separated), CHECKD_LOG_LEVEL,
//     CHECKD_PUBLIC_URL, CHECKD_METRICS_ADDR, CHECKD_DASHBOARD_PASSWORD and
//     CHECKD_CHECKER_ALLOW_HTTP (the Env constants), and
//     CHECKD_DATASOURCE_<NAME>_SECRET for each configured datasource. An
//     empty variable is ignored.
//
// Unknown YAML fields are errors (a typo must not silently fall back to a
// default), and every problem of a configuration is reported at once.
//
// checkd.yaml is the only place a default is written. The parts take a
// complete configuration and refuse a zero value that means nothing (their
// New names the field); each reads its own section through one mapping:
// Config.StoreConfig (here, since configs imports store to check keys and
// names), scheduler.ConfigFrom, worker.ConfigFrom, api.ConfigFrom and
// dashboard.OptionsFrom. Where zero means "off" or "none" the file says
// so (worker.emptyQueueRecheck, store.checkBatchWindow: 0s;
// scheduler.maxRetry: 0), and the value reaches the part as written.
package configs

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

//go:embed checkd.yaml demo.yaml
var files embed.FS

// DefaultFile and DemoFile name the embedded configuration files.
const (
	DefaultFile = "checkd.yaml"
	DemoFile    = "demo.yaml"
)

// Environment variables read by Load.
const (
	EnvConfig         = "CHECKD_CONFIG"
	EnvRedisURL       = "CHECKD_REDIS_URL"
	EnvHTTPAddr       = "CHECKD_HTTP_ADDR"
	EnvAPIKeys        = "CHECKD_API_KEYS"
	EnvEncryptionKey  = "CHECKD_ENCRYPTION_KEY"
	EnvEncryptionOld  = "CHECKD_ENCRYPTION_OLD_KEYS"
	EnvCheckInterval  = "CHECKD_CHECK_INTERVAL"
	EnvTick           = "CHECKD_TICK"
	EnvRoles          = "CHECKD_ROLES"
	EnvLogLevel       = "CHECKD_LOG_LEVEL"
	EnvPublicURL      = "CHECKD_PUBLIC_URL"
	EnvMetricsAddr    = "CHECKD_METRICS_ADDR"
	EnvDashboardPass  = "CHECKD_DASHBOARD_PASSWORD"
	EnvWebhookPrivate = "CHECKD_WEBHOOK_ALLOW_PRIVATE"
)

// Roles a checkd process can play.
const (
	RoleScheduler = "scheduler"
	RoleWorker    = "worker"
	RoleAPI       = "api"
)

// AllRoles lists every role, in start order.
var AllRoles = []string{RoleScheduler, RoleWorker, RoleAPI}

// Log formats.
const (
	FormatAuto = "auto" // text on a terminal, JSON otherwise
	FormatJSON = "json"
	FormatText = "text"
)

// MinAPIKeyLen is the shortest API key accepted: shorter ones are guessable.
const MinAPIKeyLen = 16

// MaxDemoConnections bounds the demo data set so a typo cannot fill Redis.
const MaxDemoConnections = 100000

// ErrInvalid marks a configuration that cannot be used.
var ErrInvalid = errors.New("invalid configuration")

// Config is the whole configuration of a checkd process.
type Config struct {
	// RedisURL is redis://[user:password@]host:port/db or rediss://...;
	// empty runs an embedded in-memory Redis (data lost on exit).
	RedisURL string `yaml:"redisURL"`
	// HTTPAddr is where the API listens.
	HTTPAddr string `yaml:"httpAddr"`
	// MaxBodyBytes bounds a request body the API reads.
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// RequestTimeout is each API request's deadline: its Redis calls give
	// up then, and a handler still running a moment later is answered 503.
	RequestTimeout time.Duration `yaml:"requestTimeout"`
	// APIKeys are accepted in the X-API-Key header: the bootstrap keys,
	// with every scope (more are created at runtime: POST /v1/keys).
	APIKeys []string `yaml:"apiKeys"`
	// APIRateLimit bounds each API key's requests in one process.
	APIRateLimit RateLimit `yaml:"apiRateLimit"`
	// EncryptionKey encrypts credentials at rest: 32 bytes as 64 hex
	// characters or base64.
	EncryptionKey string `yaml:"encryptionKey"`
	// EncryptionOldKeys open credentials sealed before a rotation; they
	// never seal. Keep them until the re-encryption reports done.
	EncryptionOldKeys []string `yaml:"encryptionOldKeys"`
	// CheckInterval is how often each connection is checked.
	CheckInterval time.Duration `yaml:"checkInterval"`
	// Tick is the cron spec of the scheduler's sweep of due connections.
	Tick string `yaml:"tick"`
	// Roles this process plays: scheduler, worker, api.
	Roles     []string  `yaml:"roles"`
	Worker    Worker    `yaml:"worker"`
	Scheduler Scheduler `yaml:"scheduler"`
	Sandbox   Sandbox   `yaml:"sandbox"`
	Store     Store     `yaml:"store"`
	Webhooks  Webhooks  `yaml:"webhooks"`
	// Escalation is the automatic escalation to UNDER_INVESTIGATION.
	Escalation Escalation `yaml:"escalation"`
	// Health is datasource health and the outage breaker.
	Health Health `yaml:"health"`
	Log    Log    `yaml:"log"`
	Demo   Demo   `yaml:"demo"`
	// PublicURL is the base of credential-update links given to users;
	// empty means http://<httpAddr>.
	PublicURL string `yaml:"publicURL"`
	// LinkTTL is how long a credential-update link stays valid.
	LinkTTL time.Duration `yaml:"linkTTL"`
	// MetricsAddr, when set, serves /metrics, /healthz and /readyz on a
	// listener of their own: the way a worker-only or scheduler-only process
	// is scraped and probed. With the api role they are also on httpAddr.
	MetricsAddr string    `yaml:"metricsAddr"`
	Dashboard   Dashboard `yaml:"dashboard"`
	// Checkers configures what the checker services share.
	Checkers Checkers `yaml:"checkers"`
	// Datasources are the datasources checked by checker services over
	// the HTTP checker protocol, by name, besides the built-in sandbox, and
	// the operations settings (concurrency cap, health rules) of any
	// datasource, the sandbox's included.
	Datasources map[string]Datasource `yaml:"datasources"`
}

// RateLimit is a token bucket: PerSecond requests a second sustained, up
// to Burst at once.
type RateLimit struct {
	// PerSecond is the sustained rate; 0 turns the limit off.
	PerSecond float64 `yaml:"perSecond"`
	// Burst is how many requests may come at once above the rate (at
	// least 1 when PerSecond is set).
	Burst int `yaml:"burst"`
}

// Dashboard configures the asynqmon queue dashboard at /monitoring/ and
// the admin console at /console/, which share its login.
type Dashboard struct {
	// User is the basic-auth user name.
	User string `yaml:"user"`
	// Password is a basic-auth password besides the API keys (which always
	// work). Env: CHECKD_DASHBOARD_PASSWORD.
	Password string `yaml:"password"`
	// Writable lets the dashboard pause queues and delete or run tasks,
	// and the console act on companies and connections; read-only by
	// default.
	Writable bool `yaml:"writable"`
}

// Worker configures the check workers.
type Worker struct {
	// Concurrency is how many checks run at once in this process.
	Concurrency int `yaml:"concurrency"`
	// Queues maps each queue to its priority weight.
	Queues map[string]int `yaml:"queues"`
	// CheckTimeout bounds one check.
	CheckTimeout time.Duration `yaml:"checkTimeout"`
	// ShutdownTimeout is how long running checks may finish on stop.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
	// EmptyQueueRecheck is how long a queue found empty is not asked again
	// while another queue hands out tasks (worker.Config); 0 is off: every
	// dequeue asks Redis, as asynq alone does.
	EmptyQueueRecheck time.Duration `yaml:"emptyQueueRecheck"`
}

// Scheduler configures the sweep of due connections.
type Scheduler struct {
	// BatchSize is how many due connections one claim takes.
	BatchSize int `yaml:"batchSize"`
	// MaxPerTick bounds the checks enqueued per tick (catch-up after downtime).
	MaxPerTick int `yaml:"maxPerTick"`
	// Lease is how long claimed connections stay hidden from other schedulers.
	Lease time.Duration `yaml:"lease"`
	// EnqueueConcurrency is how many enqueues run at once.
	EnqueueConcurrency int `yaml:"enqueueConcurrency"`
	// TaskTimeout bounds a check task in asynq.
	TaskTimeout time.Duration `yaml:"taskTimeout"`
	// MaxRetry is how often a failed check task is retried.
	MaxRetry int `yaml:"maxRetry"`
}

// Sandbox configures the sandbox datasource.
type Sandbox struct {
	// Latency is how long a sandbox check pretends to take.
	Latency time.Duration `yaml:"latency"`
}

// Store configures persistence.
type Store struct {
	// HistoryLimit bounds each connection's status history, in elements
	// (one per write that changed a status).
	HistoryLimit int `yaml:"historyLimit"`
	// EventsMaxLen caps the change-event stream (approximately).
	EventsMaxLen int64 `yaml:"eventsMaxLen"`
	// AutoTrack tracks newly discovered accounts at once (demos).
	AutoTrack bool `yaml:"autoTrack"`
	// QueuedTTL bounds how long a connection counts as having a check
	// queued or running.
	QueuedTTL time.Duration `yaml:"queuedTTL"`
	// CheckBatchWindow is how long a check's (or a webhook attempt's)
	// store call waits for others to share its round trip (store.Config);
	// 0 is off: never wait.
	CheckBatchWindow time.Duration `yaml:"checkBatchWindow"`
}

// Webhooks configures the delivery of change events to webhook endpoints.
type Webhooks struct {
	// AllowPrivate allows http endpoints and any address (development).
	// Env: CHECKD_WEBHOOK_ALLOW_PRIVATE.
	AllowPrivate bool `yaml:"allowPrivate"`
	// Concurrency is how many attempts run at once in a worker process;
	// PerEndpoint bounds those to one endpoint.
	Concurrency int `yaml:"concurrency"`
	PerEndpoint int `yaml:"perEndpoint"`
	// Servers is how many asynq servers share Concurrency in a worker
	// process: each takes one task per Redis round trip.
	Servers int `yaml:"servers"`
	// Timeout bounds one attempt.
	Timeout time.Duration `yaml:"timeout"`
	// RetrySchedule is the delay before each attempt, from the previous
	// failure; RetryJitter spreads each by that fraction either way.
	RetrySchedule []time.Duration `yaml:"retrySchedule"`
	RetryJitter   float64         `yaml:"retryJitter"`
	// DisableAfter disables an endpoint failing for that long.
	DisableAfter time.Duration `yaml:"disableAfter"`
	// Retention is how long messages and attempts are kept.
	Retention time.Duration `yaml:"retention"`
	// RotationGrace is how long a rotated-out secret keeps signing.
	RotationGrace time.Duration `yaml:"rotationGrace"`
	// PollInterval is how often an idle deliverer looks for work.
	PollInterval time.Duration    `yaml:"pollInterval"`
	Dispatch     WebhooksDispatch `yaml:"dispatch"`
}

// WebhooksDispatch configures the dispatcher of change events.
type WebhooksDispatch struct {
	BatchSize          int           `yaml:"batchSize"`
	Block              time.Duration `yaml:"block"`
	ClaimIdle          time.Duration `yaml:"claimIdle"`
	EnqueueConcurrency int           `yaml:"enqueueConcurrency"`
}

// Escalation configures the automatic escalation of failing connections
// to UNDER_INVESTIGATION (store.Escalation).
type Escalation struct {
	// Enabled turns it on.
	Enabled bool `yaml:"enabled"`
	// Failures is how many provider-side errors in a row escalate.
	Failures int `yaml:"failures"`
	// After is how long without a successful check escalates.
	After time.Duration `yaml:"after"`
}

// Health configures datasource health, the outage breaker and how capped
// checks wait (its rules: store.HealthRules).
type Health struct {
	Enabled           bool `yaml:"enabled"`
	store.HealthRules `yaml:",inline"`
	// RecheckPerTick bounds the connections not attempted that one
	// scheduler tick enqueues again after a breaker closed.
	RecheckPerTick int `yaml:"recheckPerTick"`
	// SlotRetry is how long a check without a concurrency slot waits.
	SlotRetry time.Duration `yaml:"slotRetry"`
}

// Log configures logging.
type Log struct {
	// Level is a logrus level: trace, debug, info, warn, error.
	Level string `yaml:"level"`
	// Format is auto, json or text.
	Format string `yaml:"format"`
}

// Demo configures the demo data seeded into an empty store.
type Demo struct {
	Enabled   bool          `yaml:"enabled"`
	Companies []DemoCompany `yaml:"companies"`
}

// DemoCompany is one demo company and how many sandbox connections it gets
// per sandbox username (user_good, error_PASSWORD_INCORRECT, ...).
type DemoCompany struct {
	Name        string         `yaml:"name"`
	Connections map[string]int `yaml:"connections"`
	// AutoTrack, when set, decides for this company whether discovered
	// accounts are tracked at once (store.autoTrack otherwise): false
	// leaves them DETECTED, to confirm or reject.
	AutoTrack *bool `yaml:"autoTrack"`
}

// Has reports whether the configuration includes a role.
func (c Config) Has(role string) bool { return slices.Contains(c.Roles, role) }

// Embedded reports whether the configuration runs on an embedded Redis.
func (c Config) Embedded() bool { return c.RedisURL == "" }

// Redacted returns a copy safe to log: secrets are masked.
func (c Config) Redacted() Config {
	out := c
	if c.EncryptionKey != "" {
		out.EncryptionKey = "<redacted>"
	}
	if len(c.EncryptionOldKeys) > 0 {
		out.EncryptionOldKeys = make([]string, len(c.EncryptionOldKeys))
		for i := range out.EncryptionOldKeys {
			out.EncryptionOldKeys[i] = "<redacted>"
		}
	}
	if c.Dashboard.Password != "" {
		out.Dashboard.Password = "<redacted>"
	}
	out.redactDatasources()
	if len(c.APIKeys) > 0 {
		out.APIKeys = make([]string, len(c.APIKeys))
		for i := range out.APIKeys {
			out.APIKeys[i] = "<redacted>"
		}
	}
	if u, err := url.Parse(c.RedisURL); err == nil {
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "redacted")
			}
		}
		if q := u.Query(); q.Has("sentinelPassword") {
			q.Set("sentinelPassword", "redacted")
			u.RawQuery = q.Encode()
		}
		out.RedisURL = u.String()
	} else if c.RedisURL != "" {
		out.RedisURL = "<unparsable, redacted>"
	}
	return out
}

// StoreConfig returns the store's settings: store.New's Config without the
// Cipher and Clock, which the caller adds. (The other parts map their own
// sections, scheduler.ConfigFrom and the like; this one lives here because
// configs imports store to validate keys and names.)
func (c Config) StoreConfig() store.Config {
	return store.Config{Interval: c.CheckInterval, HistoryLimit: c.Store.HistoryLimit, EventsMaxLen: c.Store.EventsMaxLen,
		AutoTrack: c.Store.AutoTrack, QueuedTTL: c.Store.QueuedTTL, CheckBatchWindow: c.Store.CheckBatchWindow,
		Escalation: store.Escalation(c.Escalation)}
}

// Default returns the embedded production defaults.
func Default() Config {
	c, err := Parse(nil)
	if err != nil {
		panic(fmt.Sprintf("configs: embedded %s is invalid: %v", DefaultFile, err)) // caught by the tests
	}
	return c
}

// EmbeddedFile returns an embedded configuration file (DefaultFile, DemoFile).
func EmbeddedFile(name string) ([]byte, error) { return files.ReadFile(name) }

// Load builds the configuration: embedded defaults, then the file at path
// (or at $CHECKD_CONFIG when path is empty), then environment overrides;
// the result is validated.
func Load(path string) (Config, error) { return load(path, os.Getenv) }

func load(path string, getenv func(string) string) (Config, error) {
	if path == "" {
		path = getenv(EnvConfig)
	}
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return Config{}, fmt.Errorf("read config file (set with -config or %s): %w", EnvConfig, err)
		}
	}
	c, p, err := parse(data)
	if err != nil {
		// The environment's problems too, read over the defaults.
		d := Default()
		if p := d.applyEnv(getenv); len(p) > 0 {
			err = fmt.Errorf("%w; %s", err, strings.Join(p, "; "))
		}
		return Config{}, withSource(err, path)
	}
	// Every problem at once: the file's mistyped values (which keep their
	// defaults), the environment's and the result's.
	p = append(p, c.applyEnv(getenv)...)
	c.normalize()
	p = append(p, c.problems()...)
	if len(p) > 0 {
		return Config{}, withSource(fmt.Errorf("%w: %s", ErrInvalid, strings.Join(p, "; ")), path)
	}
	return c, nil
}

func withSource(err error, path string) error {
	if path == "" {
		return fmt.Errorf("%w (embedded defaults and environment)", err)
	}
	return fmt.Errorf("%w (file %s and environment)", err, path)
}

// Parse returns the embedded defaults overridden by the YAML in data (which
// may be empty), validated. It ignores the environment.
func Parse(data []byte) (Config, error) {
	c, p, err := parse(data)
	if err != nil {
		return Config{}, err
	}
	c.normalize()
	p = append(p, c.problems()...)
	if len(p) > 0 {
		return Config{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(p, "; "))
	}
	return c, nil
}

// parse decodes the embedded defaults, then data on top. Values of data
// that do not decode (a mistyped field, an unknown one) are listed in
// problems and leave c's value as it was, so the rest is still read and
// checked; err is a file that cannot be read at all (not YAML, not a
// mapping).
func parse(data []byte) (c Config, p problems, err error) {
	def, err := files.ReadFile(DefaultFile)
	if err != nil {
		return Config{}, nil, fmt.Errorf("read embedded %s: %w", DefaultFile, err)
	}
	if p, err := decode(def, &c); err != nil || len(p) > 0 {
		return Config{}, nil, fmt.Errorf("embedded %s: %w", DefaultFile, errors.Join(err, errors.New(strings.Join(p, "; "))))
	}
	if p, err = decode(data, &c); err != nil {
		return Config{}, nil, err
	}
	return c, p, nil
}

// decode strictly decodes one YAML document onto c. yaml.v3 goes on past
// values it cannot decode and lists them in a *yaml.TypeError, which decode
// returns as problems; any other failure is an error.
func decode(data []byte, c *Config) (problems, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if errors.Is(err, io.EOF) {
		return nil, nil // empty document: nothing to override
	}
	var p problems
	var te *yaml.TypeError
	switch {
	case errors.As(err, &te):
		for _, msg := range te.Errors {
			if strings.Contains(msg, "time.Duration") {
				msg += " (durations are strings such as 500ms, 30s, 5m or 168h)"
			}
			p = append(p, msg)
		}
	case err != nil:
		return nil, fmt.Errorf("%w: %s", ErrInvalid, err)
	}
	// A second document is almost certainly a mistake (a stray ---).
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		p.add("the file must hold exactly one YAML document")
	}
	return p, nil
}

// envVars are the environment variables Load reads, each with how it sets
// its field; set fails on a value it cannot read.
var envVars = []struct {
	name string
	set  func(c *Config, v string) error
}{
	{EnvRedisURL, func(c *Config, v string) error { c.RedisURL = v; return nil }},
	{EnvHTTPAddr, func(c *Config, v string) error { c.HTTPAddr = v; return nil }},
	{EnvAPIKeys, func(c *Config, v string) error { c.APIKeys = splitList(v); return nil }},
	{EnvEncryptionKey, func(c *Config, v string) error { c.EncryptionKey = v; return nil }},
	{EnvEncryptionOld, func(c *Config, v string) error { c.EncryptionOldKeys = splitList(v); return nil }},
	{EnvCheckInterval, func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%s=%q is not a duration (use e.g. 168h, 10m)", EnvCheckInterval, v)
		}
		c.CheckInterval = d
		return nil
	}},
	{EnvTick, func(c *Config, v string) error { c.Tick = v; return nil }},
	{EnvRoles, func(c *Config, v string) error { c.Roles = splitList(v); return nil }},
	{EnvLogLevel, func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{EnvPublicURL, func(c *Config, v string) error { c.PublicURL = v; return nil }},
	{EnvMetricsAddr, func(c *Config, v string) error { c.MetricsAddr = v; return nil }},
	{EnvDashboardPass, func(c *Config, v string) error { c.Dashboard.Password = v; return nil }},
	{EnvWebhookPrivate, envBool(EnvWebhookPrivate, func(c *Config) *bool { return &c.Webhooks.AllowPrivate })},
	{EnvCheckerAllowHTTP, envBool(EnvCheckerAllowHTTP, func(c *Config) *bool { return &c.Checkers.AllowHTTP })},
}

// envBool sets the switch field gives from the environment variable
// name: true or false (strconv.ParseBool's spellings).
func envBool(name string, field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%s=%q is not true or false", name, v)
		}
		*field(c) = b
		return nil
	}
}

// applyEnv overrides c with the CHECKD_* environment variables that are set
// and lists the values it could not read (which leave c's value as it was).
func (c *Config) applyEnv(getenv func(string) string) problems {
	var p problems
	for _, e := range envVars {
		if v := getenv(e.name); v != "" {
			if err := e.set(c, v); err != nil {
				p.add("%v", err)
			}
		}
	}
	c.applyDatasourceSecrets(getenv)
	return p
}

// splitList splits a comma-separated list, trimming blanks and dropping
// empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// normalize trims list items and drops empty ones, so "a, b," and YAML
// lists mean the same, and an empty list is nil.
func (c *Config) normalize() {
	c.APIKeys = splitList(strings.Join(c.APIKeys, ","))
	c.Roles = splitList(strings.ToLower(strings.Join(c.Roles, ",")))
	c.Tick = strings.TrimSpace(c.Tick)
	c.HTTPAddr = strings.TrimSpace(c.HTTPAddr)
	c.MetricsAddr = strings.TrimSpace(c.MetricsAddr)
	c.PublicURL = strings.TrimRight(strings.TrimSpace(c.PublicURL), "/")
	c.RedisURL = strings.TrimSpace(c.RedisURL)
	c.EncryptionKey = strings.TrimSpace(c.EncryptionKey)
	c.EncryptionOldKeys = splitList(strings.Join(c.EncryptionOldKeys, ","))
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))
	c.Log.Format = strings.ToLower(strings.TrimSpace(c.Log.Format))
	c.normalizeDatasources()
	if len(c.Demo.Companies) == 0 {
		c.Demo.Companies = nil
	}
	for i := range c.Demo.Companies {
		if len(c.Demo.Companies[i].Connections) == 0 {
			c.Demo.Companies[i].Connections = nil
		}
	}
}

// Warnings lists settings that run but probably not as meant (the daemon
// logs them at start).
func (c Config) Warnings() []string {
	var w []string
	if c.Has(RoleWorker) && c.Worker.CheckTimeout > c.CheckInterval {
		w = append(w, fmt.Sprintf("checkInterval %s is shorter than worker.checkTimeout %s: a slow check can still run when its connection's next one starts, and both log in at the provider",
			c.CheckInterval, c.Worker.CheckTimeout))
	}
	return w
}

// Validate reports every problem of the configuration in one error wrapping
// ErrInvalid. Secrets are never quoted.
func (c Config) Validate() error {
	if p := c.problems(); len(p) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(p, "; "))
	}
	return nil
}

// problems lists what Validate reports, section by section.
func (c Config) problems() problems {
	var p problems
	c.serviceProblems(&p)
	c.roleProblems(&p)
	c.Worker.problems(&p)
	c.Scheduler.problems(&p, c.Worker)
	if c.Sandbox.Latency < 0 {
		p.add("sandbox.latency is %s; use 0s or more", c.Sandbox.Latency)
	}
	c.datasourceProblems(&p)
	c.Store.problems(&p)
	c.Webhooks.problems(&p)
	if c.Health.Enabled {
		if err := c.Health.HealthRules.Validate("health"); err != nil {
			p.add("%v", err)
		}
		p.positive("health.recheckPerTick", c.Health.RecheckPerTick)
	}
	p.positiveDur("health.slotRetry", c.Health.SlotRetry)
	if c.Escalation.Enabled {
		p.positive("escalation.failures", c.Escalation.Failures)
		if c.Escalation.After < 0 {
			p.add("escalation.after is %s; use 0s or more", c.Escalation.After)
		}
	}
	c.Log.problems(&p)
	c.Demo.problems(&p)
	return p
}

// serviceProblems checks the top-level settings of what the process
// talks to and serves: Redis, its listeners, keys and links.
func (c Config) serviceProblems(p *problems) {
	if c.RedisURL != "" {
		if _, err := ParseRedisURL(c.RedisURL); err != nil {
			p.add("redisURL (%s) is not a Redis URL: %v; want redis://[user:password@]host:port/db, rediss://..., or redis+sentinel://[user:password@]host:26379[,host:26379...]/master[/db]", EnvRedisURL, err)
		}
	}
	if c.Has(RoleAPI) {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			p.add("httpAddr (%s) %q is not host:port, e.g. 127.0.0.1:8080", EnvHTTPAddr, c.HTTPAddr)
		}
	}
	if c.MaxBodyBytes <= 0 {
		p.add("maxBodyBytes is %d; it must be positive (default 1048576)", c.MaxBodyBytes)
	}
	if c.RequestTimeout <= 0 || c.RequestTimeout > time.Minute {
		p.add("requestTimeout is %s; use between 1ms and 1m (default 2s: every route answers within 2.5s)", c.RequestTimeout)
	}
	for i, k := range c.APIKeys {
		if len(k) < MinAPIKeyLen {
			p.add("apiKeys (%s) entry %d is %d characters; use at least %d (generate one with: openssl rand -hex 16)", EnvAPIKeys, i+1, len(k), MinAPIKeyLen)
		}
	}
	if l := c.APIRateLimit; l.PerSecond < 0 || l.PerSecond > 0 && l.Burst < 1 {
		p.add("apiRateLimit is %g per second with a burst of %d; give perSecond ≥ 0 (0: no limit) and, with a rate, a burst of at least 1 (default 20 and 40)", l.PerSecond, l.Burst)
	}
	if c.EncryptionKey != "" {
		if _, err := store.ParseKey(c.EncryptionKey); err != nil {
			p.add("encryptionKey (%s): %v", EnvEncryptionKey, err)
		}
	}
	if len(c.EncryptionOldKeys) > 0 && c.EncryptionKey == "" {
		p.add("encryptionOldKeys (%s) is set without encryptionKey (%s): old keys only open credentials; set the key new ones are sealed with", EnvEncryptionOld, EnvEncryptionKey)
	}
	for i, k := range c.EncryptionOldKeys {
		if _, err := store.ParseKey(k); err != nil {
			p.add("encryptionOldKeys (%s) entry %d: %v", EnvEncryptionOld, i+1, err)
		}
	}
	// The embedded Redis makes up what is missing (a throwaway key, a
	// generated API key); a Redis that outlives the process cannot.
	if !c.Embedded() && c.EncryptionKey == "" {
		p.add("%s is required with an external Redis (%s): credentials encrypted with a throwaway key could not be decrypted after a restart; generate a key with: openssl rand -hex 32",
			EnvEncryptionKey, EnvRedisURL)
	}
	if !c.Embedded() && c.Has(RoleAPI) && len(c.APIKeys) == 0 {
		p.add("the api role needs at least one API key: set %s (comma-separated; generate one with: openssl rand -hex 16)", EnvAPIKeys)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			p.add("metricsAddr (%s) %q is not host:port, e.g. 127.0.0.1:9090", EnvMetricsAddr, c.MetricsAddr)
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("publicURL (%s) %q is not an http(s) URL such as https://checkd.example.com", EnvPublicURL, c.PublicURL)
		}
	}
	if c.LinkTTL < time.Minute || c.LinkTTL > 30*24*time.Hour {
		p.add("linkTTL is %s; use between 1m and 720h (default 24h)", c.LinkTTL)
	}
}

// roleProblems checks what the process does and how often: the check
// interval, the scheduler's tick and the roles.
func (c Config) roleProblems(p *problems) {
	if c.CheckInterval < time.Second {
		p.add("checkInterval (%s) is %s; use at least 1s (production: 168h)", EnvCheckInterval, c.CheckInterval)
	}
	if c.Has(RoleScheduler) {
		if c.Tick == "" {
			p.add("tick (%s) is empty; use a cron spec such as @every 1m", EnvTick)
		} else if _, err := cron.ParseStandard(c.Tick); err != nil {
			p.add("tick (%s) %q is not a cron spec (use e.g. @every 1m or */5 * * * *): %v", EnvTick, c.Tick, err)
		}
	}
	if len(c.Roles) == 0 {
		p.add("roles (%s) is empty; use any of %s", EnvRoles, strings.Join(AllRoles, ","))
	}
	seen := map[string]bool{}
	for _, r := range c.Roles {
		switch {
		case !slices.Contains(AllRoles, r):
			p.add("roles (%s) has unknown role %q; use any of %s", EnvRoles, r, strings.Join(AllRoles, ","))
		case seen[r]:
			p.add("roles (%s) lists %q twice", EnvRoles, r)
		}
		seen[r] = true
	}
}

func (w Worker) problems(p *problems) {
	p.positive("worker.concurrency", w.Concurrency)
	p.positiveDur("worker.checkTimeout", w.CheckTimeout)
	p.positiveDur("worker.shutdownTimeout", w.ShutdownTimeout)
	if w.EmptyQueueRecheck < 0 || w.EmptyQueueRecheck > maxEmptyQueueRecheck {
		p.add("worker.emptyQueueRecheck is %s; it must be between 0 (off) and %s: an on-demand check arriving in an empty queue waits up to that long", w.EmptyQueueRecheck, maxEmptyQueueRecheck)
	}
	for q, wt := range w.Queues {
		if !slices.Contains(tasks.Queues, q) {
			p.add("worker.queues has unknown queue %q; the queues are %s", q, strings.Join(tasks.Queues, ", "))
		} else if wt <= 0 {
			p.add("worker.queues.%s is %d; weights must be positive", q, wt)
		}
	}
	for _, q := range tasks.Queues {
		if _, ok := w.Queues[q]; !ok {
			p.add("worker.queues lacks queue %q: its checks would never run", q)
		}
	}
}

// problems checks the scheduler section; w is the worker section, whose
// check timeout a task's timeout must exceed.
func (s Scheduler) problems(p *problems, w Worker) {
	p.positive("scheduler.batchSize", s.BatchSize)
	p.positive("scheduler.maxPerTick", s.MaxPerTick)
	p.positiveDur("scheduler.lease", s.Lease)
	p.positive("scheduler.enqueueConcurrency", s.EnqueueConcurrency)
	p.positiveDur("scheduler.taskTimeout", s.TaskTimeout)
	if s.TaskTimeout > 0 && s.TaskTimeout%time.Second != 0 {
		p.add("scheduler.taskTimeout (%s) must be whole seconds: asynq keeps a task's timeout in seconds and would cut it to %s", s.TaskTimeout, s.TaskTimeout.Truncate(time.Second))
	}
	if s.TaskTimeout > 0 && w.CheckTimeout > 0 && s.TaskTimeout <= w.CheckTimeout {
		p.add("scheduler.taskTimeout (%s) must exceed worker.checkTimeout (%s): a check that times out is recorded only if its task outlives it", s.TaskTimeout, w.CheckTimeout)
	}
	if s.MaxRetry < 0 {
		p.add("scheduler.maxRetry is %d; use 0 or more", s.MaxRetry)
	}
}

func (s Store) problems(p *problems) {
	p.positive("store.historyLimit", s.HistoryLimit)
	if s.EventsMaxLen <= 0 {
		p.add("store.eventsMaxLen is %d; it must be positive", s.EventsMaxLen)
	}
	p.positiveDur("store.queuedTTL", s.QueuedTTL)
	if s.CheckBatchWindow < 0 {
		p.add("store.checkBatchWindow is %s; use 0s (never wait) or more", s.CheckBatchWindow)
	}
}

func (l Log) problems(p *problems) {
	if _, err := logrus.ParseLevel(l.Level); err != nil {
		p.add("log.level (%s) %q is not a level; use trace, debug, info, warn or error", EnvLogLevel, l.Level)
	}
	switch l.Format {
	case FormatAuto, FormatJSON, FormatText:
	default:
		p.add("log.format %q is not auto, json or text", l.Format)
	}
}

func (d Demo) problems(p *problems) {
	total := 0
	for i, co := range d.Companies {
		if strings.TrimSpace(co.Name) == "" || len(co.Name) > store.MaxNameLen {
			p.add("demo.companies[%d].name is required and at most %d bytes", i, store.MaxNameLen)
		}
		for user, n := range co.Connections {
			switch {
			case strings.TrimSpace(user) == "" || len(user) > store.MaxCredentialLen:
				p.add("demo.companies[%d].connections has an empty or overlong username", i)
			case n < 0:
				p.add("demo.companies[%d].connections.%s is %d; counts must be 0 or more", i, user, n)
			default:
				total += n
			}
		}
	}
	if total > MaxDemoConnections {
		p.add("demo has %d connections; at most %d", total, MaxDemoConnections)
	}
}

// maxRetrySchedule bounds webhooks.retrySchedule.
const maxRetrySchedule = 20

func (w Webhooks) problems(p *problems) {
	p.positive("webhooks.concurrency", w.Concurrency)
	p.positive("webhooks.perEndpoint", w.PerEndpoint)
	if w.Servers <= 0 || w.Servers > w.Concurrency && w.Concurrency > 0 {
		p.add("webhooks.servers is %d; use 1 to webhooks.concurrency (%d), default 3", w.Servers, w.Concurrency)
	}
	if w.PerEndpoint > w.Concurrency && w.Concurrency > 0 {
		p.add("webhooks.perEndpoint (%d) is more than webhooks.concurrency (%d): one slow endpoint could take every delivery slot", w.PerEndpoint, w.Concurrency)
	}
	if w.Timeout < time.Second || w.Timeout > 5*time.Minute {
		p.add("webhooks.timeout is %s; use between 1s and 5m (default 15s)", w.Timeout)
	}
	if len(w.RetrySchedule) == 0 || len(w.RetrySchedule) > maxRetrySchedule {
		p.add("webhooks.retrySchedule has %d delays; give 1 to %d (default [0s, 5s, 5m, 30m, 2h, 5h, 10h, 10h])", len(w.RetrySchedule), maxRetrySchedule)
	}
	for i, d := range w.RetrySchedule {
		if d < 0 || d > 24*time.Hour {
			p.add("webhooks.retrySchedule[%d] is %s; delays are between 0s and 24h", i, d)
		}
	}
	if w.RetryJitter < 0 || w.RetryJitter >= 1 {
		p.add("webhooks.retryJitter is %v; use a fraction in [0, 1), e.g. 0.2 for +-20%%", w.RetryJitter)
	}
	p.positiveDur("webhooks.disableAfter", w.DisableAfter)
	if w.Retention < time.Hour {
		p.add("webhooks.retention is %s; keep messages at least 1h (default 720h)", w.Retention)
	}
	if w.RotationGrace < 0 {
		p.add("webhooks.rotationGrace is %s; use 0s or more", w.RotationGrace)
	}
	p.positiveDur("webhooks.pollInterval", w.PollInterval)
	p.positive("webhooks.dispatch.batchSize", w.Dispatch.BatchSize)
	p.positiveDur("webhooks.dispatch.block", w.Dispatch.Block)
	p.positiveDur("webhooks.dispatch.claimIdle", w.Dispatch.ClaimIdle)
	p.positive("webhooks.dispatch.enqueueConcurrency", w.Dispatch.EnqueueConcurrency)
}

type problems []string

// maxEmptyQueueRecheck bounds worker.emptyQueueRecheck: asynq itself
// looks at its queues again a second after finding them all empty.
const maxEmptyQueueRecheck = time.Second

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p *problems) positive(name string, v int) {
	if v <= 0 {
		p.add("%s is %d; it must be positive", name, v)
	}
}

func (p *problems) positiveDur(name string, v time.Duration) {
	if v <= 0 {
		p.add("%s is %s; it must be positive (e.g. 30s)", name, v)
	}
}

// urlError drops the URL from a url.Error: it may hold a password.
func urlError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

package configs

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// env is a fake environment for load, so tests stay parallel.
func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

const testKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// testKey2 is a second valid key (an old one in a rotation).
const testKey2 = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := load("", env(nil))
	if err != nil {
		t.Fatalf("load defaults: %v", err)
	}
	want := Config{
		HTTPAddr:       "127.0.0.1:8080",
		MaxBodyBytes:   1 << 20,
		RequestTimeout: 2 * time.Second,
		APIRateLimit:   RateLimit{PerSecond: 20, Burst: 40},
		CheckInterval:  168 * time.Hour,
		Tick:           "@every 1m",
		Roles:          []string{RoleScheduler, RoleWorker, RoleAPI},
		Worker: Worker{Concurrency: 20, Queues: map[string]int{"critical": 6, "default": 3, "low": 1},
			CheckTimeout: 2 * time.Minute, ShutdownTimeout: 30 * time.Second, EmptyQueueRecheck: 5 * time.Millisecond},
		Scheduler: Scheduler{BatchSize: 500, MaxPerTick: 10000, Lease: 5 * time.Minute, EnqueueConcurrency: 32,
			TaskTimeout: 5 * time.Minute, MaxRetry: 3},
		Store: Store{HistoryLimit: 100, EventsMaxLen: 100000, QueuedTTL: 15 * time.Minute, CheckBatchWindow: time.Millisecond},
		Webhooks: Webhooks{Concurrency: 20, PerEndpoint: 5, Servers: 3, Timeout: 15 * time.Second,
			RetrySchedule: []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour},
			RetryJitter:   0.2, DisableAfter: 5 * 24 * time.Hour, Retention: 30 * 24 * time.Hour, RotationGrace: 24 * time.Hour,
			PollInterval: 100 * time.Millisecond, Dispatch: WebhooksDispatch{BatchSize: 500, Block: time.Second, ClaimIdle: time.Minute, EnqueueConcurrency: 32}},
		Escalation: Escalation{Enabled: true, Failures: 3, After: 14 * 24 * time.Hour},
		Health: Health{Enabled: true, HealthRules: store.HealthRules{Window: 15 * time.Minute, MinChecks: 20, DownRatio: 0.8,
			DegradedRatio: 0.3, ProbesPerMinute: 3}, RecheckPerTick: 5000, SlotRetry: time.Second},
		Log:       Log{Level: "info", Format: FormatAuto},
		LinkTTL:   24 * time.Hour,
		Dashboard: Dashboard{User: "admin"},
		Checkers:  Checkers{Defaults: DatasourceDefaults{Timeout: 90 * time.Second}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if !reflect.DeepEqual(Default(), want) {
		t.Errorf("Default() differs from load with no file and no environment")
	}
	if !c.Embedded() || !c.Has(RoleAPI) || c.Has("nope") {
		t.Errorf("Embedded/Has wrong on defaults")
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	demo, err := load(filepath.Join(".", DemoFile), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  func() Config
		want string // "" : no warning
	}{
		{"defaults", Default, ""},
		{"the demo", func() Config { return demo }, ""},
		{"an interval shorter than a check", func() Config {
			c := Default()
			c.CheckInterval = time.Minute
			return c
		}, "checkInterval 1m0s is shorter than worker.checkTimeout 2m0s"},
		{"the same without the worker role", func() Config {
			c := Default()
			c.CheckInterval, c.Roles = time.Minute, []string{RoleScheduler, RoleAPI}
			return c
		}, ""},
	} {
		w := strings.Join(tc.cfg().Warnings(), "\n")
		if tc.want == "" && w != "" || !strings.Contains(w, tc.want) {
			t.Errorf("%s: warnings %q, want %q", tc.name, w, tc.want)
		}
	}
}

func TestDemoFile(t *testing.T) {
	t.Parallel()
	c, err := load(filepath.Join(".", DemoFile), env(nil))
	if err != nil {
		t.Fatalf("load demo.yaml: %v", err)
	}
	if c.CheckInterval != 2*time.Minute || c.Tick != "@every 5s" || !c.Store.AutoTrack || c.Sandbox.Latency != 200*time.Millisecond {
		t.Errorf("demo overrides not applied: %+v", c)
	}
	if !c.Demo.Enabled || len(c.Demo.Companies) < 3 || len(c.Demo.Companies) > 5 {
		t.Fatalf("demo wants 3-5 companies, got %+v", c.Demo)
	}
	// One leaves discovered accounts to confirm or reject, as the docs
	// show in make run.
	manual := 0
	for _, co := range c.Demo.Companies {
		if co.AutoTrack != nil && !*co.AutoTrack {
			manual++
		}
	}
	if manual != 1 {
		t.Errorf("demo wants one company with autoTrack false, got %d", manual)
	}
	total, good := 0, 0
	for _, co := range c.Demo.Companies {
		for u, n := range co.Connections {
			total += n
			if u == "user_good" {
				good += n
			}
		}
	}
	if total < 200 || total > 999 || good*2 < total {
		t.Errorf("demo wants a few hundred connections, mostly user_good: total %d, user_good %d", total, good)
	}
	// Fields demo.yaml leaves alone keep the defaults. The worker weighs
	// the check queues only: the webhooks queue has the deliverer's asynq
	// server of its own (webhooks.concurrency).
	def := Default()
	if c.HTTPAddr != "127.0.0.1:8080" || c.Scheduler.BatchSize != 500 || !maps.Equal(c.Worker.Queues, def.Worker.Queues) {
		t.Errorf("defaults lost under demo.yaml: %+v", c)
	}
	if got := slices.Sorted(maps.Keys(c.Worker.Queues)); !slices.Equal(got, slices.Sorted(slices.Values(tasks.Queues))) || slices.Contains(got, tasks.QueueWebhooks) {
		t.Errorf("the demo's worker serves queues %v, want the check queues %v", got, tasks.Queues)
	}
	// The demo turns allowPrivate on (a local receiver: checkctl webhooks
	// listen) and leaves the rest of the webhooks section alone.
	wantHooks := def.Webhooks
	wantHooks.AllowPrivate = true
	if !reflect.DeepEqual(c.Webhooks, wantHooks) {
		t.Errorf("demo webhooks %+v, want the defaults with allowPrivate %+v", c.Webhooks, wantHooks)
	}
	// The embedded copy is the same file.
	b, err := EmbeddedFile(DemoFile)
	if err != nil {
		t.Fatal(err)
	}
	disk, _ := os.ReadFile(DemoFile)
	if string(b) != string(disk) {
		t.Errorf("embedded demo.yaml differs from the file")
	}
}

func TestConfigFromEnvPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("httpAddr: 0.0.0.0:9000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load("", env(map[string]string{EnvConfig: p}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "0.0.0.0:9000" {
		t.Errorf("CHECKD_CONFIG file not read: httpAddr %q", c.HTTPAddr)
	}
	// An explicit path wins over CHECKD_CONFIG.
	c, err = load(DemoFile, env(map[string]string{EnvConfig: p}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || !c.Demo.Enabled {
		t.Errorf("path argument should win over %s", EnvConfig)
	}
	if _, err := load(filepath.Join(dir, "missing.yaml"), env(nil)); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: want an error naming it, got %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   map[string]string
		check func(Config) bool
	}{
		{"redis url", map[string]string{EnvRedisURL: "redis://:pw@10.0.0.1:6380/2", EnvEncryptionKey: testKey, EnvAPIKeys: "aaaaaaaaaaaaaaaa"},
			func(c Config) bool { return c.RedisURL == "redis://:pw@10.0.0.1:6380/2" && !c.Embedded() }},
		{"http addr", map[string]string{EnvHTTPAddr: "0.0.0.0:80"},
			func(c Config) bool { return c.HTTPAddr == "0.0.0.0:80" }},
		{"api keys trimmed", map[string]string{EnvAPIKeys: " aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb ,"},
			func(c Config) bool {
				return reflect.DeepEqual(c.APIKeys, []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"})
			}},
		{"encryption key", map[string]string{EnvEncryptionKey: testKey},
			func(c Config) bool { return c.EncryptionKey == testKey }},
		{"old encryption keys", map[string]string{EnvEncryptionKey: testKey, EnvEncryptionOld: " " + testKey2 + ", ," + testKey + " "},
			func(c Config) bool { return reflect.DeepEqual(c.EncryptionOldKeys, []string{testKey2, testKey}) }},
		{"check interval", map[string]string{EnvCheckInterval: "10m"},
			func(c Config) bool { return c.CheckInterval == 10*time.Minute }},
		{"tick", map[string]string{EnvTick: "*/5 * * * *"},
			func(c Config) bool { return c.Tick == "*/5 * * * *" }},
		{"roles", map[string]string{EnvRoles: "Worker, api"},
			func(c Config) bool { return reflect.DeepEqual(c.Roles, []string{RoleWorker, RoleAPI}) }},
		{"worker only needs no tick", map[string]string{EnvRoles: "worker", EnvTick: "not a spec", EnvHTTPAddr: "nonsense"},
			func(c Config) bool { return !c.Has(RoleScheduler) && !c.Has(RoleAPI) }},
		{"log level", map[string]string{EnvLogLevel: "DEBUG"},
			func(c Config) bool { return c.Log.Level == "debug" }},
		{"public url", map[string]string{EnvPublicURL: "https://checkd.example.com/"},
			func(c Config) bool { return c.PublicURL == "https://checkd.example.com" }},
		{"metrics addr", map[string]string{EnvMetricsAddr: "127.0.0.1:9090"},
			func(c Config) bool { return c.MetricsAddr == "127.0.0.1:9090" }},
		{"dashboard password", map[string]string{EnvDashboardPass: "correct horse battery"},
			func(c Config) bool {
				return c.Dashboard.Password == "correct horse battery" && c.Redacted().Dashboard.Password == "<redacted>"
			}},
		{"webhooks allow private", map[string]string{EnvWebhookPrivate: "true"},
			func(c Config) bool { return c.Webhooks.AllowPrivate }},
		{"empty variables ignored", map[string]string{EnvHTTPAddr: "", EnvRoles: ""},
			func(c Config) bool { return c.HTTPAddr == "127.0.0.1:8080" && len(c.Roles) == 3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := load("", env(tt.env))
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if !tt.check(c) {
				t.Errorf("override not applied: %+v", c)
			}
		})
	}
}

func TestEnvOverridesFile(t *testing.T) {
	t.Parallel()
	c, err := load(DemoFile, env(map[string]string{EnvCheckInterval: "1h", EnvTick: "@every 1m"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.CheckInterval != time.Hour || c.Tick != "@every 1m" {
		t.Errorf("environment must override the file: interval %s tick %q", c.CheckInterval, c.Tick)
	}
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want string // a substring of the error
	}{
		{"unknown field", "chekInterval: 1h\n", nil, "field chekInterval not found"},
		{"unknown nested field", "worker:\n  concurrancy: 3\n", nil, "field concurrancy not found"},
		{"bad duration", "checkInterval: soon\n", nil, "durations are strings"},
		{"int duration", "sandbox:\n  latency: 5\n", nil, "durations are strings"},
		{"bad env duration", "", map[string]string{EnvCheckInterval: "weekly"}, "CHECKD_CHECK_INTERVAL=\"weekly\" is not a duration"},
		{"tiny interval", "checkInterval: 10ms\n", nil, "checkInterval (CHECKD_CHECK_INTERVAL) is 10ms"},
		{"unknown role", "", map[string]string{EnvRoles: "scheduler,web"}, `unknown role "web"`},
		{"duplicate role", "roles: [api, api]\n", nil, `lists "api" twice`},
		{"no roles", "roles: []\n", nil, "roles (CHECKD_ROLES) is empty"},
		{"bad tick", "", map[string]string{EnvTick: "every minute"}, "is not a cron spec"},
		{"bad public url", "", map[string]string{EnvPublicURL: "ftp://x"}, "publicURL"},
		{"bad metrics addr", "", map[string]string{EnvMetricsAddr: "9090"}, "metricsAddr"},
		{"bad http addr", "httpAddr: localhost\n", nil, "is not host:port"},
		{"short api key", "", map[string]string{EnvAPIKeys: "short"}, "entry 1 is 5 characters"},
		{"bad encryption key", "", map[string]string{EnvEncryptionKey: "not-a-key"}, "openssl rand -hex 32"},
		{"zero request timeout", "requestTimeout: 0s\n", nil, "requestTimeout is 0s"},
		{"rate without burst", "apiRateLimit:\n  burst: 0\n", nil, "apiRateLimit is 20 per second with a burst of 0"},
		{"negative rate", "apiRateLimit:\n  perSecond: -1\n", nil, "apiRateLimit is -1 per second"},
		{"bad old encryption key", "", map[string]string{EnvEncryptionKey: testKey, EnvEncryptionOld: testKey2 + ",nope"}, "encryptionOldKeys (CHECKD_ENCRYPTION_OLD_KEYS) entry 2"},
		{"old keys without a key", "encryptionOldKeys: [" + testKey2 + "]\n", nil, "set without encryptionKey"},
		{"bad redis url", "", map[string]string{EnvRedisURL: "http://localhost:6379"}, "is not a Redis URL"},
		{"zero concurrency", "worker:\n  concurrency: 0\n", nil, "worker.concurrency is 0"},
		{"negative batch", "scheduler:\n  batchSize: -1\n", nil, "scheduler.batchSize is -1"},
		{"zero lease", "scheduler:\n  lease: 0s\n", nil, "scheduler.lease is 0s"},
		{"task timeout below check timeout", "scheduler:\n  taskTimeout: 1m\n", nil, "must exceed worker.checkTimeout"},
		{"task timeout not whole seconds", "scheduler:\n  taskTimeout: 150500ms\n", nil, "must be whole seconds"},
		{"negative retry", "scheduler:\n  maxRetry: -1\n", nil, "scheduler.maxRetry is -1"},
		{"unknown queue", "worker:\n  queues: {urgent: 2}\n", nil, `unknown queue "urgent"`},
		{"zero weight", "worker:\n  queues: {low: 0}\n", nil, "worker.queues.low is 0"},
		{"negative empty queue recheck", "worker:\n  emptyQueueRecheck: -1ms\n", nil, "worker.emptyQueueRecheck is -1ms"},
		{"long empty queue recheck", "worker:\n  emptyQueueRecheck: 2s\n", nil, "between 0 (off) and 1s"},
		{"negative latency", "sandbox:\n  latency: -1s\n", nil, "sandbox.latency is -1s"},
		{"zero history", "store:\n  historyLimit: 0\n", nil, "store.historyLimit is 0"},
		{"zero queued ttl", "store:\n  queuedTTL: 0s\n", nil, "store.queuedTTL is 0s"},
		{"negative batch window", "store:\n  checkBatchWindow: -1ms\n", nil, "store.checkBatchWindow is -1ms"},
		{"zero escalation failures", "escalation:\n  failures: 0\n", nil, "escalation.failures is 0"},
		{"negative escalation after", "escalation:\n  after: -1h\n", nil, "escalation.after is -1h0m0s"},
		{"window not whole minutes", "health:\n  window: 90s\n", nil, "health.window is 1m30s; give whole minutes"},
		{"degraded above down", "health:\n  degradedRatio: 0.9\n", nil, "health.degradedRatio is 0.9"},
		{"no probes", "health:\n  probesPerMinute: 0\n", nil, "health.probesPerMinute is 0"},
		{"zero recheck", "health:\n  recheckPerTick: 0\n", nil, "health.recheckPerTick is 0"},
		{"zero slot retry", "health:\n  slotRetry: 0s\n", nil, "health.slotRetry is 0s"},
		{"sandbox entry as a checker service", "datasources:\n  sandbox: {maxConcurrent: 5, checker: http}\n", nil, "its entry takes only maxConcurrent and health"},
		{"negative cap", "datasources:\n  sandbox: {maxConcurrent: -1}\n", nil, "datasources.sandbox.maxConcurrent is -1"},
		{"bad health override", "datasources:\n  sandbox:\n    health: {downRatio: 1.5}\n", nil, "datasources.sandbox.health.downRatio is 1.5"},
		{"override below degraded", "datasources:\n  sandbox:\n    health: {downRatio: 0.2}\n", nil, "datasources.sandbox.health.degradedRatio is 0.3"},
		{"zero body limit", "maxBodyBytes: 0\n", nil, "maxBodyBytes is 0"},
		{"bad level", "log:\n  level: loud\n", nil, `log.level (CHECKD_LOG_LEVEL) "loud"`},
		{"bad format", "log:\n  format: xml\n", nil, `log.format "xml"`},
		{"demo without name", "demo:\n  companies: [{connections: {user_good: 1}}]\n", nil, "demo.companies[0].name is required"},
		{"demo negative count", "demo:\n  companies: [{name: A, connections: {user_good: -2}}]\n", nil, "counts must be 0 or more"},
		{"demo too big", "demo:\n  companies: [{name: A, connections: {user_good: 100001}}]\n", nil, "at most 100000"},
		{"bad allow private", "", map[string]string{EnvWebhookPrivate: "yes please"}, "CHECKD_WEBHOOK_ALLOW_PRIVATE=\"yes please\" is not true or false"},
		{"no retry schedule", "webhooks:\n  retrySchedule: []\n", nil, "webhooks.retrySchedule has 0 delays"},
		{"negative retry delay", "webhooks:\n  retrySchedule: [0s, -5s]\n", nil, "webhooks.retrySchedule[1] is -5s"},
		{"jitter of one", "webhooks:\n  retryJitter: 1\n", nil, "webhooks.retryJitter is 1"},
		{"per endpoint over concurrency", "webhooks:\n  perEndpoint: 50\n", nil, "one slow endpoint could take every delivery slot"},
		{"no webhook servers", "webhooks:\n  servers: 0\n", nil, "webhooks.servers is 0"},
		{"webhook servers over concurrency", "webhooks:\n  concurrency: 4\n  perEndpoint: 4\n  servers: 5\n", nil, "webhooks.servers is 5; use 1 to webhooks.concurrency (4)"},
		{"tiny webhook timeout", "webhooks:\n  timeout: 10ms\n", nil, "webhooks.timeout is 10ms"},
		{"short retention", "webhooks:\n  retention: 1m\n", nil, "webhooks.retention is 1m0s"},
		{"zero dispatch batch", "webhooks:\n  dispatch:\n    batchSize: 0\n", nil, "webhooks.dispatch.batchSize is 0"},
		{"two documents", "tick: '@every 1m'\n---\ntick: '@every 2m'\n", nil, "exactly one YAML document"},
		{"not a mapping", "- a\n- b\n", nil, "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := ""
			if tt.yaml != "" {
				p = filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(p, []byte(tt.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := load(p, env(tt.env))
			if err == nil {
				t.Fatalf("want an error containing %q, got none", tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte("worker:\n  concurrency: 0\nscheduler:\n  batchSize: 0\n"))
	if err == nil || !strings.Contains(err.Error(), "worker.concurrency") || !strings.Contains(err.Error(), "scheduler.batchSize") {
		t.Errorf("want both problems in one error, got %v", err)
	}
	// An unreadable variable does not hide the others' problems.
	_, err = load("", env(map[string]string{EnvCheckInterval: "bogus", EnvRoles: "nope", EnvLogLevel: "loud"}))
	for _, want := range []string{EnvCheckInterval, `"nope"`, "loud", "(embedded defaults and environment)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("environment problems: %v; want it to mention %s", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "checkInterval (CHECKD_CHECK_INTERVAL) is 0s") {
		t.Errorf("an unreadable interval is reported twice: %v", err)
	}
	// A file that does not decode does not hide the environment's problems.
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("checkInterval: banana\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = load(path, env(map[string]string{EnvCheckInterval: "nonsense"}))
	for _, want := range []string{"banana", EnvCheckInterval, "(file " + path} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("file and environment problems: %v; want it to mention %s", err, want)
		}
	}
}

// TestStartRefusalsAtOnce: every setting missing or invalid for a start is
// in one message, whatever kind of problem each is: a mistyped YAML value,
// an unknown field, an unreadable variable, an invalid value, and the keys
// an external Redis requires.
func TestStartRefusalsAtOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	yml := "redisURL: redis://127.0.0.1:6379/0\nworker:\n  concurrency: lots\n  concurrancy: 3\nsandbox:\n  latency: 5\nscheduler:\n  batchSize: 0\nlog:\n  level: loud\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := load(path, env(map[string]string{EnvCheckInterval: "weekly", EnvTick: "every minute"}))
	if err == nil || !errors.Is(err, ErrInvalid) {
		t.Fatalf("load: %v; want an ErrInvalid", err)
	}
	for _, want := range []string{
		"cannot unmarshal !!str `lots` into int",  // a mistyped value
		"field concurrancy not found",             // an unknown field
		"durations are strings",                   // a mistyped duration
		`CHECKD_CHECK_INTERVAL="weekly"`,          // an unreadable variable
		"is not a cron spec",                      // an invalid variable
		"scheduler.batchSize is 0",                // an invalid file value
		`log.level (CHECKD_LOG_LEVEL) "loud"`,     // another
		"CHECKD_ENCRYPTION_KEY is required",       // the external Redis's key
		"the api role needs at least one API key", // and the API's
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%v", want, err)
		}
	}
	// A mistyped value keeps its default: it is not reported again as
	// invalid (worker.concurrency 0).
	if strings.Contains(err.Error(), "worker.concurrency is 0") {
		t.Errorf("a mistyped value is reported twice: %v", err)
	}
	// Without the api role an external Redis needs no API key, and with
	// both keys nothing is missing.
	for _, e := range []map[string]string{
		{EnvRedisURL: "redis://127.0.0.1:6379/0", EnvEncryptionKey: testKey, EnvRoles: "worker"},
		{EnvRedisURL: "redis://127.0.0.1:6379/0", EnvEncryptionKey: testKey, EnvAPIKeys: "aaaaaaaaaaaaaaaa"},
	} {
		if _, err := load("", env(e)); err != nil {
			t.Errorf("load with %v: %v", e, err)
		}
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	t.Parallel()
	const secret = "hunter2hunter2"
	tests := map[string]map[string]string{
		"api key":        {EnvAPIKeys: "short," + "x" + secret[:3]},
		"encryption key": {EnvEncryptionKey: secret},
		"old key":        {EnvEncryptionKey: testKey, EnvEncryptionOld: secret},
		"redis password": {EnvRedisURL: "redis://:" + secret + "@[::1%zz]:6379/0"},
	}
	for name, e := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := load("", env(e))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, v := range e {
				for _, part := range strings.Split(v, ",") {
					if len(part) >= 4 && strings.Contains(err.Error(), part) {
						t.Errorf("error quotes a secret %q: %v", part, err)
					}
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error quotes the secret: %v", err)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c := Default()
	c.APIKeys = []string{"aaaaaaaaaaaaaaaa"}
	c.EncryptionKey = testKey
	c.EncryptionOldKeys = []string{testKey2}
	c.RedisURL = "redis://user:s3cret@redis:6379/1"
	r := c.Redacted()
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"aaaaaaaaaaaaaaaa", testKey, testKey2, "s3cret"} {
		if strings.Contains(string(out), s) {
			t.Errorf("redacted config still holds %q:\n%s", s, out)
		}
	}
	if !strings.Contains(r.RedisURL, "user:redacted@redis:6379/1") {
		t.Errorf("redacted Redis URL lost its shape: %q", r.RedisURL)
	}
	if c.APIKeys[0] != "aaaaaaaaaaaaaaaa" {
		t.Errorf("Redacted modified the original")
	}
}

// TestRoundTrip: a valid configuration survives YAML marshal and Parse.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	c, err := load(DemoFile, env(map[string]string{EnvAPIKeys: "aaaaaaaaaaaaaaaa", EnvEncryptionKey: testKey}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatalf("parse marshalled config: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v", got, c)
	}
}

func FuzzParse(f *testing.F) {
	demo, _ := EmbeddedFile(DemoFile)
	def, _ := EmbeddedFile(DefaultFile)
	for _, s := range [][]byte{nil, demo, def, []byte("roles: [api]\nhttpAddr: ':0'\n"),
		[]byte("worker: {queues: {critical: 1}}"), []byte("checkInterval: 1s\ntick: '*/1 * * * *'"),
		[]byte("demo: {companies: [{name: x, connections: {user_good: 3}}]}")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config Validate rejects: %v", err)
		}
		b, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal accepted config: %v", err)
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("re-parse of marshalled config: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", got, c)
		}
	})
}

// TestOffValues: the settings whose zero means "off" or "none" accept it,
// and it reaches the Config as written (no translation).
func TestOffValues(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("worker:\n  emptyQueueRecheck: 0s\nscheduler:\n  maxRetry: 0\nstore:\n  checkBatchWindow: 0s\nsandbox:\n  latency: 0s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Worker.EmptyQueueRecheck != 0 || c.Scheduler.MaxRetry != 0 || c.Store.CheckBatchWindow != 0 || c.Sandbox.Latency != 0 {
		t.Errorf("off values changed on the way: %+v %+v %+v %+v", c.Worker, c.Scheduler, c.Store, c.Sandbox)
	}
}

// TestDatasourceSettings: datasources.<name> overrides only the health
// fields it sets, and caps only the datasource it names; the sandbox's
// entry sets operations settings without making it a checker service.
func TestDatasourceSettings(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("health:\n  minChecks: 40\ndatasources:\n  slow:\n    checker: http\n    url: https://slow.example.com/check\n" +
		"    secret: " + testSecret + "\n    maxConcurrent: 7\n    health: {downRatio: 0.9, window: 30m}\n  sandbox:\n    maxConcurrent: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	def := Default().Health.HealthRules
	slow := def
	slow.MinChecks, slow.DownRatio, slow.Window = 40, 0.9, 30*time.Minute
	other := def
	other.MinChecks = 40
	if got := c.HealthRules("slow"); got != slow {
		t.Errorf("slow's rules %+v, want %+v", got, slow)
	}
	if got := c.HealthRules("sandbox"); got != other {
		t.Errorf("sandbox's rules %+v, want health's %+v", got, other)
	}
	if c.MaxConcurrent("slow") != 7 || c.MaxConcurrent("sandbox") != 3 || c.MaxConcurrent("other") != 0 {
		t.Errorf("caps: slow %d, sandbox %d, other %d; want 7, 3 and 0", c.MaxConcurrent("slow"), c.MaxConcurrent("sandbox"), c.MaxConcurrent("other"))
	}
	if got := c.DatasourceNames(); !slices.Equal(got, []string{"slow"}) {
		t.Errorf("checker services %v, want [slow] (the sandbox is built in)", got)
	}
	if c.Datasources["sandbox"].Timeout != 0 {
		t.Errorf("the sandbox's entry took a checker timeout: %+v", c.Datasources["sandbox"])
	}
}

package store

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"
)

// The store's own tests take their settings from checkd's defaults, the
// embedded configs/checkd.yaml. Package configs imports store (it checks
// keys and names with it), so these tests read the file itself;
// store_test's TestTestConfigIsConfigsDefault keeps the two readings equal.

// defaultsFile is configs/checkd.yaml, from this package's directory.
var defaultsFile = filepath.Join("..", "configs", "checkd.yaml")

// defaults is the store's part of defaultsFile, read once.
var defaults = sync.OnceValues(func() (Config, error) {
	data, err := os.ReadFile(defaultsFile)
	if err != nil {
		return Config{}, err
	}
	var f struct {
		CheckInterval time.Duration `yaml:"checkInterval"`
		Store         struct {
			HistoryLimit     int           `yaml:"historyLimit"`
			EventsMaxLen     int64         `yaml:"eventsMaxLen"`
			AutoTrack        bool          `yaml:"autoTrack"`
			QueuedTTL        time.Duration `yaml:"queuedTTL"`
			CheckBatchWindow time.Duration `yaml:"checkBatchWindow"`
		} `yaml:"store"`
		Escalation Escalation `yaml:"escalation"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		return Config{}, err
	}
	s := f.Store
	return Config{Interval: f.CheckInterval, HistoryLimit: s.HistoryLimit, EventsMaxLen: s.EventsMaxLen,
		AutoTrack: s.AutoTrack, QueuedTTL: s.QueuedTTL, CheckBatchWindow: s.CheckBatchWindow, Escalation: f.Escalation}, nil
})

// testConfig returns a complete Config: the defaults with a fresh cipher.
func testConfig(tb testing.TB) Config {
	tb.Helper()
	cfg, err := defaults()
	if err != nil {
		tb.Fatalf("read the defaults %s: %v", defaultsFile, err)
	}
	k, err := GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.Cipher, err = NewCipher(k); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// DefaultInterval is the default check interval (checkInterval), which
// most of these tests run with.
var DefaultInterval = func() time.Duration {
	cfg, err := defaults()
	if err != nil {
		panic(err) // testConfig reports it in the test that meets it
	}
	return cfg.Interval
}()

// TestConfig is testConfig for store_test's check.
var TestConfig = testConfig

// TestNewRefusesIncompleteConfig: every setting without a meaningful zero
// is refused by New, naming the field; the ones whose zero means something
// are accepted.
func TestNewRefusesIncompleteConfig(t *testing.T) {
	t.Parallel()
	rdb := miniBackend(t)
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // "": accepted
	}{
		{"complete", func(*Config) {}, ""},
		{"no cipher", func(c *Config) { c.Cipher = nil }, "Config.Cipher"},
		{"no interval", func(c *Config) { c.Interval = 0 }, "Config.Interval"},
		{"no history limit", func(c *Config) { c.HistoryLimit = 0 }, "Config.HistoryLimit"},
		{"no events cap", func(c *Config) { c.EventsMaxLen = 0 }, "Config.EventsMaxLen"},
		{"no queued ttl", func(c *Config) { c.QueuedTTL = 0 }, "Config.QueuedTTL"},
		{"negative window", func(c *Config) { c.CheckBatchWindow = -time.Millisecond }, "Config.CheckBatchWindow"},
		{"window off", func(c *Config) { c.CheckBatchWindow = 0 }, ""},
		{"escalation without failures", func(c *Config) { c.Escalation.Failures = 0 }, "Config.Escalation.Failures"},
		{"escalation off", func(c *Config) { c.Escalation = Escalation{} }, ""},
		{"no clock: the real one", func(c *Config) { c.Clock = nil }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			tt.modify(&cfg)
			_, err := New(rdb, cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("New: %v, want it accepted", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("New: %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// TestNewClients: New takes a client of one Redis, standalone or managed by
// Sentinel, and refuses a Cluster or Ring client, saying what to use.
func TestNewClients(t *testing.T) {
	t.Parallel()
	// No client here connects: New does not talk to Redis.
	standalone := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	failover := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}})
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	t.Cleanup(func() { standalone.Close(); failover.Close(); cluster.Close(); ring.Close() })
	for _, c := range []struct {
		name string
		rdb  redis.UniversalClient
		want string // "": accepted, else in the error
	}{
		{"standalone", standalone, ""},
		{"sentinel", failover, ""},
		{"no client", nil, "a redis client is required"},
		{"cluster", cluster, "Redis Cluster is not supported"},
		{"ring", ring, "Redis Cluster is not supported"},
	} {
		_, err := New(c.rdb, testConfig(t))
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: New = %v, want %q", c.name, err, c.want)
		}
	}
}

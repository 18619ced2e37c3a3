// Package store persists companies, connections and their accounts in Redis
// (go-redis v9): credentials encrypted at rest, the weekly schedule and the
// on-demand due index the scheduler sweeps, per-company status indexes, a
// bounded per-connection history and the change-event stream. Every write
// to a connection is one atomic compare-and-set script that also maintains
// all of those, so a crash never leaves a connection and its indexes
// disagreeing.
//
// Where things are: keys.go builds every Redis key, and its comment is the
// key layout; mutate.go is the one write of a connection (commitScript);
// apply.go the status rules a check applies, check.go the check's load and
// record; admin.go the admin actions on a connection, company.go companies
// and their activation, connection.go creating, reading and listing
// connections; due.go and schedule.go the two due sources a scheduler
// sweeps (Sweep); queued.go the queued marks, once.go one-time tokens,
// history.go and events.go a connection's history and the change events;
// event_group.go the webhook dispatchers' read of the change events;
// webhook_endpoint.go and webhook_message.go webhook endpoints, messages
// and attempts; codec.go and model.go the stored records; crypto.go the
// credentials' cipher, rekey.go the key registry and the re-encryption of
// a rotation. Every Lua script lists the KEYS
// and ARGV it takes at its top, and takes every key it touches in KEYS.
// The group commit that lets concurrent callers share round trips is
// package internal/groupcommit.
package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/groupcommit"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/termtext"
)

// ErrNotFound reports an unknown company or connection.
var ErrNotFound = errors.New("not found")

// ErrInvalid reports input that the store refuses; nothing was written.
var ErrInvalid = errors.New("invalid input")

// ErrConflict reports a write that lost to concurrent writers too many times.
var ErrConflict = errors.New("too many concurrent writes to the same connection; try again")

// Config configures a Store. It has no defaults: New refuses a zero field
// unless its comment says what zero means. checkd builds it from its
// configuration (configs.Config.StoreConfig; the defaults are
// configs/checkd.yaml's).
type Config struct {
	// Cipher encrypts credentials at rest.
	Cipher *Cipher
	// Clock stamps creations; checks carry their own times. nil: the real
	// clock.
	Clock clock.Clock
	// Interval between two checks of a connection (checkInterval).
	Interval time.Duration
	// HistoryLimit bounds each connection's history: how many elements
	// (one per write that changed a status) its record and its history list
	// keep together, the newest in the record (store.historyLimit).
	HistoryLimit int
	// EventsMaxLen caps the change-event stream, approximately
	// (store.eventsMaxLen).
	EventsMaxLen int64
	// AutoTrack makes newly discovered accounts ENABLED/ONBOARDED instead of
	// DETECTED/UNSET (for demos; store.autoTrack).
	AutoTrack bool
	// Prefix namespaces every key; empty is checkd's namespace, "cd:".
	Prefix string
	// QueuedTTL bounds how long a connection counts as having a check
	// queued or running, so a lost task never blocks refreshes
	// (store.queuedTTL).
	QueuedTTL time.Duration
	// CheckBatchWindow is how long a check's read or write (LoadCheck,
	// RecordCheck), or a webhook attempt's (LoadWebhookTarget,
	// RecordWebhookAttempt), waits for concurrent ones to share its round
	// trip to Redis, when nothing is in flight and the last round trip was shared
	// (a lone or serial caller never waits); 0: never wait
	// (store.checkBatchWindow). At a few thousand checks per second a
	// millisecond gathers several calls per round trip and is nothing
	// beside a check's seconds at a provider's website (BENCHMARKS.md has
	// the measurements). The window suits checks handed out by asynq,
	// where new checks keep arriving while it is open; a few goroutines
	// calling LoadCheck and RecordCheck back to back in a tight loop wait
	// out the whole window on almost every call (nobody else can join), so
	// such a caller should set it to 0, or count itself in with
	// AddCheckSlots as a worker does.
	CheckBatchWindow time.Duration
	// Escalation is when a failing connection becomes UNDER_INVESTIGATION
	// by itself (escalation).
	Escalation Escalation
}

// Escalation is the automatic escalation rule (docs/architecture.md,
// "Status rules"): a connection whose checks ended in a provider-side
// error (checks.ConnectionStatus.ProviderFailure) at least Failures times
// in a row, with no success for at least After (since its creation if it
// never had one), becomes UNDER_INVESTIGATION.
type Escalation struct {
	// Enabled turns the rule on (escalation.enabled); off, nothing
	// escalates and Failures and After may be zero.
	Enabled bool `yaml:"enabled"`
	// Failures is how many provider-side errors in a row (escalation.failures).
	Failures int `yaml:"failures"`
	// After is how long without a success (escalation.after).
	After time.Duration `yaml:"after"`
}

// Store is the Redis persistence of checkd. It is safe for concurrent use.
type Store struct {
	rdb   redis.UniversalClient
	cfg   Config
	batch *groupcommit.Batcher // LoadCheck's reads and every write's commit
	// coFlags caches companies' active flags (and autoTrack) for LoadCheck.
	coFlags companyFlags
	// epDecodes keeps webhook endpoints decoded for attempts.
	epDecodes endpointDecodes
	// outcomes gathers concurrent RecordOutcome calls per datasource.
	outcomes outcomeGroups
}

// New returns a store over rdb, a client of one Redis: a standalone server
// (redis.NewClient) or, for failover, one that Sentinel manages
// (redis.NewFailoverClient, also a *redis.Client). Redis Cluster is not
// supported: a write's script takes the keys of its connection and of
// shared indexes at once, which a cluster refuses across hash slots, so a
// *redis.ClusterClient or *redis.Ring is refused here. It fails, naming
// the field, on a Config that is not complete.
func New(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	switch rdb.(type) {
	case nil:
		return nil, errors.New("store: a redis client is required")
	case *redis.ClusterClient, *redis.Ring:
		return nil, errors.New("store: Redis Cluster is not supported (a write's keys span hash slots): connect to one Redis server, standalone (redis.NewClient) or managed by Sentinel (redis.NewFailoverClient)")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "cd:"
	}
	return &Store{rdb: rdb, cfg: cfg, batch: groupcommit.New(rdb, cfg.CheckBatchWindow)}, nil
}

// validate refuses the zero values that mean nothing.
func (c Config) validate() error {
	switch {
	case c.Cipher == nil:
		return errors.New("a credential cipher is required (Config.Cipher)")
	case c.Interval <= 0:
		return fmt.Errorf("Config.Interval is %s; give the check interval (configs: checkInterval)", c.Interval)
	case c.HistoryLimit <= 0:
		return fmt.Errorf("Config.HistoryLimit is %d; it must be positive (configs: store.historyLimit)", c.HistoryLimit)
	case c.EventsMaxLen <= 0:
		return fmt.Errorf("Config.EventsMaxLen is %d; it must be positive (configs: store.eventsMaxLen)", c.EventsMaxLen)
	case c.QueuedTTL <= 0:
		return fmt.Errorf("Config.QueuedTTL is %s; it must be positive (configs: store.queuedTTL)", c.QueuedTTL)
	case c.CheckBatchWindow < 0:
		return fmt.Errorf("Config.CheckBatchWindow is %s; use 0 (never wait) or more (configs: store.checkBatchWindow)", c.CheckBatchWindow)
	case c.Escalation.Enabled && c.Escalation.Failures <= 0:
		return fmt.Errorf("Config.Escalation.Failures is %d; it must be positive while escalation is enabled (configs: escalation.failures)", c.Escalation.Failures)
	case c.Escalation.Enabled && c.Escalation.After < 0:
		return fmt.Errorf("Config.Escalation.After is %s; use 0 or more (configs: escalation.after)", c.Escalation.After)
	}
	return nil
}

// BatchStats counts what the store's group commit did: LoadCheck reads and
// connection writes of concurrent callers sharing round trips to Redis (a
// check's calls are its windowed calls, Store.AddCheckSlots its slots).
type BatchStats = groupcommit.Stats

// BatchStats returns what the group commit did so far.
func (s *Store) BatchStats() BatchStats { return s.batch.Stats() }

// SharedClient returns the store's Redis client for an asynq.Client
// (asynq.NewClientFromRedisClient): its script calls, which are how asynq
// enqueues, go through the store's group commit (groupcommit.Batcher's
// Client). Concurrent enqueues, such as a sweep's EnqueueConcurrency
// goroutines, then share round trips with each other and with the store's
// own calls.
func (s *Store) SharedClient() redis.UniversalClient { return s.batch.Client() }

// ServerClient returns the store's Redis client for an asynq.Server
// (asynq.NewServerFromRedisClient): its script calls go through the
// store's group commit as SharedClient's do, but asynq's dequeue
// (tasks.IsDequeue), which asynq's processor makes one at a time. A
// handler's task is then marked done in a round trip shared with other
// handlers' completions and store calls.
func (s *Store) ServerClient() redis.UniversalClient { return s.batch.ClientExcept(tasks.IsDequeue) }

// AddCheckSlots tells the store that n more checks (or webhook attempts)
// may run at once in this process (negative n: fewer). A worker, and the
// webhook deliverer, adds its concurrency when it starts and takes it back
// when it stops. A check's (or attempt's) call waiting for company
// (Config.CheckBatchWindow) then stops waiting once all but two of those
// slots wait with it: asynq hands out a check only into a free slot, so
// with fewer free ones it could not bring company and would only idle
// (without it, a worker of low concurrency ran its checks far below the
// rate it reaches with it: BENCHMARKS.md, "A window leaves two check
// slots free").
func (s *Store) AddCheckSlots(n int) { s.batch.AddSlots(n) }

// Interval is the configured check interval.
func (s *Store) Interval() time.Duration { return s.cfg.Interval }

// Redis returns the underlying client (for health checks).
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// newID returns prefix + 16 random base32 characters (80 bits).
func newID(prefix string) string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the OS has no entropy; nothing sane to do
	}
	return prefix + idEncoding.EncodeToString(b[:])
}

// newShortID returns prefix + 10 random base32 characters (50 bits): for
// accounts, which are addressed within their connection.
func newShortID(prefix string) string {
	var b [7]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return prefix + idEncoding.EncodeToString(b[:])[:10]
}

// ValidID reports whether s can be an ID of the given prefix ("co_", "cn_",
// "ac_"): it keeps user input out of key names.
func ValidID(prefix, s string) bool {
	if !strings.HasPrefix(s, prefix) || len(s) != len(prefix)+16 {
		return false
	}
	for _, r := range s[len(prefix):] {
		if !strings.ContainsRune("0123456789abcdefghjkmnpqrstvwxyz", r) {
			return false
		}
	}
	return true
}

// ID prefixes.
const (
	CompanyIDPrefix    = "co_"
	ConnectionIDPrefix = "cn_"
	AccountIDPrefix    = "ac_"
)

// MaxNameLen bounds names so one record stays small.
const MaxNameLen = 200

// nameProblem says what is wrong with a company's or connection's name, ""
// when nothing. Control characters are refused: a name is printed on
// operators' terminals (checkctl), where an escape sequence could hide or
// rewrite what they read.
func nameProblem(name string) string {
	switch {
	case len(name) > MaxNameLen:
		return fmt.Sprintf("name is at most %d bytes", MaxNameLen)
	case strings.ContainsFunc(name, termtext.Unsafe):
		return "name must not contain control characters (tabs, newlines, escape sequences, direction overrides)"
	}
	return ""
}

// StatusCounts returns how many connections are in each status, from a
// counter kept with every transition (no scan).
func (s *Store) StatusCounts(ctx context.Context) (map[checks.ConnectionStatus]int64, error) {
	m, err := s.rdb.HGetAll(ctx, s.kCounts()).Result()
	if err != nil {
		return nil, fmt.Errorf("status counts: %w", err)
	}
	out := make(map[checks.ConnectionStatus]int64, len(checks.ConnectionStatuses))
	for _, st := range checks.ConnectionStatuses {
		var n int64
		fmt.Sscan(m[string(st)], &n)
		out[st] = n
	}
	return out, nil
}

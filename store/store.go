// Package store persists companies, connections and their accounts in Redis
// (go-redis v9): credentials encrypted at rest, the weekly schedule and the
// on-demand due index the scheduler sweeps, per-company status indexes, a bounded per-connection history and
// the change-event stream. Every write to a connection is one atomic
// compare-and-set script that also maintains all of those, so a crash never
// leaves a connection and its indexes disagreeing.
//
// Layout (prefix P, "cd:" by default):
//
//	P c:<conn>            string  the connection, its accounts and its newest history elements (JSON, short names)
//	P co:<company>        hash    name, active (1|0), ca (created, ms), at (autoTrack 1|0, when the company sets it)
//	P companies           zset    company IDs by creation time
//	P coep                string  the company epoch: incremented with every change of an active flag
//	                              (LoadCheck caches the flags for one epoch; see check.go)
//	P wk:<minute>         zset    the weekly schedule: eligible connection IDs whose slot falls in
//	                              that minute of the interval, by slot offset (ms); see schedule.go
//	P sw                  string  the sweep cursor: every weekly slot up to it (ms) is enqueued
//	P sw:lock             string  the sweeping scheduler's token (leased)
//	P due                 zset    on-demand due times (ms): first checks, reactivations, retries
//	P ix:<company>:<st>   zset    a company's connections in status st, by creation time
//	P n                   hash    number of connections per status
//	P h:<conn>            list    older history elements spilled from the record, newest first (history.go)
//	P ev                  stream  change events (connection.created.v2, connection.updated.v2)
//	P q                   hash    conn → until (ms): a check is queued or running (cleared when it ends)
//	P fl                  zset    on-demand claims in flight, by lease end
//	P fl:<batch>          hash    conn → slot (ms) of one claim not yet acknowledged
//	P once:<name>         string  a single-use token was spent (expires with the token)
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
	// RecordCheck) waits for concurrent ones to share its round trip to
	// Redis, when nothing is in flight and the last round trip was shared
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
}

// Store is the Redis persistence of checkd. It is safe for concurrent use.
type Store struct {
	rdb   redis.UniversalClient
	cfg   Config
	batch *scriptBatcher // LoadCheck's reads and every write's commit
	// coFlags caches companies' active flags (and autoTrack) for LoadCheck.
	coFlags companyFlags
}

// New returns a store over rdb. It fails, naming the field, on a Config
// that is not complete.
func New(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("store: a redis client is required")
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
	return &Store{rdb: rdb, cfg: cfg, batch: newScriptBatcher(rdb, cfg.CheckBatchWindow)}, nil
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
	}
	return nil
}

// BatchStats returns what the group commit did so far: LoadCheck reads and
// connection writes of concurrent callers share round trips to Redis.
func (s *Store) BatchStats() BatchStats { return s.batch.Stats() }

// AddCheckSlots tells the store that n more checks may run at once in this
// process (negative n: fewer). A worker adds its concurrency when it starts
// and takes it back when it stops. A check's call waiting for company
// (Config.CheckBatchWindow) then stops waiting once all but two of those
// slots wait with it: asynq hands out a check only into a free slot, so
// with fewer free ones it could not bring company and would only idle
// (without it, a worker of concurrency 8 ran no-op checks at two thirds,
// one of concurrency 4 at a third, of the rate it reaches with it).
func (s *Store) AddCheckSlots(n int) { s.batch.addSlots(n) }

// Interval is the configured check interval.
func (s *Store) Interval() time.Duration { return s.cfg.Interval }

// Redis returns the underlying client (for health checks).
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

func (s *Store) kConn(id string) string      { return s.cfg.Prefix + "c:" + id }
func (s *Store) kCompany(id string) string   { return s.cfg.Prefix + "co:" + id }
func (s *Store) kCompanies() string          { return s.cfg.Prefix + "companies" }
func (s *Store) kCompanyEpoch() string       { return s.cfg.Prefix + "coep" }
func (s *Store) kDue() string                { return s.cfg.Prefix + "due" }
func (s *Store) kCounts() string             { return s.cfg.Prefix + "n" }
func (s *Store) kHistory(id string) string   { return s.cfg.Prefix + "h:" + id }
func (s *Store) kEvents() string             { return s.cfg.Prefix + "ev" }
func (s *Store) kQueued() string             { return s.cfg.Prefix + "q" }
func (s *Store) kOnce(name string) string    { return s.cfg.Prefix + "once:" + name }
func (s *Store) kIndex(co, st string) string { return s.cfg.Prefix + "ix:" + co + ":" + st }

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

// NewCompany is the input of CreateCompany.
type NewCompany struct {
	Name string `json:"name"`
	// AutoTrack, when set, decides for this company whether discovered
	// accounts are tracked at once (Config.AutoTrack otherwise).
	AutoTrack *bool `json:"autoTrack,omitempty"`
}

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

// CreateCompany stores a new active company.
func (s *Store) CreateCompany(ctx context.Context, in NewCompany) (Company, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" {
		return Company{}, fmt.Errorf("%w: company name is required (at most %d bytes)", ErrInvalid, MaxNameLen)
	}
	if p := nameProblem(name); p != "" {
		return Company{}, fmt.Errorf("%w: company %s", ErrInvalid, p)
	}
	now := s.cfg.Clock.Now().UTC().Truncate(time.Millisecond)
	c := Company{ID: newID(CompanyIDPrefix), Name: name, IsActive: true, CreatedAt: now, AutoTrack: in.AutoTrack}
	fields := []any{"name", c.Name, "active", "1", "ca", ms(now)}
	if in.AutoTrack != nil {
		fields = append(fields, "at", flag(*in.AutoTrack))
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.kCompany(c.ID), fields...)
		p.ZAdd(ctx, s.kCompanies(), redis.Z{Score: float64(ms(now)), Member: c.ID})
		return nil
	})
	if err != nil {
		return Company{}, fmt.Errorf("create company: %w", err)
	}
	return c, nil
}

// GetCompany returns a company, or ErrNotFound.
func (s *Store) GetCompany(ctx context.Context, id string) (Company, error) {
	if !ValidID(CompanyIDPrefix, id) {
		return Company{}, fmt.Errorf("company %q: %w", id, ErrNotFound)
	}
	m, err := s.rdb.HGetAll(ctx, s.kCompany(id)).Result()
	if err != nil {
		return Company{}, fmt.Errorf("get company %s: %w", id, err)
	}
	if len(m) == 0 {
		return Company{}, fmt.Errorf("company %q: %w", id, ErrNotFound)
	}
	var ca int64
	fmt.Sscan(m["ca"], &ca)
	return Company{ID: id, Name: m["name"], IsActive: m["active"] == "1", CreatedAt: fromMS(ca), AutoTrack: autoTrackFlag(m["at"])}, nil
}

// flag is a bool as a company hash stores it.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// autoTrackFlag reads a company's autoTrack field: nil when it sets none.
func autoTrackFlag(v string) *bool {
	if v == "" {
		return nil
	}
	b := v == "1"
	return &b
}

// ListCompanies returns every company, oldest first.
func (s *Store) ListCompanies(ctx context.Context) ([]Company, error) {
	ids, err := s.rdb.ZRange(ctx, s.kCompanies(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list companies: %w", err)
	}
	out := make([]Company, 0, len(ids))
	for _, id := range ids {
		c, err := s.GetCompany(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
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

package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

// Datasource health (docs/architecture.md, "Datasource health"): every
// worker records each check's outcome in a rolling window per datasource
// shared through Redis (per-minute counters over HealthRules.Window, and
// the durations of the newest checks); the window derives HEALTHY,
// DEGRADED or DOWN. DOWN opens the datasource's outage breaker: its checks
// are not attempted but recorded as WEBSITE_DOWN (AdmitCheck), except a
// few probes a minute; a probe that succeeds closes it, and the scheduler
// then checks again every connection not attempted meanwhile
// (TakeNotAttempted) until a check of it that started no earlier is
// attempted (RecordOutcome forgets it then).

// Health of a datasource.
const (
	HealthHealthy  = "HEALTHY"
	HealthDegraded = "DEGRADED"
	HealthDown     = "DOWN"
)

// HealthRules are a datasource's health thresholds (configs: health, and
// datasources.<name>.health).
type HealthRules struct {
	// Window is how far back outcomes count; whole minutes.
	Window time.Duration `yaml:"window"`
	// MinChecks is how many checks in the window it takes to judge.
	MinChecks int `yaml:"minChecks"`
	// DownRatio: at least this share of the window's checks ended
	// WEBSITE_DOWN or URL_INACCESSIBLE opens the breaker (DOWN).
	DownRatio float64 `yaml:"downRatio"`
	// DegradedRatio: at least this share is DEGRADED.
	DegradedRatio float64 `yaml:"degradedRatio"`
	// ProbesPerMinute is how many checks a minute still go through while
	// the breaker is open.
	ProbesPerMinute int `yaml:"probesPerMinute"`
}

// Validate says what is wrong with r, naming fields under name.
func (r HealthRules) Validate(name string) error {
	switch {
	case r.Window < time.Minute || r.Window%time.Minute != 0:
		return fmt.Errorf("%s.window is %s; give whole minutes, at least 1m", name, r.Window)
	case r.MinChecks <= 0:
		return fmt.Errorf("%s.minChecks is %d; it must be positive", name, r.MinChecks)
	case !(r.DownRatio > 0 && r.DownRatio <= 1):
		return fmt.Errorf("%s.downRatio is %v; give a share in (0, 1]", name, r.DownRatio)
	case !(r.DegradedRatio > 0 && r.DegradedRatio <= r.DownRatio):
		return fmt.Errorf("%s.degradedRatio is %v; give a share in (0, downRatio]", name, r.DegradedRatio)
	case r.ProbesPerMinute <= 0:
		return fmt.Errorf("%s.probesPerMinute is %d; it must be positive (without probes an open breaker never closes)", name, r.ProbesPerMinute)
	}
	return nil
}

// durationSamples is how many of the newest checks' durations a datasource
// keeps for its p50 and p95.
const durationSamples = 256

// siteFailure reports the outcomes that count towards DOWN: the website
// did not answer.
func siteFailure(s checks.ConnectionStatus) bool {
	return s == checks.ConnWebsiteDown || s == checks.ConnURLInaccessible
}

// Breaker is a datasource's outage breaker as a check sees it.
type Breaker struct {
	// Open: the datasource is DOWN; checks are not attempted but probes.
	Open bool
	// Since is when it opened (Open) or last closed (zero: never).
	Since time.Time
	// Failed and Checks are the window's counts when it opened.
	Failed, Checks int64
}

// NotAttemptedDetail is the statusErrorDetail of a check not attempted
// because datasource ds is DOWN.
func (b Breaker) NotAttemptedDetail(ds string) string {
	return fmt.Sprintf("provider %s down since %s (%d of the last %d checks failed); not attempted",
		ds, b.Since.UTC().Format("2006-01-02 15:04 UTC"), b.Failed, b.Checks)
}

// recordOutcomeScript adds the outcomes of a group of checks of one
// datasource (one check, or the checks whose RecordOutcome calls met while
// another group of the datasource was being recorded) to its window, and
// moves its breaker.
//
//	KEYS[1] -> P ds, the set of datasources seen
//	KEYS[2] -> P ds:<name>, the breaker: br ("1" open), bs (since, ms),
//	           bn and bf (checks and failures when it opened)
//	KEYS[3] -> P ds:<name>:w, the window: "<minute>:n" checks, ":f"
//	           site failures, ":s" successes
//	KEYS[4] -> P ds:<name>:d, the newest durations (ms)
//	KEYS[5] -> P ds:<name>:na, connections not attempted
//	ARGV[1] -> the datasource's name
//	ARGV[2] -> now (ms)
//	ARGV[3] -> how many checks (k, at least 1)
//	ARGV[4] -> how many of them were site failures
//	ARGV[5] -> how many were successes
//	ARGV[6] -> "1": the group is one probe
//	ARGV[7] -> the window, in minutes
//	ARGV[8] -> minChecks
//	ARGV[9] -> downRatio
//	ARGV[10] -> how many durations to keep
//	ARGV[11 .. 10+k] -> the checks' durations (ms)
//	ARGV[11+k .. 10+2k] -> the connection IDs: attempted, no longer
//	           waiting for their re-check if not attempted at or before
//	           the check started
//	ARGV[11+2k .. 10+3k] -> when each check started (ms)
//
// Returns {open (1|0), since, checks, failures, change}: change is 1 when
// this group opened the breaker, -1 when it closed it, else 0.
var recordOutcomeScript = redis.NewScript(`
local k = tonumber(ARGV[3])
local fails = tonumber(ARGV[4])
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[5]) == 1 then
  for j = 1, k do
    -- a check that started before its connection was not attempted (a
    -- second delivery of its task, say) is older news: its record loses
    -- to the newer one (Stale), which still needs its re-check
    local id = ARGV[10 + k + j]
    local na = redis.call('ZSCORE', KEYS[5], id)
    if na and tonumber(na) <= tonumber(ARGV[10 + 2 * k + j]) then redis.call('ZREM', KEYS[5], id) end
  end
end
local now = tonumber(ARGV[2])
local m = math.floor(now / 60000)
local win = tonumber(ARGV[7])
local b = redis.call('HMGET', KEYS[2], 'br', 'bs', 'bn', 'bf')
if b[1] == '1' and ARGV[6] == '1' and fails == 0 then
  -- a probe got through: close, and judge afresh from here
  redis.call('HSET', KEYS[2], 'br', '0', 'bs', now)
  redis.call('DEL', KEYS[3])
  return {0, now, 0, 0, -1}
end
if redis.call('HINCRBY', KEYS[3], m .. ':n', k) == k then
  -- a new minute: drop the ones that left the window
  for _, f in ipairs(redis.call('HKEYS', KEYS[3])) do
    local fm = tonumber(string.match(f, '^(%d+):'))
    if fm and fm <= m - win then redis.call('HDEL', KEYS[3], f) end
  end
end
if fails > 0 then redis.call('HINCRBY', KEYS[3], m .. ':f', fails) end
if tonumber(ARGV[5]) > 0 then redis.call('HINCRBY', KEYS[3], m .. ':s', ARGV[5]) end
for i = 11, 10 + k, 256 do
  redis.call('LPUSH', KEYS[4], unpack(ARGV, i, math.min(i + 255, 10 + k)))
end
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[10]) - 1)
if b[1] == '1' then
  return {1, tonumber(b[2]), tonumber(b[3]), tonumber(b[4]), 0}
end
local n, f = 0, 0
for i = m - win + 1, m do
  local v = redis.call('HMGET', KEYS[3], i .. ':n', i .. ':f')
  n = n + (tonumber(v[1]) or 0)
  f = f + (tonumber(v[2]) or 0)
end
if n >= tonumber(ARGV[8]) and f >= n * tonumber(ARGV[9]) then
  redis.call('HSET', KEYS[2], 'br', '1', 'bs', now, 'bn', n, 'bf', f)
  return {1, now, n, f, 1}
end
return {0, tonumber(b[2]) or 0, 0, 0, 0}
`)

// OutcomeChange says what recording an outcome did to the breaker.
type OutcomeChange int

// Breaker changes.
const (
	BreakerKept   OutcomeChange = 0
	BreakerOpened OutcomeChange = 1
	BreakerClosed OutcomeChange = -1
)

// RecordOutcome adds the outcome of an attempted check of connection
// connID (its connection status, how long it took, whether it was a probe)
// to datasource ds's window under rules, at now, and returns the breaker
// after it and what it did: a window at or over DownRatio of site failures
// opens it; a probe that reached the website closes it and empties the
// window. A connection not attempted earlier (at or before this check
// started, now - took) is no longer waiting for its re-check; one not
// attempted after this check started stays listed, as this check's record
// loses to the newer one's (Stale).
//
// Calls for one datasource that arrive while another group of its
// outcomes is being recorded are recorded together, in one script call,
// when that one returns (a probe always alone): at thousands of checks a
// second this takes the window's script from one call per check to one
// per round trip. The window is judged after each group, at the newest of
// its calls' now, and a change of the breaker is returned to one call of
// the group (the others get BreakerKept and the breaker after it).
func (s *Store) RecordOutcome(ctx context.Context, ds, connID string, rules HealthRules, st checks.ConnectionStatus,
	took time.Duration, probe bool, now time.Time) (Breaker, OutcomeChange, error) {
	o := outcome{id: connID, took: took.Milliseconds(), at: ms(now), started: ms(now.Add(-took)), fail: siteFailure(st), ok: st == checks.ConnConnected}
	if probe {
		g := &outcomeGroup{ds: ds, rules: rules, probe: true}
		g.add(o)
		s.sendOutcomes(ctx, g)
		return g.b, g.change, g.err
	}
	return s.outcomes.record(ctx, s, ds, rules, o)
}

// outcome is one check's outcome, as RecordOutcome's script takes it.
type outcome struct {
	id                string
	took, at, started int64 // ms
	fail, ok          bool  // a site failure, a success
}

// outcomeGroup is the outcomes one script call records, and its reply.
type outcomeGroup struct {
	ds         string
	rules      HealthRules
	probe      bool
	now        int64 // the newest outcome's time (ms)
	fails, oks int
	// Per outcome: its duration, connection ID and start; len is how many.
	durs, ids, starts []any
	// lead is closed when the group's first caller is to send it; done
	// when its reply is in.
	lead, done chan struct{}

	b      Breaker
	change OutcomeChange
	err    error
}

func (g *outcomeGroup) add(o outcome) int {
	g.now = max(g.now, o.at)
	g.durs, g.ids, g.starts = append(g.durs, o.took), append(g.ids, o.id), append(g.starts, o.started)
	if o.fail {
		g.fails++
	}
	if o.ok {
		g.oks++
	}
	return len(g.ids) - 1
}

// len is how many outcomes the group carries.
func (g *outcomeGroup) len() int { return len(g.ids) }

// outcomeGroups gathers each datasource's RecordOutcome calls while one
// of its groups is being recorded. It has no goroutine of its own: the
// caller that finds nothing being recorded sends its group, and the one
// that opened the next group sends that when it is handed the turn
// (groupcommit.Batcher's scheme, with the outcomes merged into one call).
type outcomeGroups struct {
	mu   sync.Mutex
	busy map[string]bool          // a group of the datasource is being recorded
	next map[string]*outcomeGroup // the group gathering meanwhile
}

func (a *outcomeGroups) record(ctx context.Context, s *Store, ds string, rules HealthRules, o outcome) (Breaker, OutcomeChange, error) {
	a.mu.Lock()
	if a.busy == nil {
		a.busy, a.next = map[string]bool{}, map[string]*outcomeGroup{}
	}
	if !a.busy[ds] {
		a.busy[ds] = true
		a.mu.Unlock()
		g := &outcomeGroup{ds: ds, rules: rules}
		g.add(o)
		s.sendOutcomes(ctx, g)
		a.handOn(ds)
		return g.b, g.change, g.err
	}
	g := a.next[ds]
	if g == nil {
		g = &outcomeGroup{ds: ds, rules: rules, lead: make(chan struct{}), done: make(chan struct{})}
		a.next[ds] = g
	}
	i := g.add(o)
	a.mu.Unlock()
	if i == 0 {
		<-g.lead
		// The group carries others' outcomes: a caller giving up must not
		// fail them (the client's timeouts bound the call).
		s.sendOutcomes(context.WithoutCancel(ctx), g)
		close(g.done)
		a.handOn(ds)
		return g.b, g.change, g.err
	}
	<-g.done
	return g.b, BreakerKept, g.err
}

// handOn gives the turn to the group that gathered while one was being
// recorded, or ends the datasource's turn.
func (a *outcomeGroups) handOn(ds string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if g := a.next[ds]; g != nil {
		delete(a.next, ds)
		close(g.lead)
		return
	}
	delete(a.busy, ds)
}

// sendOutcomes records group g and sets its reply.
func (s *Store) sendOutcomes(ctx context.Context, g *outcomeGroup) {
	p := ""
	if g.probe {
		p = "1"
	}
	args := make([]any, 0, 10+3*g.len())
	args = append(args, g.ds, g.now, g.len(), g.fails, g.oks, p, int64(g.rules.Window/time.Minute), g.rules.MinChecks, g.rules.DownRatio, durationSamples)
	args = append(append(append(args, g.durs...), g.ids...), g.starts...)
	v, err := s.batch.Run(ctx, recordOutcomeScript, []string{s.kDatasources(), s.kBreaker(g.ds), s.kWindow(g.ds), s.kDurations(g.ds), s.kNotAttempted(g.ds)},
		args...).Int64Slice()
	if err != nil || len(v) != 5 {
		g.err = fmt.Errorf("record the outcome of %d %s check(s): %w", g.len(), g.ds, errors.Join(err, errShape(len(v), 5)))
		return
	}
	g.b = Breaker{Open: v[0] == 1, Checks: v[2], Failed: v[3]}
	if v[1] != 0 {
		g.b.Since = fromMS(v[1])
	}
	g.change = OutcomeChange(v[4])
}

func errShape(got, want int) error {
	if got == want {
		return nil
	}
	return fmt.Errorf("script answered %d values, want %d", got, want)
}

// admitScript decides whether a check of a datasource whose breaker was
// seen open goes through as a probe; one that does not is remembered as
// not attempted.
//
//	KEYS[1] -> P ds:<name>, the breaker (pm: the probes' minute, pn: probes in it)
//	KEYS[2] -> P ds:<name>:na, connections not attempted, by time (ms)
//	ARGV[1] -> now (ms)
//	ARGV[2] -> probes per minute
//	ARGV[3] -> the connection ID
//
// Returns {verdict, since, checks, failures}: verdict 0 the breaker is
// closed (check as usual), 1 a probe, 2 not attempted.
var admitScript = redis.NewScript(`
local b = redis.call('HMGET', KEYS[1], 'br', 'bs', 'bn', 'bf', 'pm', 'pn')
if b[1] ~= '1' then return {0, 0, 0, 0} end
local now = tonumber(ARGV[1])
local m = math.floor(now / 60000)
if tonumber(b[5]) ~= m then
  redis.call('HSET', KEYS[1], 'pm', m, 'pn', 1)
  return {1, tonumber(b[2]), tonumber(b[3]), tonumber(b[4])}
end
if tonumber(b[6]) < tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[1], 'pn', 1)
  return {1, tonumber(b[2]), tonumber(b[3]), tonumber(b[4])}
end
redis.call('ZADD', KEYS[2], now, ARGV[3])
return {2, tonumber(b[2]), tonumber(b[3]), tonumber(b[4])}
`)

// Admission is what AdmitCheck decided for one check.
type Admission int

// Admissions.
const (
	// Admitted: the breaker is closed; check as usual.
	Admitted Admission = iota
	// Probe: the breaker is open and this check is one of the minute's probes.
	Probe
	// NotAttempted: the breaker is open; record WEBSITE_DOWN
	// (Breaker.NotAttemptedDetail) without a login. The connection is
	// remembered, to be checked again when the breaker closes.
	NotAttempted
)

// AdmitCheck decides whether a check of connection connID at datasource
// ds goes through, for a caller that saw the breaker open (a closed one
// costs nothing to ask about: RecordOutcome returns the breaker).
func (s *Store) AdmitCheck(ctx context.Context, ds, connID string, rules HealthRules, now time.Time) (Admission, Breaker, error) {
	v, err := s.batch.Run(ctx, admitScript, []string{s.kBreaker(ds), s.kNotAttempted(ds)},
		ms(now), rules.ProbesPerMinute, connID).Int64Slice()
	if err != nil || len(v) != 4 {
		return 0, Breaker{}, fmt.Errorf("admit a check of %s: %w", ds, errors.Join(err, errShape(len(v), 4)))
	}
	b := Breaker{Open: v[0] != 0, Checks: v[2], Failed: v[3]}
	if v[1] != 0 {
		b.Since = fromMS(v[1])
	}
	return Admission(v[0]), b, nil
}

// NotAttemptedConn is a connection whose check was not attempted while
// its datasource was DOWN.
type NotAttemptedConn struct {
	Datasource, ConnectionID string
}

// TakeNotAttempted lists, at now, up to limit connections not attempted
// while their datasource was DOWN, of datasources whose breaker is closed again, the
// oldest first: the scheduler enqueues their checks again. Each stays
// listed until a check of it that started no earlier is attempted
// (RecordOutcome), or it needs none (DoneNotAttempted): a re-check
// skipped, lost or deduplicated against the very check that was not
// attempted is enqueued again on a later call,
// never dropped. One not attempted more than a check interval ago has had
// its weekly check since (or was deleted): it is dropped here.
func (s *Store) TakeNotAttempted(ctx context.Context, limit int, now time.Time) ([]NotAttemptedConn, error) {
	names, err := s.rdb.SMembers(ctx, s.kDatasources()).Result()
	if err != nil {
		return nil, fmt.Errorf("list datasources: %w", err)
	}
	slices.Sort(names)
	var out []NotAttemptedConn
	for _, ds := range names {
		if len(out) >= limit {
			break
		}
		open, err := s.rdb.HGet(ctx, s.kBreaker(ds), "br").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read the breaker of %s: %w", ds, err)
		}
		if open == "1" {
			continue
		}
		old := strconv.FormatInt(ms(now.Add(-s.cfg.Interval)), 10)
		if err := s.rdb.ZRemRangeByScore(ctx, s.kNotAttempted(ds), "-inf", "("+old).Err(); err != nil {
			return nil, fmt.Errorf("drop connections not attempted an interval ago at %s: %w", ds, err)
		}
		ids, err := s.rdb.ZRange(ctx, s.kNotAttempted(ds), 0, int64(limit-len(out)-1)).Result()
		if err != nil {
			return nil, fmt.Errorf("list connections not attempted at %s: %w", ds, err)
		}
		for _, id := range ids {
			out = append(out, NotAttemptedConn{Datasource: ds, ConnectionID: id})
		}
	}
	return out, nil
}

// DoneNotAttempted forgets connections not attempted that need no re-check:
// their check was skipped (the connection deactivated, its company
// inactive, its credentials blocked).
func (s *Store) DoneNotAttempted(ctx context.Context, done []NotAttemptedConn) error {
	p := s.rdb.Pipeline()
	for _, c := range done {
		p.ZRem(ctx, s.kNotAttempted(c.Datasource), c.ConnectionID)
	}
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("forget connections checked again: %w", err)
	}
	return nil
}

// DatasourceHealth is a datasource's health as GET /v1/datasources shows it.
type DatasourceHealth struct {
	Name   string `json:"name"`
	Health string `json:"health"`
	// Window is the rolling window's length; Checks, SiteFailures and
	// Successes its counts (reset when the breaker closes).
	Window       string `json:"window"`
	Checks       int64  `json:"checks"`
	SiteFailures int64  `json:"siteFailures"`
	Successes    int64  `json:"successes"`
	// SuccessRate is Successes / Checks (null with no checks).
	SuccessRate *float64 `json:"successRate"`
	// DurationP50Ms and DurationP95Ms are of the newest checks' durations.
	DurationP50Ms int64 `json:"durationP50Ms"`
	DurationP95Ms int64 `json:"durationP95Ms"`
	// Breaker is "open" (DOWN: checks not attempted but probes) or
	// "closed"; BreakerSince is when it last changed (null: never).
	Breaker      string     `json:"breaker"`
	BreakerSince *time.Time `json:"breakerSince"`
	// NotAttempted counts the connections waiting to be checked again
	// after the breaker closes.
	NotAttempted int64 `json:"notAttempted"`
	// MaxConcurrent is its concurrency cap (0: none), Running its checks
	// holding a slot now.
	MaxConcurrent int   `json:"maxConcurrent"`
	Running       int64 `json:"running"`
}

// DatasourceHealths reports each datasource in names (and every one seen
// in checks) at now, under the rules and caps rulesOf gives.
func (s *Store) DatasourceHealths(ctx context.Context, names []string, rulesOf func(ds string) (HealthRules, int), now time.Time) ([]DatasourceHealth, error) {
	seen, err := s.rdb.SMembers(ctx, s.kDatasources()).Result()
	if err != nil {
		return nil, fmt.Errorf("list datasources: %w", err)
	}
	all := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(names), seen...))))
	p := s.rdb.Pipeline()
	type reads struct {
		br   *redis.SliceCmd
		win  *redis.MapStringStringCmd
		durs *redis.StringSliceCmd
		na   *redis.IntCmd
		run  *redis.IntCmd
	}
	rs := make([]reads, len(all))
	for i, ds := range all {
		rs[i] = reads{br: p.HMGet(ctx, s.kBreaker(ds), "br", "bs"), win: p.HGetAll(ctx, s.kWindow(ds)),
			durs: p.LRange(ctx, s.kDurations(ds), 0, -1), na: p.ZCard(ctx, s.kNotAttempted(ds)),
			run: p.ZCount(ctx, s.kSlots(ds), strconv.FormatInt(ms(now), 10), "+inf")}
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read datasource health: %w", err)
	}
	out := make([]DatasourceHealth, len(all))
	for i, ds := range all {
		rules, maxConc := rulesOf(ds)
		h := DatasourceHealth{Name: ds, Window: rules.Window.String(), Breaker: "closed", NotAttempted: rs[i].na.Val(),
			MaxConcurrent: maxConc, Running: rs[i].run.Val()}
		bv := rs[i].br.Val()
		if len(bv) == 2 {
			if v, _ := bv[0].(string); v == "1" {
				h.Breaker = "open"
			}
			if v, _ := bv[1].(string); v != "" {
				if t, err := strconv.ParseInt(v, 10, 64); err == nil {
					since := fromMS(t)
					h.BreakerSince = &since
				}
			}
		}
		cur := ms(now) / 60000
		win := int64(rules.Window / time.Minute)
		for k, v := range rs[i].win.Val() {
			var minute int64
			var kind string
			if _, err := fmt.Sscanf(k, "%d:%s", &minute, &kind); err != nil || minute <= cur-win || minute > cur {
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			switch kind {
			case "n":
				h.Checks += n
			case "f":
				h.SiteFailures += n
			case "s":
				h.Successes += n
			}
		}
		if h.Checks > 0 {
			r := float64(h.Successes) / float64(h.Checks)
			h.SuccessRate = &r
		}
		h.DurationP50Ms, h.DurationP95Ms = percentiles(rs[i].durs.Val())
		switch {
		case h.Breaker == "open":
			h.Health = HealthDown
		case h.Checks >= int64(rules.MinChecks) && float64(h.SiteFailures) >= float64(h.Checks)*rules.DegradedRatio:
			h.Health = HealthDegraded
		default:
			h.Health = HealthHealthy
		}
		out[i] = h
	}
	return out, nil
}

// percentiles are the p50 and p95 of durations in ms (nearest rank).
func percentiles(vals []string) (int64, int64) {
	if len(vals) == 0 {
		return 0, 0
	}
	d := make([]int64, 0, len(vals))
	for _, v := range vals {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			d = append(d, n)
		}
	}
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	rank := func(p float64) int64 { return d[max(0, int(math.Ceil(p*float64(len(d))))-1)] }
	return rank(0.50), rank(0.95)
}

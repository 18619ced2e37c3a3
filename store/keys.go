package store

import (
	"strconv"
	"strings"
)

// Every Redis key of the store is built here. Layout (prefix P, "cd:" by
// default: Config.Prefix):
//
//	P c:<conn>            string  the connection, its accounts and its newest history elements (JSON, short names)
//	P co:<company>        hash    name, active (1|0), ca (created, ms), at (autoTrack 1|0, when the company sets it)
//	P companies           zset    company IDs by creation time
//	P coep                string  the company epoch: incremented with every change of an active flag
//	                              (LoadCheck caches the flags for one epoch: company.go)
//	P wk:<minute>         zset    the weekly schedule: eligible connection IDs whose slot falls in
//	                              that minute of the interval, by slot offset (ms); see schedule.go
//	P sw                  string  the sweep cursor: every weekly slot up to it (ms) is enqueued
//	P sw:lock             string  the sweeping scheduler's token (leased)
//	P sw:iv               string  the interval (ms) the weekly schedule was built for (EnsureSchedule)
//	P due                 zset    on-demand due times (ms): first checks, reactivations, retries; see due.go
//	P fl                  zset    on-demand claims in flight, by lease end
//	P fl:<claim>          string  one claim not yet acknowledged: "<count>|<conn> <slot ms> ..."
//	P ix:<company>:<st>   zset    a company's connections in status st, by creation time
//	P n                   hash    number of connections per status
//	P h:<conn>            list    older history elements spilled from the record, newest first (history.go)
//	P ev                  stream  change events (connection.created.v2, connection.updated.v2)
//	P q                   hash    conn → until (ms): a check is queued or running (queued.go)
//	P once:<name>         string  a single-use token was spent (expires with the token; once.go)
//	P ds                  set     datasources seen in checks (health.go)
//	P ds:<name>           hash    its outage breaker: br (1 open), bs (since, ms), bn/bf (window
//	                              counts when it opened), pm/pn (the probes' minute and count)
//	P ds:<name>:w         hash    its rolling window: "<minute>:n" checks, ":f" site failures, ":s" successes
//	P ds:<name>:d         list    the newest checks' durations (ms), for p50/p95
//	P ds:<name>:na        zset    connections not attempted while it was DOWN, by time (ms)
//	P ds:<name>:sem       zset    its concurrency slots: holder → lease end (ms) (slots.go)
//	P keys                hash    fingerprint → seal sequence of every key a stored credential may be
//	                              sealed with, and #seq, the sequence (rekey.go)
//	P rekey               hash    the re-encryption's run: target key, lease, SCAN cursor, pass, counts
//	P ak                  hash    API key name → the key's SHA-256 (hex): the runtime API keys (apikeys.go)
//	P akh                 hash    API key SHA-256 (hex) → the key's name, scopes, companies and creation
//
// Keys are plain strings with no hash tags: the scripts take keys of
// several connections and of shared indexes at once, which a Redis Cluster
// would refuse (see New).

func (s *Store) kConn(id string) string         { return s.cfg.Prefix + "c:" + id }
func (s *Store) kCompany(id string) string      { return s.cfg.Prefix + "co:" + id }
func (s *Store) kCompanies() string             { return s.cfg.Prefix + "companies" }
func (s *Store) kCompanyEpoch() string          { return s.cfg.Prefix + "coep" }
func (s *Store) kCursor() string                { return s.cfg.Prefix + "sw" }
func (s *Store) kSweepLock() string             { return s.cfg.Prefix + "sw:lock" }
func (s *Store) kScheduleInterval() string      { return s.cfg.Prefix + "sw:iv" }
func (s *Store) kDue() string                   { return s.cfg.Prefix + "due" }
func (s *Store) kInflight() string              { return s.cfg.Prefix + "fl" }
func (s *Store) kIndex(co, st string) string    { return s.cfg.Prefix + "ix:" + co + ":" + st }
func (s *Store) kCounts() string                { return s.cfg.Prefix + "n" }
func (s *Store) kHistory(id string) string      { return s.cfg.Prefix + "h:" + id }
func (s *Store) kEvents() string                { return s.cfg.Prefix + "ev" }
func (s *Store) kQueued() string                { return s.cfg.Prefix + "q" }
func (s *Store) kOnce(name string) string       { return s.cfg.Prefix + "once:" + name }
func (s *Store) kDatasources() string           { return s.cfg.Prefix + "ds" }
func (s *Store) kBreaker(ds string) string      { return s.cfg.Prefix + "ds:" + ds }
func (s *Store) kWindow(ds string) string       { return s.cfg.Prefix + "ds:" + ds + ":w" }
func (s *Store) kDurations(ds string) string    { return s.cfg.Prefix + "ds:" + ds + ":d" }
func (s *Store) kNotAttempted(ds string) string { return s.cfg.Prefix + "ds:" + ds + ":na" }
func (s *Store) kSlots(ds string) string        { return s.cfg.Prefix + "ds:" + ds + ":sem" }
func (s *Store) kKeys() string                  { return s.cfg.Prefix + "keys" }
func (s *Store) kRekey() string                 { return s.cfg.Prefix + "rekey" }
func (s *Store) kAPIKeys() string               { return s.cfg.Prefix + "ak" }
func (s *Store) kAPIKeyHashes() string          { return s.cfg.Prefix + "akh" }

// kNewClaim is the key of a new on-demand claim (P fl:<claim>).
func (s *Store) kNewClaim() string { return newID(s.cfg.Prefix + "fl:") }

// kWeekSet is the schedule set of the bucket-th minute of the interval.
func (s *Store) kWeekSet(bucket int64) string {
	return s.kWeekPrefix() + strconv.FormatInt(bucket, 10)
}

func (s *Store) kWeekPrefix() string { return s.cfg.Prefix + "wk:" }

// kWeek is the schedule set holding a connection, with its score (the
// connection's slot offset in ms).
func (s *Store) kWeek(id string) (string, int64) {
	off := s.slotOffset(id)
	return s.kWeekSet(off / s.bucketMS()), off
}

// Patterns for SCAN, and the connection ID of a key kConnPattern matched.
func (s *Store) kConnPattern() string { return s.cfg.Prefix + "c:*" }
func (s *Store) kWeekPattern() string { return s.kWeekPrefix() + "*" }
func (s *Store) connIDOf(key string) string {
	return strings.TrimPrefix(key, s.cfg.Prefix+"c:")
}

package store

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// dueOp is what a write does to the connection's place in the due index.
type dueOp string

// Every op but dueKeep and dueAfter also sets the connection's weekly
// schedule membership: out of it for dueRemove, in it otherwise.
const (
	dueKeep   dueOp = ""    // leave it
	dueRemove dueOp = "rem" // no longer eligible: out of the due index and the schedule
	// dueAfter: a check that started at dueSince was recorded: an
	// on-demand due time at or before it was served by that check and
	// goes; a later one stays. The schedule is left alone: only a
	// connection eligible when loaded has a check applied, so it is in the
	// schedule already (EnsureSchedule rebuilds older stores).
	dueAfter dueOp = "adv"
	dueSet   dueOp = "set" // check at dueAt (on demand), and weekly
	// dueWeekly (schedule.go): weekly only, the due time left alone.
)

// mutation is one atomic write of a connection: the new record replaces the
// old one only if the old one is still what the caller read (compare and
// set), and the indexes, counters, history and event stream move with it.
type mutation struct {
	rec       *connRec
	oldRaw    string // "" when creating: the key must not exist
	oldStatus string // connection status before ("" when creating)
	due       dueOp
	dueAt     int64
	dueSince  int64
	history   *histRec // nil: no transition; commitArgs moves it into rec
	spill     []histRec
	event     *Event
	// change, when set instead of event, is the write's event as its
	// transitions, written without building an Event (a check's path).
	change *change
	// companyActive, when set, must match the company's active flag.
	companyActive string
	// clearQueued drops the "check queued" marker (a check finished).
	clearQueued bool
	// check: the write records a check, so it may wait for company to
	// share its round trip (scriptBatcher).
	check bool
	// sealedWith is the fingerprint of the key the write sealed new
	// credentials with ("" when it sealed none): noted in the key
	// registry in the same step (see rekey.go).
	sealedWith string
}

// commitScript applies a mutation: the new record replaces the one read,
// and the indexes, counters, history list and event stream move with it.
//
//	KEYS[1]    -> P c:<conn>, the record
//	KEYS[2]    -> P due
//	KEYS[3]    -> P ix:<company>:<old status>
//	KEYS[4]    -> P ix:<company>:<new status>
//	KEYS[5]    -> P n
//	KEYS[6]    -> P h:<conn>
//	KEYS[7]    -> P ev
//	KEYS[8]    -> P co:<company>
//	KEYS[9]    -> P q
//	KEYS[10]   -> P wk:<minute>, the connection's schedule set
//	KEYS[11]   -> P sw, the sweep cursor: set to the first due time when
//	              there is none, so no weekly slot after it is skipped
//	KEYS[12]   -> P keys, the key registry (rekey.go)
//	ARGV[1]    -> the record as read; "": creating, the key must not exist
//	ARGV[2]    -> the new record
//	ARGV[3]    -> the connection ID (member of the indexes)
//	ARGV[4]    -> the dueOp: "" keep, "rem", "adv", "set" or "wk"
//	ARGV[5]    -> the on-demand due time (ms), for "set"
//	ARGV[6]    -> the old status ("" when creating)
//	ARGV[7]    -> the new status
//	ARGV[8]    -> the status index score (creation time, ms)
//	ARGV[9]    -> how many elements the history list keeps
//	ARGV[10]   -> the event stream's approximate MAXLEN
//	ARGV[11]   -> the change event's JSON ("": none)
//	ARGV[12]   -> the company's active flag the write requires ("": any)
//	ARGV[13]   -> "1": drop the queued mark
//	ARGV[14]   -> dueSince (ms), for "adv"
//	ARGV[15]   -> the connection's slot offset (ms): its score in KEYS[10]
//	ARGV[16]   -> the fingerprint of the key new credentials were sealed
//	              with, noted in KEYS[12] at the next sequence ("": none)
//	ARGV[17..] -> history elements spilled from the record, oldest first,
//	              pushed onto KEYS[6], which is then trimmed to ARGV[9]
//
// Returns 1 when applied, 0 when the record changed since it was read, -1
// when the company guard failed.
var commitScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if cur then return 0 end
elseif cur ~= ARGV[1] then
  return 0
end
if ARGV[12] ~= '' and redis.call('HGET', KEYS[8], 'active') ~= ARGV[12] then
  return -1
end
redis.call('SET', KEYS[1], ARGV[2])
local op = ARGV[4]
if op == 'rem' then
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[10], ARGV[3])
elseif op ~= '' then
  if op == 'set' then
    redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
    redis.call('SET', KEYS[11], ARGV[5], 'NX')
  elseif op == 'adv' then
    local cur = redis.call('ZSCORE', KEYS[2], ARGV[3])
    if cur and tonumber(cur) <= tonumber(ARGV[14]) then
      redis.call('ZREM', KEYS[2], ARGV[3])
    end
  end
  if op ~= 'adv' then
    redis.call('ZADD', KEYS[10], ARGV[15], ARGV[3])
  end
end
if ARGV[6] ~= ARGV[7] then
  if ARGV[6] ~= '' then
    redis.call('ZREM', KEYS[3], ARGV[3])
    redis.call('HINCRBY', KEYS[5], ARGV[6], -1)
  end
  redis.call('ZADD', KEYS[4], ARGV[8], ARGV[3])
  redis.call('HINCRBY', KEYS[5], ARGV[7], 1)
end
if ARGV[13] == '1' then
  redis.call('HDEL', KEYS[9], ARGV[3])
end
if ARGV[16] ~= '' then
  redis.call('HSET', KEYS[12], ARGV[16], redis.call('HINCRBY', KEYS[12], '#seq', 1))
end
if #ARGV > 16 then
  for i = 17, #ARGV do
    redis.call('LPUSH', KEYS[6], ARGV[i])
  end
  redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[9]) - 1)
end
if ARGV[11] ~= '' then
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[10], '*', 'e', ARGV[11])
end
return 1
`)

// errRetry means the record changed under the caller: read again.
var errRetry = errors.New("record changed concurrently")

// errCompanyChanged means the company's active flag is not what was read.
var errCompanyChanged = errors.New("company changed concurrently")

func (s *Store) commit(ctx context.Context, m *mutation) error {
	m.originate(ctx)
	keys, args, err := s.commitArgs(m)
	if err != nil {
		return err
	}
	run := s.batch.Run
	if m.check {
		run = s.batch.RunWindowed
	}
	n, err := run(ctx, commitScript, keys, args...).Int()
	if err != nil {
		return fmt.Errorf("write connection %s: %w", m.rec.ID, err)
	}
	switch n {
	case 1:
		return nil
	case -1:
		return errCompanyChanged
	default:
		return errRetry
	}
}

// commitCmd queues a mutation on a pipeline (batch writes); its result is
// the script's 1, 0 or -1. The script must be loaded (loadCommit): a
// pipeline cannot fall back from EVALSHA to EVAL.
func (s *Store) commitCmd(ctx context.Context, p redis.Pipeliner, m *mutation) (*redis.Cmd, error) {
	m.originate(ctx)
	keys, args, err := s.commitArgs(m)
	if err != nil {
		return nil, err
	}
	return commitScript.EvalSha(ctx, p, keys, args...), nil
}

func (s *Store) loadCommit(ctx context.Context) error {
	if err := commitScript.Load(ctx, s.rdb).Err(); err != nil {
		return fmt.Errorf("load write script: %w", err)
	}
	return nil
}

// commitArgs builds the script's keys and arguments. A new history element
// goes into the record first (once: m.history becomes m.spill, the
// elements it pushed out of the record).
func (s *Store) commitArgs(m *mutation) ([]string, []any, error) {
	inRecord, inList := s.historySplit()
	if m.history != nil {
		spill, err := m.rec.addHistory(*m.history, inRecord)
		if err != nil {
			return nil, nil, fmt.Errorf("connection %s: %w", m.rec.ID, err)
		}
		m.history, m.spill = nil, spill
	}
	newRaw, err := m.rec.encode()
	if err != nil {
		return nil, nil, fmt.Errorf("encode connection %s: %w", m.rec.ID, err)
	}
	ev := ""
	if m.change != nil || m.event != nil {
		if err = withBuffer(func(b []byte) ([]byte, error) {
			var err error
			if m.change != nil {
				b, err = appendChange(b, m.rec, m.change)
			} else {
				b, err = marshalEvent(b, m.event)
			}
			ev = string(b)
			return b, err
		}); err != nil {
			return nil, nil, fmt.Errorf("encode event of %s: %w", m.rec.ID, err)
		}
	}
	week, off := s.kWeek(m.rec.ID)
	keys := []string{
		s.kConn(m.rec.ID), s.kDue(),
		s.kIndex(m.rec.CompanyID, m.oldStatus), s.kIndex(m.rec.CompanyID, m.rec.Status),
		s.kCounts(), s.kHistory(m.rec.ID), s.kEvents(), s.kCompany(m.rec.CompanyID), s.kQueued(), week, s.kCursor(),
		s.kKeys(),
	}
	clear := ""
	if m.clearQueued {
		clear = "1"
	}
	args := make([]any, 0, 16+len(m.spill))
	args = append(args, m.oldRaw, newRaw, m.rec.ID, string(m.due), m.dueAt,
		m.oldStatus, m.rec.Status, m.rec.CreatedAt, inList, s.cfg.EventsMaxLen, ev, m.companyActive, clear, m.dueSince, off,
		m.sealedWith)
	// With no room in the list (HistoryLimit ≤ recordHistory) the spilled
	// elements are dropped: LTRIM to -1 would keep them all.
	for i := len(m.spill) - 1; i >= 0 && inList > 0; i-- {
		args = append(args, withBuffer(func(b []byte) ([]byte, string) {
			b = appendHist(b, &m.spill[i])
			return b, string(b)
		}))
	}
	return keys, args, nil
}

// maxAttempts bounds the compare-and-set loop of update; a connection rarely
// has more than two writers at once, so this is reached only under abuse.
const maxAttempts = 100

// update reads a connection (or uses raw when given), lets fn decide the
// write, and commits it atomically, reading again if another writer won. fn
// returns a nil mutation to write nothing.
func (s *Store) update(ctx context.Context, id, raw string, fn func(r *connRec) (*mutation, error)) error {
	return s.updateFrom(ctx, id, raw, nil, fn)
}

// updateFrom is update with the first attempt's record already decoded from
// raw (the check path decodes once at load); fn may change it.
func (s *Store) updateFrom(ctx context.Context, id, raw string, pre *connRec, fn func(r *connRec) (*mutation, error)) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if raw == "" {
			v, err := s.rdb.Get(ctx, s.kConn(id)).Result()
			if errors.Is(err, redis.Nil) {
				return fmt.Errorf("connection %q: %w", id, ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("read connection %s: %w", id, err)
			}
			raw = v
		}
		rec := pre
		pre = nil
		if rec == nil {
			var err error
			if rec, err = decodeConn(id, raw); err != nil {
				return fmt.Errorf("connection %s: %w", id, err)
			}
		}
		oldStatus := rec.Status
		m, err := fn(rec)
		if err != nil || m == nil {
			return err
		}
		m.rec, m.oldRaw, m.oldStatus = rec, raw, oldStatus
		err = s.commit(ctx, m)
		if errors.Is(err, errRetry) || errors.Is(err, errCompanyChanged) {
			raw = ""
			if err := backoff(ctx, attempt); err != nil {
				return err
			}
			continue
		}
		return err
	}
	return fmt.Errorf("connection %s: %w", id, ErrConflict)
}

func decodeConn(id, raw string) (*connRec, error) {
	var r connRec
	if err := unmarshalConn(raw, &r); err != nil {
		return nil, fmt.Errorf("decode stored record: %w", err)
	}
	if r.LastCheck != 0 { // implied values: see encode
		if r.LastSuccess == 0 && r.Failures == 0 {
			r.LastSuccess = r.LastCheck
		}
		if r.LastUpdate == 0 {
			r.LastUpdate = r.LastCheck
		}
		for i := range r.Accounts {
			if r.Accounts[i].LastUpdate == 0 {
				r.Accounts[i].LastUpdate = r.LastCheck
			}
		}
	}
	r.ID = id // the key holds it; the value does not repeat it
	return &r, nil
}

// backoff spreads writers that keep colliding on one connection: free for
// the first retries, then a random wait growing to a few milliseconds.
func backoff(ctx context.Context, attempt int) error {
	if attempt < 3 {
		return nil
	}
	d := time.Duration(mrand.Int64N(int64(min(attempt, 20)) * int64(time.Millisecond/4)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// encode is the stored form of r. Values that decodeConn can restore are
// left out: lastSuccess when it equals lastCheck with no failure since (the
// usual healthy connection: with consecutiveFailures at 0 the last check
// succeeded), and the connection's and each account's lastUpdate when it
// equals lastCheck (every applied check sets all of them to its time).
// That keeps a two-account record with its first check and its history
// inside Redis's 512-byte allocation.
func (r *connRec) encode() (string, error) {
	lc, ls, lu := r.LastCheck, r.LastSuccess, r.LastUpdate
	if lc != 0 {
		if r.Failures == 0 && ls == lc {
			r.LastSuccess = 0
		}
		if lu == lc {
			r.LastUpdate = 0
		}
		for i := range r.Accounts {
			if r.Accounts[i].LastUpdate == lc {
				r.Accounts[i].LastUpdate = 0
			}
		}
	}
	b, err := marshalConn(r)
	if lc != 0 {
		r.LastSuccess, r.LastUpdate = ls, lu
		for i := range r.Accounts {
			if r.Accounts[i].LastUpdate == 0 {
				r.Accounts[i].LastUpdate = lc
			}
		}
	}
	return b, err
}
